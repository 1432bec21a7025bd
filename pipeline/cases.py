"""Case lifecycle for the community queues: open on a triage message, accept, resolve, escalate when overdue.

Pure functions over a frozen `Case`; the streaming layer's case agent stores cases and publishes the
`CaseEvent`s these functions return. A case not accepted by `due_at` is escalated to its street.
A case follows its person: a raised or lowered action is a new demand on the community (due within the
new action's acceptance window, counted from the message), and a clear closes the case.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

import msgspec
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from pipeline.errors import CaseError
from pipeline.events import CaseEvent, Reason, TriageMessage
from pipeline.requests import RequestRow, apply_request_event
from pipeline.rules import CLEAR
from pipeline.stages import STAGES, StageRow, stage_problem, stage_row

__all__ = [
    "CLEARED_BY_RULES",
    "Case",
    "CaseStatus",
    "apply_case_event",
    "case_for_message",
    "case_from_bytes",
    "case_to_bytes",
    "escalate",
    "open_case",
    "overdue",
    "update_from_message",
]

CaseStatus = Literal["open", "accepted", "resolved", "closed"]
#: Why a case closed when the rules cleared its person (nobody resolved it).
CLEARED_BY_RULES = "cleared by rules"
_BY = "epiflow"


class Case(BaseModel):
    """One person's flagged episode as a community handles it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str
    person_key: str
    community: str
    street: str | None
    action: str
    severity: int
    opened_at: AwareDatetime
    due_at: AwareDatetime | None
    accepted_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    escalated_at: AwareDatetime | None = None
    notes: tuple[str, ...] = ()
    closed_reason: str | None = None
    #: transfer stages recorded (`pipeline.stages`), in order
    stages: tuple[StageRow, ...] = ()
    #: requests from the person under management (`pipeline.requests`), in the order posted
    requests: tuple[RequestRow, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def status(self) -> CaseStatus:
        """`closed` when the rules closed it, `resolved` when the community did, else `accepted` or `open`."""
        if self.resolved_at is not None:
            return "closed" if self.closed_reason else "resolved"
        return "accepted" if self.accepted_at is not None else "open"


def open_case(message: TriageMessage, street: str | None) -> Case:
    """A new case from the triage message that flagged the person (`street` from the community index)."""
    if not isinstance(message, TriageMessage):
        raise CaseError(f"open_case takes a TriageMessage, got {type(message).__name__}")
    return Case(
        case_id=message.case_id,
        person_key=message.person_key,
        community=message.community,
        street=street,
        action=message.action,
        severity=message.severity,
        opened_at=message.flagged_at,
        due_at=message.due_at,
    )


def update_from_message(case: Case, message: TriageMessage, street: str | None = None, *, clear_action: str = CLEAR) -> Case:
    """A later message of the same episode: the action was raised, lowered or cleared, or the person moved.

    A clear closes the case (`closed`, reason "cleared by rules"). A raised or lowered action reopens it
    as a new demand: due at the message's due time (the new action's window from the message's time),
    to be accepted again and escalated again when it is not. A move changes the community and street only.
    Applying the same message twice changes nothing the second time.
    """
    if message.case_id != case.case_id:
        raise CaseError(f"message {message.message_id!r} is for case {message.case_id!r}, not {case.case_id!r}")
    at = message.flagged_at
    if message.action == clear_action:
        if not case.is_open:
            return case
        return case.model_copy(update={
            "action": message.action, "severity": message.severity, "due_at": None, "resolved_at": at,
            "closed_reason": CLEARED_BY_RULES, "notes": case.notes + (f"{at.isoformat()} {_BY}: {CLEARED_BY_RULES}",),
        })
    moved = {"community": message.community, "street": street if street is not None else case.street}
    if message.action == case.action:
        return case.model_copy(update=moved)
    change = "raised" if message.severity > case.severity else "lowered"
    due = message.due_at.isoformat() if message.due_at is not None else "no deadline"
    note = f"{at.isoformat()} {_BY}: {change} from {case.action} to {message.action}; due {due}"
    return case.model_copy(update={
        **moved, "action": message.action, "severity": message.severity, "due_at": message.due_at,
        "accepted_at": None, "resolved_at": None, "escalated_at": None, "closed_reason": None,
        "notes": case.notes + (note,),
    })


def case_for_message(
    case: Case | None, message: TriageMessage, street: str | None, *, clear_action: str = CLEAR
) -> Case | None:
    """The case after a triage message: opened, updated, closed, or None (a clear with no case to close)."""
    if case is None:
        return None if message.action == clear_action else open_case(message, street)
    return update_from_message(case, message, street, clear_action=clear_action)


def apply_case_event(case: Case, event: CaseEvent) -> Case:
    """Fold one lifecycle step into the case; repeating a step keeps its first time (idempotent)."""
    if event.case_id != case.case_id:
        raise CaseError(f"case event for {event.case_id!r} applied to case {case.case_id!r}")
    if event.kind in ("accepted", "escalated") and not case.is_open:
        return case
    if event.kind == "accepted":
        if case.accepted_at is not None:
            return case
        return case.model_copy(update={"accepted_at": event.at})
    if event.kind == "resolved":
        if case.resolved_at is not None:
            return case
        update = {"resolved_at": event.at}
        if case.accepted_at is None:
            update["accepted_at"] = event.at
        return case.model_copy(update=update)
    if event.kind == "escalated":
        if case.escalated_at is not None:
            return case
        return case.model_copy(update={"escalated_at": event.at})
    if event.kind in STAGES:
        problem = stage_problem(case.action, case.stages, event.kind, event.site)
        if problem is not None:
            raise CaseError(f"case {case.case_id!r}: {problem}")
        if any(row[0] == event.kind for row in case.stages):
            return case
        row = stage_row(event.kind, event.at, event.by, event.site, event.arrived_at)
        return case.model_copy(update={"stages": case.stages + (row,)})
    if event.kind in ("request", "answered", "request_escalated"):
        requests = apply_request_event(case.requests, event)
        return case if requests == case.requests else case.model_copy(update={"requests": requests})
    note = f"{event.at.isoformat()} {event.by}: {event.note}"
    if note in case.notes:
        return case
    return case.model_copy(update={"notes": case.notes + (note,)})


def _check_aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise CaseError(f"now was {now!r} but is expected to be a timezone-aware datetime")


def overdue(cases: Iterable[Case], now: datetime) -> list[Case]:
    """Open cases not accepted by their due time and not yet escalated, most overdue first."""
    _check_aware(now)
    late = [
        c
        for c in cases
        if c.due_at is not None and c.accepted_at is None and c.resolved_at is None and c.escalated_at is None and c.due_at <= now
    ]
    return sorted(late, key=lambda c: (c.due_at, c.case_id))


def escalate(case: Case, now: datetime, by: str = "epiflow") -> tuple[Case, CaseEvent]:
    """Escalate an overdue case to its street; returns the updated case and the event to publish."""
    _check_aware(now)
    if case.escalated_at is not None:
        raise CaseError(f"case {case.case_id!r} was already escalated at {case.escalated_at.isoformat()}")
    street = case.street or "the district"
    event = CaseEvent(
        case_id=case.case_id,
        kind="escalated",
        by=by,
        at=now,
        note=f"not accepted by {case.due_at.isoformat() if case.due_at else 'its due time'}; escalated to {street}",
    )
    return apply_case_event(case, event), event


#: Format marker of `case_to_bytes` (zlib-compressed msgpack arrays); a JSON object
#: `{"case": ..., "message": ...}` is still decoded.
_FORMAT = 2
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder().decode
#: zlib's fastest level: a case record shrinks to about 57 % (its reasons and message repeat the case's words).
_LEVEL = 1
_CASE_FIELDS = tuple(Case.model_fields)
_MESSAGE_FIELDS = tuple(TriageMessage.model_fields)
_REASON_FIELDS = tuple(Reason.model_fields)
#: Fields added to the message after records were first written: a record that lacks them gets these.
_MESSAGE_LATER = {"kind": "triage"}
_CASE_LATER = {"stages": [], "requests": []}


def case_to_bytes(case: Case, message: TriageMessage | dict[str, Any]) -> bytes:
    """Cases-table value: the case and the latest triage message of its episode (what the queue pages show).

    msgpack arrays in the models' field order, so no field name is stored once per case, compressed:
    a worker holds one per flagged person. Written once per triage message or case step, never per
    person event, so the compression stays off the join's path.
    """
    shown = message.model_dump(mode="json") if isinstance(message, TriageMessage) else message
    fields = case.model_dump(mode="json")
    try:
        body = [shown[name] if name not in _MESSAGE_LATER else shown.get(name, _MESSAGE_LATER[name]) for name in _MESSAGE_FIELDS]
        body[_MESSAGE_FIELDS.index("reasons")] = [[r[name] for name in _REASON_FIELDS] for r in shown["reasons"]]
    except (KeyError, TypeError) as exc:
        raise CaseError(f"triage message of case {case.case_id!r} lacks field {exc}; expected a TriageMessage") from None
    return zlib.compress(_ENCODE((_FORMAT, [fields[name] for name in _CASE_FIELDS], body)), _LEVEL)


def case_from_bytes(raw: bytes) -> tuple[Case, dict[str, Any]]:
    """Inverse of `case_to_bytes`: the case and its message as a JSON-shaped dict; `CaseError` on anything else."""
    try:
        if raw[:1] == b"{":
            record = orjson.loads(raw)
            return Case.model_validate(record["case"]), record["message"]
        marker, fields, body = _DECODE(zlib.decompress(raw))
        if marker != _FORMAT:
            raise CaseError(f"case record has an unknown format marker {marker!r:.40}")
        if len(body) < len(_MESSAGE_FIELDS) and set(_MESSAGE_FIELDS[len(body):]) <= set(_MESSAGE_LATER):
            body = list(body) + [_MESSAGE_LATER[name] for name in _MESSAGE_FIELDS[len(body):]]
        message = dict(zip(_MESSAGE_FIELDS, body, strict=True))
        message["reasons"] = [dict(zip(_REASON_FIELDS, r, strict=True)) for r in message["reasons"]]
        if len(fields) < len(_CASE_FIELDS) and set(_CASE_FIELDS[len(fields):]) <= set(_CASE_LATER):
            fields = list(fields) + [_CASE_LATER[name] for name in _CASE_FIELDS[len(fields):]]
        return Case.model_validate(dict(zip(_CASE_FIELDS, fields, strict=True))), message
    except CaseError:
        raise
    except (zlib.error, msgspec.DecodeError, orjson.JSONDecodeError, ValidationError, KeyError, TypeError,
            ValueError) as exc:
        raise CaseError(f"case record bytes do not decode: {exc}") from None
