"""Event contracts: the JSON shapes that come in, travel inside, and go out.

Pydantic v2 models with unknown fields rejected, timezone-aware datetimes required, coordinates
range-checked ((0, 0) is refused as a missing position) and resident IDs checked per GB 11643.
Inputs hide their values in validation errors so a raw ID number never reaches a message.

Beside each input and person-event model stands its msgspec mirror (`...Mirror`), which only says quickly
that a document is valid, with the values pydantic would give, except that resident ID numbers come back
raw and the phone pattern and (0, 0) positions are checked by the mirror's `checked` (`pipeline.wire`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.identity import check_id

__all__ = [
    "Action",
    "CaseEvent",
    "CaseEventKind",
    "CheckpointPerson",
    "CheckpointPersonMirror",
    "CheckpointScan",
    "CheckpointScanMirror",
    "CommunityProperties",
    "DeadLetter",
    "Declaration",
    "DeclarationMirror",
    "DeclarationPayload",
    "DeclarationPayloadMirror",
    "Destination",
    "DestinationMirror",
    "EventKind",
    "InputEvent",
    "InputMirror",
    "ItineraryStop",
    "ItineraryStopMirror",
    "Location",
    "LocationMirror",
    "LoopKind",
    "LoopMessage",
    "NatPayload",
    "NatPayloadMirror",
    "NatReport",
    "NatReportMirror",
    "NatResult",
    "NatResultMirror",
    "Payload",
    "PayloadMirror",
    "Person",
    "PersonEvent",
    "PersonEventMirror",
    "PersonMirror",
    "PersonStopMirror",
    "Reason",
    "RegionProperties",
    "Role",
    "ScanPayload",
    "ScanPayloadMirror",
    "Someone",
    "TriageMessage",
    "Vehicle",
    "VehicleMirror",
    "VehicleOrigin",
    "VehicleOriginMirror",
    "MIRRORS",
]

EventKind = Literal["declaration", "checkpoint_scan", "nat_result"]
Role = Literal["driver", "passenger", "pedestrian"]
CaseEventKind = Literal["accepted", "resolved", "escalated", "note", "dispatched", "picked_up", "received", "request",
                        "answered", "request_escalated"]
Action = str
#: (ID number, name, phone, role) of one person an input is about; the role is "" where the kind has none
Someone = tuple[str, str, str, str]

Lon = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
Lat = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=2000)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 \-]{4,19}$")]

MLon = Annotated[float, Meta(ge=-180.0, le=180.0)]
MLat = Annotated[float, Meta(ge=-90.0, le=90.0)]
MText = Annotated[str, Meta(min_length=1, max_length=200)]
MLongText = Annotated[str, Meta(max_length=2000)]
MEventId = Annotated[str, Meta(min_length=1, max_length=128)]
Aware = Annotated[datetime, Meta(tz=True)]
#: `Phone`, whose Rust `^...$` spans the whole string: hence `fullmatch` (Python's `$` would also match before
#: a final newline). Checked by the mirrors' `checked`, as a msgspec `pattern` it would cost six times as much.
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{4,19}").fullmatch


class _Strict(BaseModel):
    """Base for every contract: unknown fields are refused, inputs never echoed in errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True)


class _Mirror(Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """Base for every msgspec mirror: unknown fields are refused, as in the pydantic contracts.

    Decoded documents are trees (nothing in them points back up), so they stay out of the cycle collector.
    """


class _Point(_Strict):
    """A WGS84 position; (0, 0) is what a missing GPS fix looks like, so it is refused."""

    lon: Lon
    lat: Lat

    @model_validator(mode="after")
    def _not_null_island(self) -> _Point:
        if self.lon == 0.0 and self.lat == 0.0:
            raise PydanticCustomError("coordinates", "(0, 0) is not a real position; the location is missing")
        return self


class _PointMirror(_Mirror):
    """A WGS84 position; `wire.decode` refuses (0, 0) (through `checked`), as `_Point` does."""

    lon: MLon
    lat: MLat

    def real(self) -> bool:
        return not (self.lon == 0.0 and self.lat == 0.0)


def _valid_id(value: str) -> str:
    outcome = check_id(value)
    if not outcome.valid:
        raise PydanticCustomError(f"id_{outcome.reason}", "resident ID number is invalid: {reason}", {"reason": outcome.reason})
    return outcome.normalised  # type: ignore[return-value]


def _the_person(event: Declaration | DeclarationMirror | NatResult | NatResultMirror) -> list[Someone]:
    """`persons` of a kind about one person: (ID number, name, phone, no role)."""
    return [(event.person.id_number, event.person.name, event.person.phone, "")]


class Person(_Strict):
    """Who an event is about, as the declaration front end and the lab send it."""

    id_number: str
    name: Text
    phone: Phone

    _check_id = field_validator("id_number")(_valid_id)


class PersonMirror(_Mirror):
    """`Person` with its ID number raw: the caller checks it with `check_id`, once per distinct number."""

    id_number: str
    name: MText
    phone: str


class Destination(_Point):
    address: LongText


class DestinationMirror(_PointMirror):
    address: MLongText


class ItineraryStop(_Point):
    place: Text
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> ItineraryStop:
        if self.to < self.from_:
            raise PydanticCustomError("time_order", "stop ends before it starts ('to' < 'from')")
        return self


class ItineraryStopMirror(_PointMirror):
    place: MText
    from_: Aware = msgspec.field(name="from")
    to: Aware = msgspec.field()


class PersonStopMirror(_PointMirror):
    """An itinerary stop as a person event carries it (`from_`: pydantic's field name, not the input's alias)."""

    place: str
    from_: Aware
    to: Aware


class NatReport(_Strict):
    sampled_at: AwareDatetime
    result: Literal["negative", "positive"]
    lab: Text


class NatReportMirror(_Mirror):
    sampled_at: Aware
    result: Literal["negative", "positive"]
    lab: MText


class Declaration(_Strict):
    """A traveler's declaration: trip, destination and (optionally) a NAT report, before arrival."""

    type: Literal["declaration"]
    event_id: EventId
    submitted_at: AwareDatetime
    person: Person
    arrival_at: AwareDatetime
    destination: Destination
    itinerary: list[ItineraryStop] = Field(max_length=50)
    nat_report: NatReport | None = None

    persons = _the_person


class DeclarationMirror(_Mirror, tag_field="type", tag="declaration"):
    event_id: MEventId
    submitted_at: Aware
    person: PersonMirror
    arrival_at: Aware
    destination: DestinationMirror
    itinerary: Annotated[list[ItineraryStopMirror], Meta(max_length=50)]
    nat_report: NatReportMirror | None = None

    type = "declaration"  # the tag, readable as on the pydantic model

    persons = _the_person

    def checked(self) -> bool:
        """The rules left to Python: the phone pattern, no (0, 0) position, no stop that ends before it starts."""
        if _PHONE(self.person.phone) is None or not self.destination.real():
            return False
        return all(stop.real() and stop.to >= stop.from_ for stop in self.itinerary)


class DeclarationPayload(_Strict):
    kind: Literal["declaration"] = "declaration"
    submitted_at: AwareDatetime
    arrival_at: AwareDatetime
    destination: Destination
    itinerary: list[ItineraryStop]
    nat_report: NatReport | None = None

    @classmethod
    def of(cls, event: Declaration, role: str) -> DeclarationPayload:
        """The payload of a valid declaration, from its already valid parts."""
        return cls.model_construct(submitted_at=event.submitted_at, arrival_at=event.arrival_at,
                                   destination=event.destination, itinerary=event.itinerary, nat_report=event.nat_report)


class _PayloadMirror(_Mirror):
    """A person event's payload; its `kind` is the tag it is encoded with, as on the pydantic payloads."""

    @property
    def kind(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]


class DeclarationPayloadMirror(_PayloadMirror, tag_field="kind", tag="declaration"):
    submitted_at: Aware
    arrival_at: Aware
    destination: DestinationMirror
    itinerary: list[PersonStopMirror]
    nat_report: NatReportMirror | None = None

    @classmethod
    def of(cls, event: DeclarationMirror, role: str) -> DeclarationPayloadMirror:
        return cls(submitted_at=event.submitted_at, arrival_at=event.arrival_at, destination=event.destination,
                   itinerary=[PersonStopMirror(lon=s.lon, lat=s.lat, place=s.place, from_=s.from_, to=s.to) for s in event.itinerary],
                   nat_report=event.nat_report)


class Location(_Point):
    pass


class LocationMirror(_PointMirror):
    pass


class VehicleOrigin(_Point):
    place: Text


class VehicleOriginMirror(_PointMirror):
    place: MText


class Vehicle(_Strict):
    plate: Text
    origin: VehicleOrigin
    departed_at: AwareDatetime


class VehicleMirror(_Mirror):
    plate: MText
    origin: VehicleOriginMirror
    departed_at: Aware


class CheckpointPerson(_Strict):
    id_number: str
    name: Text
    phone: Phone
    role: Role

    _check_id = field_validator("id_number")(_valid_id)


class CheckpointPersonMirror(_Mirror):
    id_number: str
    name: MText
    phone: str
    role: Role


class CheckpointScan(_Strict):
    """One vehicle (or pedestrian group) at a logistics checkpoint, with 1..60 people."""

    type: Literal["checkpoint_scan"]
    event_id: EventId
    checkpoint_id: Text
    scanned_at: AwareDatetime
    location: Location
    vehicle: Vehicle | None = None
    people: list[CheckpointPerson] = Field(min_length=1, max_length=60)

    def persons(self) -> list[Someone]:
        return [(p.id_number, p.name, p.phone, p.role) for p in self.people]


class CheckpointScanMirror(_Mirror, tag_field="type", tag="checkpoint_scan"):
    event_id: MEventId
    checkpoint_id: MText
    scanned_at: Aware
    location: LocationMirror
    people: Annotated[list[CheckpointPersonMirror], Meta(min_length=1, max_length=60)]
    vehicle: VehicleMirror | None = None

    type = "checkpoint_scan"

    def persons(self) -> list[Someone]:
        return [(p.id_number, p.name, p.phone, p.role) for p in self.people]

    def checked(self) -> bool:
        """The rules left to Python: no (0, 0) position, the phone pattern."""
        vehicle = self.vehicle
        if not self.location.real() or (vehicle is not None and not vehicle.origin.real()):
            return False
        return all(_PHONE(p.phone) is not None for p in self.people)


class ScanPayload(_Strict):
    kind: Literal["checkpoint_scan"] = "checkpoint_scan"
    checkpoint_id: str
    scanned_at: AwareDatetime
    location: Location
    vehicle: Vehicle | None = None
    role: Role

    @classmethod
    def of(cls, event: CheckpointScan, role: str) -> ScanPayload:
        return cls.model_construct(checkpoint_id=event.checkpoint_id, scanned_at=event.scanned_at,
                                   location=event.location, vehicle=event.vehicle, role=role)


class ScanPayloadMirror(_PayloadMirror, tag_field="kind", tag="checkpoint_scan", kw_only=True):
    checkpoint_id: str
    scanned_at: Aware
    location: LocationMirror
    vehicle: VehicleMirror | None = None
    role: Role

    @classmethod
    def of(cls, event: CheckpointScanMirror, role: str) -> ScanPayloadMirror:
        return cls(checkpoint_id=event.checkpoint_id, scanned_at=event.scanned_at, location=event.location,
                   vehicle=event.vehicle, role=role)  # type: ignore[arg-type]


class NatResult(_Strict):
    """A nucleic-acid test result pushed by a lab."""

    type: Literal["nat_result"]
    event_id: EventId
    person: Person
    sampled_at: AwareDatetime
    reported_at: AwareDatetime
    result: Literal["negative", "positive", "invalid"]
    lab_id: Text

    persons = _the_person


class NatResultMirror(_Mirror, tag_field="type", tag="nat_result"):
    event_id: MEventId
    person: PersonMirror
    sampled_at: Aware
    reported_at: Aware
    result: Literal["negative", "positive", "invalid"]
    lab_id: MText

    type = "nat_result"

    persons = _the_person

    def checked(self) -> bool:
        """The rule left to Python: the phone pattern."""
        return _PHONE(self.person.phone) is not None


class NatPayload(_Strict):
    kind: Literal["nat_result"] = "nat_result"
    sampled_at: AwareDatetime
    reported_at: AwareDatetime
    result: Literal["negative", "positive", "invalid"]
    lab_id: str

    @classmethod
    def of(cls, event: NatResult, role: str) -> NatPayload:
        return cls.model_construct(sampled_at=event.sampled_at, reported_at=event.reported_at, result=event.result,
                                   lab_id=event.lab_id)


class NatPayloadMirror(_PayloadMirror, tag_field="kind", tag="nat_result"):
    sampled_at: Aware
    reported_at: Aware
    result: Literal["negative", "positive", "invalid"]
    lab_id: str

    @classmethod
    def of(cls, event: NatResultMirror, role: str) -> NatPayloadMirror:
        return cls(sampled_at=event.sampled_at, reported_at=event.reported_at, result=event.result, lab_id=event.lab_id)


InputEvent = Declaration | CheckpointScan | NatResult
InputMirror = DeclarationMirror | CheckpointScanMirror | NatResultMirror
Payload = DeclarationPayload | ScanPayload | NatPayload
PayloadMirror = DeclarationPayloadMirror | ScanPayloadMirror | NatPayloadMirror


class PersonEvent(_Strict):
    """Internal: one person's share of an input event, pseudonymised, keyed by `person_key`.

    `occurred_at` is the event time the join orders by; `ingested_at` measures ingest→triage latency.
    """

    person_key: str
    masked_id: str
    name: str
    phone: str
    birth_date: date
    event_id: str
    kind: EventKind
    occurred_at: AwareDatetime
    ingested_at: AwareDatetime
    source_topic: str = ""
    payload: Annotated[Payload, Field(discriminator="kind")]


class PersonEventMirror(_Mirror, kw_only=True):
    """`PersonEvent` as ingest writes it and the join reads it, without pydantic (fields in the contract's order)."""

    person_key: str
    masked_id: str
    name: str
    phone: str
    birth_date: date
    event_id: str
    kind: EventKind
    occurred_at: Aware
    ingested_at: Aware
    source_topic: str = ""
    payload: PayloadMirror


#: each contract beside its msgspec mirror; tests/pipeline/test_contracts.py keeps their fields equal
MIRRORS: tuple[tuple[type[BaseModel], type[Struct]], ...] = (
    (Person, PersonMirror), (Destination, DestinationMirror), (ItineraryStop, ItineraryStopMirror),
    (ItineraryStop, PersonStopMirror), (NatReport, NatReportMirror), (Declaration, DeclarationMirror),
    (DeclarationPayload, DeclarationPayloadMirror), (Location, LocationMirror), (VehicleOrigin, VehicleOriginMirror),
    (Vehicle, VehicleMirror), (CheckpointPerson, CheckpointPersonMirror), (CheckpointScan, CheckpointScanMirror),
    (ScanPayload, ScanPayloadMirror), (NatResult, NatResultMirror), (NatPayload, NatPayloadMirror),
    (PersonEvent, PersonEventMirror),
)


class Reason(_Strict):
    """Why a rule fired, as a sentence a community worker can read."""

    rule: str
    text: str
    region_id: str | None = None
    level: Literal["high", "medium", "low"] | None = None
    at: AwareDatetime | None = None


class TriageMessage(_Strict):
    """What a community's queue receives when a person's action changes (raised, lowered, cleared)."""

    message_id: str
    case_id: str
    person_key: str
    masked_id: str
    name: str
    phone: str
    community: str
    action: Action
    previous_action: Action | None
    severity: int
    due_at: AwareDatetime | None
    reasons: list[Reason]
    rules_version: str
    flagged_at: AwareDatetime
    source_event_ids: list[str]
    #: the address the person declared as destination, for the community's visit ("" when none was declared)
    address: str = ""
    #: what the message is about on the community's topic: a verdict raised, lowered or cleared
    kind: Literal["triage"] = "triage"


LoopKind = Literal["test_overdue", "released", "stage", "request"]


class LoopMessage(_Strict):
    """What a community's queue receives after triage: a missed test, a release, a transfer stage, a request.

    `management` is the person's management when it was sent (as `epiflow evaluate` prints it), `test`
    the missed test of a `test_overdue`, `detail` what a stage or request says.
    """

    kind: LoopKind
    message_id: str
    case_id: str
    person_key: str
    masked_id: str
    name: str
    phone: str
    community: str
    action: Action
    at: AwareDatetime
    management: dict | None = None
    test: dict | None = None
    detail: dict = {}
    address: str = ""


class CaseEvent(_Strict):
    """A step in a case's closed loop: accepted, resolved, escalated, a note, a transfer stage, or a request and its answer."""

    case_id: EventId
    kind: CaseEventKind
    by: Text
    at: AwareDatetime
    note: LongText = ""
    #: of a transfer stage: the site (hospital or isolation site), and when the person arrived there (`received`)
    site: LongText = ""
    arrived_at: AwareDatetime | None = None
    #: of a request from a person under management: its id, kind (supplies, medical, other) and answer deadline;
    #: the request's text (or the answer's) is the note
    request_id: Annotated[str, StringConstraints(max_length=200)] = ""
    request_kind: Literal["", "supplies", "medical", "other"] = ""
    due_at: AwareDatetime | None = None


class DeadLetter(_Strict):
    """An input that could not be used, with where it came from and why."""

    source_topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    payload: str
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    at: AwareDatetime


class RegionProperties(_Strict):
    """Properties of a risk-region GeoJSON Feature."""

    id: Text
    level: Literal["high", "medium", "low"]
    name: Text
    effective_from: AwareDatetime
    effective_until: AwareDatetime | None = None


class CommunityProperties(_Strict):
    """Properties of a community GeoJSON Feature (`population`: residents, for the map's per-1,000 levels)."""

    code: Text
    name: Text
    street: Text
    population: Annotated[int, Field(ge=0)] | None = None
