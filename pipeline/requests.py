"""Requests from people under management (supplies, medical, other): posted on their behalf, answered within an SLA.

Pure. A case keeps its requests as small rows; the SLA per kind comes from `requests:` of the rules document
(`RequestsDoc`); `requests_due` says which open requests ran past their deadline (the street is told),
and `response_minutes` how long an answer took.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import CaseError
from pipeline.events import CaseEvent, LoopMessage

__all__ = [
    "REQUEST_KINDS",
    "REQUEST_STEPS",
    "TEXT_LIMIT",
    "AnswerWithin",
    "RequestKind",
    "RequestRow",
    "RequestStatus",
    "RequestsDoc",
    "apply_request_event",
    "answer_due",
    "case_of_request",
    "escalate_request",
    "median_minutes",
    "next_due",
    "request_id_for",
    "request_json",
    "request_message",
    "request_problems",
    "request_status",
    "requests_due",
    "response_minutes",
]

RequestKind = Literal["supplies", "medical", "other"]
REQUEST_KINDS: tuple[str, ...] = get_args(RequestKind)
#: Longest request or answer text (characters): a line a community worker reads on a card, not a letter.
TEXT_LIMIT = 500
#: `open`: waiting, inside the SLA; `overdue`: waiting past it; `answered`.
RequestStatus = Literal["open", "overdue", "answered"]
#: (request id, kind, text, posted at, posted by, due at, answered at, answered by, answer, escalated at);
#: times ISO 8601, "" for not yet
RequestRow = tuple[str, str, str, str, str, str, str, str, str, str]

Hours = Annotated[float, Field(gt=0, le=168, allow_inf_nan=False)]


class AnswerWithin(BaseModel):
    """Hours within which a request of each kind must be answered before it is escalated to the street."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    supplies: Hours = 4
    medical: Hours = 1
    other: Hours = 24


class RequestsDoc(BaseModel):
    """`requests:` of the rules document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer_within_hours: AnswerWithin = AnswerWithin()


def answer_due(doc: RequestsDoc | None, kind: str, posted_at: datetime) -> datetime:
    """When a request of `kind` posted at `posted_at` must be answered (the defaults when `doc` is None)."""
    hours = getattr((doc or RequestsDoc()).answer_within_hours, kind, None)
    if hours is None:
        raise CaseError(f"request kind was {kind!r} but is expected to be one of {', '.join(REQUEST_KINDS)}")
    return posted_at + timedelta(hours=float(hours))


def request_id_for(case_id: str, kind: str, text: str, posted_at: datetime) -> str:
    """Deterministic id of a request: its case id, a dot, and a digest of what was asked when."""
    digest = hashlib.sha256("|".join((case_id, kind, text, posted_at.isoformat())).encode()).hexdigest()[:12]
    return f"{case_id}.{digest}"


def case_of_request(request_id: str) -> str:
    """The case id a request id names (`CaseError` when it names none)."""
    case_id, dot, digest = request_id.rpartition(".")
    if not dot or not case_id or len(digest) != 12:
        raise CaseError(f"request id was {request_id!r} but is expected to be '<case id>.<12 hex digits>'")
    return case_id


def request_problems(kind: Any, text: Any) -> list[tuple[str, str]]:
    """(field, problem) for a request that cannot be posted; empty when it can."""
    problems: list[tuple[str, str]] = []
    if kind not in REQUEST_KINDS:
        problems.append(("kind", f"was {kind!r} but is expected to be one of {', '.join(REQUEST_KINDS)}"))
    if not isinstance(text, str) or not text.strip():
        problems.append(("text", "missing or empty: say what the person asks for"))
    elif len(text) > TEXT_LIMIT:
        problems.append(("text", f"is {len(text)} characters; the limit is {TEXT_LIMIT}"))
    return problems


def _find(rows: tuple[RequestRow, ...], request_id: str) -> int | None:
    return next((i for i, row in enumerate(rows) if row[0] == request_id), None)


def apply_request_event(rows: tuple[RequestRow, ...], event: CaseEvent) -> tuple[RequestRow, ...]:
    """The case's requests after a `request`, `answered` or `request_escalated` event; repeats change nothing."""
    i = _find(rows, event.request_id)
    if event.kind == "request":
        if i is not None:
            return rows
        if event.request_kind not in REQUEST_KINDS or event.due_at is None:
            raise CaseError(f"request {event.request_id!r} lacks its kind or its due time")
        row: RequestRow = (event.request_id, event.request_kind, event.note, event.at.isoformat(), event.by,
                           event.due_at.isoformat(), "", "", "", "")
        return rows + (row,)
    if i is None:
        raise CaseError(f"no request {event.request_id!r} on case {event.case_id!r}")
    old = rows[i]
    if event.kind == "answered":
        if old[6]:
            return rows
        new = (*old[:6], event.at.isoformat(), event.by, event.note, old[9])
    elif event.kind == "request_escalated":
        if old[9] or old[6]:
            return rows
        new = (*old[:9], event.at.isoformat())
    else:
        raise CaseError(f"case event kind {event.kind!r} is not a request step")
    return rows[:i] + (new,) + rows[i + 1:]  # type: ignore[return-value]


def response_minutes(row: RequestRow) -> float | None:
    """Minutes from posting to answer; None while unanswered."""
    if not row[6]:
        return None
    return round((datetime.fromisoformat(row[6]) - datetime.fromisoformat(row[3])).total_seconds() / 60, 1)


def request_status(row: RequestRow, now: datetime) -> RequestStatus:
    if row[6]:
        return "answered"
    return "overdue" if datetime.fromisoformat(row[5]) <= now else "open"


def requests_due(rows: Iterable[RequestRow], now: datetime) -> list[RequestRow]:
    """Unanswered requests past their deadline whose street has not been told yet, oldest deadline first."""
    late = [r for r in rows if not r[6] and not r[9] and datetime.fromisoformat(r[5]) <= now]
    return sorted(late, key=lambda r: (r[5], r[0]))


def next_due(rows: Iterable[RequestRow]) -> float | None:
    """Epoch seconds of the earliest deadline among requests that may still be escalated; None when none."""
    dues = [datetime.fromisoformat(r[5]).timestamp() for r in rows if not r[6] and not r[9]]
    return min(dues, default=None)


def request_json(row: RequestRow, now: datetime, zone: Any) -> dict[str, Any]:
    """One request as the queue shows it (times in the display zone)."""
    def shown(value: str) -> str | None:
        return datetime.fromisoformat(value).astimezone(zone).isoformat() if value else None

    rid, kind, text, posted, by, due, answered, answered_by, answer, escalated = row
    return {"request_id": rid, "kind": kind, "text": text, "posted_at": shown(posted), "by": by, "due_at": shown(due),
            "answered_at": shown(answered), "answered_by": answered_by or None, "answer": answer or None,
            "escalated_at": shown(escalated), "status": request_status(row, now), "response_minutes": response_minutes(row)}


def request_message(case_id: str, person_key: str, community: str, action: str, shown: Mapping[str, Any],
                    row: RequestRow, step: Literal["posted", "answered", "escalated"]) -> LoopMessage:
    """The `request` message of one step (`shown`: the case's latest triage message, for who it is)."""
    rid, kind, text, posted, by, due, answered, answered_by, answer, escalated = row
    at = {"posted": posted, "answered": answered, "escalated": escalated}[step]
    digest = hashlib.sha256("|".join((case_id, "request", rid, step)).encode()).hexdigest()[:24]
    return LoopMessage(
        kind="request", message_id="msg-" + digest, case_id=case_id, person_key=person_key,
        masked_id=str(shown.get("masked_id", "")), name=str(shown.get("name", "")), phone=str(shown.get("phone", "")),
        community=community, action=action, at=datetime.fromisoformat(at), address=str(shown.get("address", "")),
        detail={"step": step, "request_id": rid, "request_kind": kind, "text": text, "posted_at": posted, "by": by,
                "due_at": due, "answered_at": answered or None, "answered_by": answered_by or None,
                "answer": answer or None, "response_minutes": response_minutes(row)},
    )


def median_minutes(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.median(values), 1) if values else None


#: request case events and the step each `request` message on the community topic tells
REQUEST_STEPS: dict[str, Literal["posted", "answered", "escalated"]] = {"request": "posted", "answered": "answered", "request_escalated": "escalated"}


def escalate_request(case_id: str, street: str | None, row: RequestRow, now: datetime) -> CaseEvent:
    """The `request_escalated` event of a request not answered by its deadline (`row[5]`), told to `street`."""
    return CaseEvent(case_id=case_id, kind="request_escalated", by="epiflow", at=now, request_id=row[0],
                     note=f"not answered by {row[5]}; escalated to {street or 'the district'}")
