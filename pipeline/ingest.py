"""Ingest: raw bytes of an input topic → validated, pseudonymised `PersonEvent`s, one per person.

Pure: `ingest` backs the streaming ingest agents; `Observer`, its offline twin for `epiflow evaluate`,
accepts what `ingest` accepts and rejects the rest with the same reason and detail, so offline
results and the live pipeline validate identically. Anything unusable raises `RejectedEvent`.
`ingest`, the wire path (`person_event_records`) and `Observer` fan a document out through one core, `_shares`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import msgspec
import orjson
from pydantic import ValidationError

from pipeline import wire
from pipeline.errors import RejectedEvent
from pipeline.events import (
    DeadLetter,
    InputEvent,
    InputMirror,
    Payload,
    PayloadMirror,
    PersonEvent,
    PersonEventMirror,
    Someone,
)
from pipeline.identity import birth_date_of, check_id, mask_id, person_key, redact_ids
from pipeline.inputs import BY_NAME, INPUT_ADAPTER, NAMES, event_time
from pipeline.state import Observation, epoch_seconds, observation_of, payload_parts

__all__ = [
    "DEAD_LETTER_DETAIL_LIMIT",
    "DEAD_LETTER_PAYLOAD_LIMIT",
    "MAX_FUTURE_SKEW",
    "Observer",
    "dead_letter",
    "dead_letter_payload",
    "ingest",
    "parse_input",
    "person_event_records",
    "person_events",
    "rejection_of",
]

#: Events stamped further ahead than this are refused as clock errors.
MAX_FUTURE_SKEW = timedelta(minutes=10)
#: A dead letter keeps at most this many bytes of the original record, and this many characters of detail.
DEAD_LETTER_PAYLOAD_LIMIT = 64 * 1024
DEAD_LETTER_DETAIL_LIMIT = 2000
_ID_LIKE_BYTES = re.compile(rb"(?<![0-9])([1-9][0-9]{2})[0-9]{11}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SPECIFIC_REASONS = ("id_length", "id_characters", "id_region", "id_birth_date", "id_checksum", "coordinates")


def rejection_of(error: ValidationError) -> RejectedEvent:
    """The rejection for a validation error: a reason code, each field and its problem, no input values."""
    problems = error.errors(include_input=False, include_url=False)
    reason = "schema"
    for problem in problems:
        kind = problem["type"]
        loc = problem["loc"]
        if kind in _SPECIFIC_REASONS:
            reason = kind
            break
        if loc and loc[-1] in ("lon", "lat"):
            reason = "coordinates"
    fields = tuple((".".join(str(p) for p in problem["loc"][1:]) or "(document)", problem["msg"]) for problem in problems)
    return RejectedEvent(reason, "; ".join(f"{field}: {msg}" for field, msg in fields), fields)


def dead_letter_payload(value: bytes | None) -> tuple[str, str]:
    """(payload, encoding) of a dead letter: UTF-8 text when the bytes are, else base64, cut at 64 KiB.

    Anything shaped like a resident ID number is masked first (`110***********002X`): dead letters are read
    by operators, on the topic and in the files `epiflow evaluate --dead-letters` writes.
    """
    raw = _ID_LIKE_BYTES.sub(rb"\1***********\2", (value or b"")[:DEAD_LETTER_PAYLOAD_LIMIT])
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dead_letter(
    value: bytes | None, reason: str, detail: str, *, source_topic: str, partition: int, offset: int, at: datetime
) -> DeadLetter:
    """The dead letter of a record that could not be used: where it came from, why, and its masked payload."""
    payload, encoding = dead_letter_payload(value)
    return DeadLetter(
        source_topic=source_topic, partition=partition, offset=offset, reason=reason,
        detail=redact_ids(detail[:DEAD_LETTER_DETAIL_LIMIT]), payload=payload, payload_encoding=encoding, at=at,
    )


def parse_input(raw: bytes | str) -> InputEvent:
    """Decode and validate one input document; raise `RejectedEvent` with a reason code."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RejectedEvent("invalid_json", f"not valid JSON (UTF-8): {exc}") from None
    if not isinstance(document, dict):
        raise RejectedEvent("not_an_object", f"expected a JSON object, got {type(document).__name__}")
    kind = document.get("type")
    if kind not in NAMES:
        shown = redact_ids(repr(kind)[:40])
        expected = f"is expected to be one of {', '.join(NAMES)}"
        raise RejectedEvent("unknown_type", f"'type' was {shown} but {expected}", (("type", expected),))
    try:
        return INPUT_ADAPTER.validate_python(document)
    except ValidationError as exc:
        raise rejection_of(exc) from None
    except RecursionError:
        raise RejectedEvent("schema", "document nested too deeply") from None


def _check_time(at: datetime, now: datetime, lookback: timedelta) -> datetime:
    if at > now + MAX_FUTURE_SKEW:
        raise RejectedEvent("in_future", f"event time {at.isoformat()} is more than {MAX_FUTURE_SKEW} ahead of {now.isoformat()}")
    if at < now - lookback:
        raise RejectedEvent("too_old", f"event time {at.isoformat()} is older than the {lookback.days}-day lookback")
    return at


def ingest(
    raw: bytes | str,
    *,
    secret: bytes,
    now: datetime,
    lookback: timedelta,
    source_topic: str = "",
    received_at: datetime | None = None,
) -> list[PersonEvent]:
    """Validate one raw input and fan it out into one pseudonymised `PersonEvent` per person.

    The input was validated once by `parse_input`; the person events are assembled from its already
    valid parts (`model_construct`), so nothing is validated twice on the hot path.

    `received_at` (the input record's broker timestamp) becomes `ingested_at`, the start of the
    ingest→triage latency; it defaults to `now`.
    """
    return person_events(parse_input(raw), secret=secret, now=now, lookback=lookback,
                         source_topic=source_topic, received_at=received_at)


def person_events(
    event: InputEvent,
    *,
    secret: bytes,
    now: datetime,
    lookback: timedelta,
    source_topic: str = "",
    received_at: datetime | None = None,
) -> list[PersonEvent]:
    """One pseudonymised `PersonEvent` per person of an already valid input; `RejectedEvent` if out of time."""
    at = _check_time(event_time(event), now, lookback)
    shares = _shares(event, lambda id_number: (person_key(secret, id_number), mask_id(id_number),
                                               birth_date_of(id_number) or date(1900, 1, 1)))
    return [
        PersonEvent.model_construct(
            person_key=key, masked_id=masked, name=name, phone=phone, birth_date=born, event_id=event.event_id,
            kind=event.type, occurred_at=at, ingested_at=received_at or now, source_topic=source_topic, payload=payload,
        )
        for (_, name, phone, _), (key, masked, born), payload in shares  # type: ignore[union-attr]
    ]


_Who = TypeVar("_Who")


def _shares(
    event: InputEvent | InputMirror, identify: Callable[[str], _Who | None]
) -> list[tuple[Someone, _Who, Payload | PayloadMirror]] | None:
    """The one fan-out of ingest, the wire path and `Observer`: each person of a valid document, who they are
    (`identify` of their ID number) and their payload, built once per role and shared; None when `identify`
    gives None for anyone (an ID number only `ingest` can word)."""
    people = event.persons()
    who_all = [identify(person[0]) for person in people]
    if None in who_all:
        return None
    kind = BY_NAME[event.type]
    build = kind.payload_mirror.of if type(event) is kind.mirror else kind.payload.of
    by_role: dict[str, Payload | PayloadMirror] = {}
    out = []
    for person, who in zip(people, who_all, strict=True):
        role = person[3]
        payload = by_role.get(role)
        if payload is None:
            payload = by_role[role] = build(event, role)
        out.append((person, who, payload))
    return out  # type: ignore[return-value]


_ENCODE = msgspec.json.Encoder().encode


def _identity(secret: bytes, id_number: str, today: date | None = None) -> tuple[str, str, date] | None:
    """(person key, masked ID, birth date) of a valid ID number, None for one only `ingest` can word."""
    outcome = check_id(id_number, today)
    if not outcome.valid:
        return None
    normalised: str = outcome.normalised  # type: ignore[assignment]
    return person_key(secret, normalised), mask_id(normalised), outcome.born  # type: ignore[return-value]


def person_event_records(
    raw: bytes | str,
    *,
    secret: bytes,
    now: datetime,
    lookback: timedelta,
    source_topic: str = "",
    received_at: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """`ingest`, as (person key, person event JSON) pairs for the person-events topic.

    A document the msgspec mirrors accept (with valid ID numbers) is encoded straight from them;
    anything else goes through `ingest` and pydantic, with its reasons. Both give the same JSON.
    """
    event = wire.decode(raw)
    if event is not None:
        records = _wire_records(event, secret, now, lookback, source_topic, received_at or now)
        if records is not None:
            return records
    return [(e.person_key, e.model_dump_json().encode()) for e in ingest(
        raw, secret=secret, now=now, lookback=lookback, source_topic=source_topic, received_at=received_at)]


def _wire_records(
    event: InputMirror, secret: bytes, now: datetime, lookback: timedelta, source_topic: str, ingested: datetime,
) -> list[tuple[str, bytes]] | None:
    """The person events of a decoded document, or None when an ID number needs `ingest`'s wording."""
    shares = _shares(event, lambda id_number: _identity(secret, id_number))
    if shares is None:
        return None
    at = _check_time(event_time(event), now, lookback)
    return [(key, _ENCODE(PersonEventMirror(
        person_key=key, masked_id=masked, name=name, phone=phone, birth_date=born, event_id=event.event_id,
        kind=event.type, occurred_at=at, ingested_at=ingested, source_topic=source_topic, payload=payload,  # type: ignore[arg-type]
    ))) for (_, name, phone, _), (key, masked, born), payload in shares]


class Observer:
    """`ingest` for offline folding (`epiflow evaluate`): raw input → `Observation`s, one per person.

    Accepts what `ingest` accepts, with the same values, and rejects the rest with the same reason
    and detail. Documents `pipeline.wire` decodes with the msgspec mirrors are used as decoded, with no
    pydantic model built, and each distinct ID number is checked and pseudonymised once per observer;
    anything else goes through `ingest` itself.
    """

    def __init__(self, *, secret: bytes, now: datetime, lookback: timedelta) -> None:
        self.secret = secret
        self.now = now
        self.lookback = lookback
        self._latest_us = (now + MAX_FUTURE_SKEW - _UNIX_EPOCH) // _MICROSECOND
        self._earliest_us = (now - lookback - _UNIX_EPOCH) // _MICROSECOND
        # Taken once: on a later day a number born since then only takes the `ingest` path, which knows the day.
        self._today = date.today()
        self._people: dict[str, tuple[str, str, int]] = {}

    def __call__(self, raw: bytes | str) -> list[Observation]:
        """The observations of one raw input; raises `RejectedEvent` exactly as `ingest` does.

        People with the same role share their payload and its pieces."""
        event = wire.decode(raw)  # type: ignore[arg-type]
        shares = None if event is None else _shares(event, self._person)
        if event is None or shares is None:
            return self._ingested(raw)
        at = event_time(event)
        occurred = epoch_seconds(at)
        eid = event.event_id
        cut: dict[int, tuple] = {}
        out = []
        for (_, name, phone, _), (key, masked, birth), payload in shares:
            parts = cut.get(id(payload))
            if parts is None:
                parts = cut[id(payload)] = payload_parts(eid, payload)
            out.append(Observation(key, eid, occurred, masked, name, phone, birth, *parts))
        self._check_time(at, occurred)
        return out

    def _ingested(self, raw: bytes | str) -> list[Observation]:
        """The `ingest` path: pydantic validation, and its exact reason and detail when it rejects."""
        return [observation_of(e) for e in ingest(raw, secret=self.secret, now=self.now, lookback=self.lookback)]

    def _person(self, id_number: str) -> tuple[str, str, int] | None:
        """(person key, masked ID, birth ordinal) of a valid ID number, remembered; None for one only `ingest` can word."""
        known = self._people.get(id_number)
        if known is not None:
            return known
        who = _identity(self.secret, id_number, self._today)
        if who is None:
            return None
        key, masked, born = who
        known = self._people[id_number] = (key, masked, born.toordinal())
        return known

    def _check_time(self, at: datetime, seconds: int) -> None:
        """The skew and lookback checks of `ingest` on `at` (`seconds` after the epoch), with its wording on failure.

        Whole seconds compare as integers, which is exact and spares two offset-aware datetime comparisons.
        """
        if at.microsecond or not self._earliest_us <= seconds * 1_000_000 <= self._latest_us:
            _check_time(at, self.now, self.lookback)
