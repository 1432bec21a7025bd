"""Ingest: raw bytes of an input topic → validated, pseudonymised `PersonEvent`s, one per person.

Pure: the same function backs the streaming ingest agents and `epiflow evaluate`, so offline
results and the live pipeline validate identically. Anything unusable raises `RejectedEvent`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import orjson
from pydantic import ValidationError

from pipeline.errors import RejectedEvent
from pipeline.events import (
    INPUT_ADAPTER,
    CheckpointScan,
    Declaration,
    DeclarationPayload,
    NatPayload,
    NatResult,
    PersonEvent,
    ScanPayload,
    occurred_at,
)
from pipeline.identity import birth_date_of, mask_id, person_key, redact_ids

__all__ = ["MAX_FUTURE_SKEW", "describe_validation_error", "ingest", "parse_input"]

#: Events stamped further ahead than this are refused as clock errors.
MAX_FUTURE_SKEW = timedelta(minutes=10)

_SPECIFIC_REASONS = ("id_length", "id_characters", "id_region", "id_birth_date", "id_checksum", "coordinates")


def describe_validation_error(error: ValidationError) -> tuple[str, str]:
    """(reason code, detail) for a validation error, listing each field and its problem, no input values."""
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
    detail = "; ".join(f"{'.'.join(str(p) for p in problem['loc'][1:]) or '(document)'}: {problem['msg']}" for problem in problems)
    return reason, detail


def parse_input(raw: bytes | str) -> Declaration | CheckpointScan | NatResult:
    """Decode and validate one input document; raise `RejectedEvent` with a reason code."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RejectedEvent("invalid_json", f"not valid JSON (UTF-8): {exc}") from None
    if not isinstance(document, dict):
        raise RejectedEvent("not_an_object", f"expected a JSON object, got {type(document).__name__}")
    kind = document.get("type")
    if kind not in ("declaration", "checkpoint_scan", "nat_result"):
        shown = redact_ids(repr(kind)[:40])
        raise RejectedEvent("unknown_type", f"'type' was {shown} but is expected to be one of declaration, checkpoint_scan, nat_result")
    try:
        return INPUT_ADAPTER.validate_python(document)
    except ValidationError as exc:
        raise RejectedEvent(*describe_validation_error(exc)) from None
    except RecursionError:
        raise RejectedEvent("schema", "document nested too deeply") from None


def _check_time(event: Declaration | CheckpointScan | NatResult, now: datetime, lookback: timedelta) -> datetime:
    at = occurred_at(event)
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
    event = parse_input(raw)
    at = _check_time(event, now, lookback)
    if isinstance(event, CheckpointScan):
        people = [(p.id_number, p.name, p.phone, ScanPayload.model_construct(
            checkpoint_id=event.checkpoint_id,
            scanned_at=event.scanned_at,
            location=event.location,
            vehicle=event.vehicle,
            role=p.role,
        )) for p in event.people]
    elif isinstance(event, Declaration):
        people = [(event.person.id_number, event.person.name, event.person.phone, DeclarationPayload.model_construct(
            submitted_at=event.submitted_at,
            arrival_at=event.arrival_at,
            destination=event.destination,
            itinerary=event.itinerary,
            nat_report=event.nat_report,
        ))]
    else:
        people = [(event.person.id_number, event.person.name, event.person.phone, NatPayload.model_construct(
            sampled_at=event.sampled_at,
            reported_at=event.reported_at,
            result=event.result,
            lab_id=event.lab_id,
        ))]
    return [
        PersonEvent.model_construct(
            person_key=person_key(secret, id_number),
            masked_id=mask_id(id_number),
            name=name,
            phone=phone,
            birth_date=birth_date_of(id_number) or date(1900, 1, 1),
            event_id=event.event_id,
            kind=event.type,
            occurred_at=at,
            ingested_at=received_at or now,
            source_topic=source_topic,
            payload=payload,
        )
        for id_number, name, phone, payload in people
    ]
