"""Fast acceptance of raw input: msgspec mirrors of the input contracts in `pipeline.events`.

The pydantic models stay the contract (JSON Schemas, reasons, messages). These structs only say
quickly that a document is valid, with the values pydantic would give, except that resident ID
numbers come back raw: the caller checks them with `check_id`, as `events.Person` does, once per
distinct number. Whatever they refuse goes back to the pydantic path, which accepts or rejects it
as usual; tests/pipeline/test_wire.py holds the two paths to agreement.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

__all__ = ["CheckpointPerson", "CheckpointScan", "Declaration", "NatResult", "Person", "PersonEvent", "decode", "decode_person_event"]

Lon = Annotated[float, Meta(ge=-180.0, le=180.0)]
Lat = Annotated[float, Meta(ge=-90.0, le=90.0)]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
LongText = Annotated[str, Meta(max_length=2000)]
EventId = Annotated[str, Meta(min_length=1, max_length=128)]
Aware = Annotated[datetime, Meta(tz=True)]


class _Strict(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """Unknown fields are refused, as in the pydantic contracts.

    Decoded documents are trees (nothing in them points back up), so they stay out of the cycle collector.
    """


class _Point(_Strict):
    """A WGS84 position; `decode` refuses (0, 0), as `events._Point` does."""

    lon: Lon
    lat: Lat


class Person(_Strict):
    id_number: str
    name: Text
    phone: str


class Destination(_Point):
    address: LongText


class ItineraryStop(_Point):
    place: Text
    from_: Aware = msgspec.field(name="from")
    to: Aware = msgspec.field()


class NatReport(_Strict):
    sampled_at: Aware
    result: Literal["negative", "positive"]
    lab: Text


class Declaration(_Strict, tag_field="type", tag="declaration"):
    event_id: EventId
    submitted_at: Aware
    person: Person
    arrival_at: Aware
    destination: Destination
    itinerary: Annotated[list[ItineraryStop], Meta(max_length=50)]
    nat_report: NatReport | None = None

    type = "declaration"  # the tag, readable as on the pydantic model


class Location(_Point):
    pass


class VehicleOrigin(_Point):
    place: Text


class Vehicle(_Strict):
    plate: Text
    origin: VehicleOrigin
    departed_at: Aware


class CheckpointPerson(_Strict):
    id_number: str
    name: Text
    phone: str
    role: Literal["driver", "passenger", "pedestrian"]


class CheckpointScan(_Strict, tag_field="type", tag="checkpoint_scan"):
    event_id: EventId
    checkpoint_id: Text
    scanned_at: Aware
    location: Location
    people: Annotated[list[CheckpointPerson], Meta(min_length=1, max_length=60)]
    vehicle: Vehicle | None = None

    type = "checkpoint_scan"


class NatResult(_Strict, tag_field="type", tag="nat_result"):
    event_id: EventId
    person: Person
    sampled_at: Aware
    reported_at: Aware
    result: Literal["negative", "positive", "invalid"]
    lab_id: Text

    type = "nat_result"


_DECODER = msgspec.json.Decoder(Declaration | CheckpointScan | NatResult)

#: msgspec rounds a fraction of a second beyond microseconds where pydantic truncates it, so such
#: a time takes the pydantic path; so does an escaped ASCII character (`\u0030`), which could hide one.
_SUB_MICROSECOND = re.compile(rb":[0-9]{2}:[0-9]{2}\.[0-9]{7}")
_ASCII_ESCAPE = re.compile(rb"\\u00[2-7]")
#: `events.Phone`, whose Rust `^...$` spans the whole string: hence `fullmatch` (Python's `$` would also
#: match before a final newline). Checked in `decode`, as a msgspec `pattern` it would cost six times as much.
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{4,19}")


def decode(raw: bytes) -> Declaration | CheckpointScan | NatResult | None:
    """The document, validated but for its raw ID numbers, or None when only the pydantic path can decide."""
    if type(raw) is not bytes or _ASCII_ESCAPE.search(raw) is not None or _SUB_MICROSECOND.search(raw) is not None:
        return None
    try:
        event = _DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # invalid UTF-8 raises a UnicodeDecodeError
        return None
    return event if _cross_checked(event) else None


def _cross_checked(event: Declaration | CheckpointScan | NatResult) -> bool:
    """The rules left to Python: phone numbers, no (0, 0) position, no stop that ends before it starts.

    Checked here rather than in `__post_init__`, which msgspec would call once per struct, at several times the cost.
    """
    phone_ok = _PHONE.fullmatch
    if type(event) is NatResult:
        return phone_ok(event.person.phone) is not None
    if type(event) is Declaration:
        dest = event.destination
        if phone_ok(event.person.phone) is None or (dest.lon == 0.0 and dest.lat == 0.0):
            return False
        for stop in event.itinerary:
            if (stop.lon == 0.0 and stop.lat == 0.0) or stop.to < stop.from_:
                return False
        return True
    loc = event.location
    if loc.lon == 0.0 and loc.lat == 0.0:
        return False
    vehicle = event.vehicle
    if vehicle is not None and vehicle.origin.lon == 0.0 and vehicle.origin.lat == 0.0:
        return False
    return all(phone_ok(p.phone) is not None for p in event.people)


# --- person events (the internal `person-events` topic, written by ingest from validated inputs) ---


class PersonStop(_Point):
    """An itinerary stop as a person event carries it (`from_`: pydantic's field name, not the input's alias)."""

    place: str
    from_: Aware
    to: Aware


class _Payload(_Strict):
    """A person event's payload; its `kind` is the tag it is encoded with, as on the pydantic payloads."""

    @property
    def kind(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]


class DeclarationPayload(_Payload, tag_field="kind", tag="declaration"):
    submitted_at: Aware
    arrival_at: Aware
    destination: Destination
    itinerary: list[PersonStop]
    nat_report: NatReport | None = None

class ScanPayload(_Payload, tag_field="kind", tag="checkpoint_scan", kw_only=True):
    checkpoint_id: str
    scanned_at: Aware
    location: Location
    vehicle: Vehicle | None = None
    role: Literal["driver", "passenger", "pedestrian"]

class NatPayload(_Payload, tag_field="kind", tag="nat_result"):
    sampled_at: Aware
    reported_at: Aware
    result: Literal["negative", "positive", "invalid"]
    lab_id: str

class PersonEvent(_Strict, kw_only=True):
    """`events.PersonEvent` as ingest writes it and the join reads it, without pydantic (fields in the contract's order)."""

    person_key: str
    masked_id: str
    name: str
    phone: str
    birth_date: date
    event_id: str
    kind: Literal["declaration", "checkpoint_scan", "nat_result"]
    occurred_at: Aware
    ingested_at: Aware
    source_topic: str = ""
    payload: DeclarationPayload | ScanPayload | NatPayload


_PERSON_EVENT_DECODER = msgspec.json.Decoder(PersonEvent)


def decode_person_event(raw: bytes) -> PersonEvent | None:
    """A person event as ingest wrote it, or None for anything else (the caller then asks pydantic).

    Shape and types only: the input rules (no (0, 0) position, stops in order, phone patterns) were
    applied by ingest, the topic's one writer, before the event was written."""
    try:
        return _PERSON_EVENT_DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None
