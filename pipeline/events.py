"""Event contracts: the JSON shapes that come in, travel inside, and go out.

Pydantic v2 models with unknown fields rejected, timezone-aware datetimes required, coordinates
range-checked ((0, 0) is refused as a missing position) and resident IDs checked per GB 11643.
Inputs hide their values in validation errors so a raw ID number never reaches a message.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
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
    "CheckpointScan",
    "CommunityProperties",
    "DeadLetter",
    "Declaration",
    "DeclarationPayload",
    "Destination",
    "EventKind",
    "InputEvent",
    "ItineraryStop",
    "Location",
    "LoopKind",
    "LoopMessage",
    "NatPayload",
    "NatReport",
    "NatResult",
    "Person",
    "PersonEvent",
    "Reason",
    "RegionProperties",
    "Role",
    "ScanPayload",
    "TriageMessage",
    "Vehicle",
    "VehicleOrigin",
    "INPUT_ADAPTER",
]

EventKind = Literal["declaration", "checkpoint_scan", "nat_result"]
Role = Literal["driver", "passenger", "pedestrian"]
CaseEventKind = Literal["accepted", "resolved", "escalated", "note", "dispatched", "picked_up", "received", "request",
                        "answered", "request_escalated"]
Action = str

Lon = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
Lat = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=2000)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 \-]{4,19}$")]


class _Strict(BaseModel):
    """Base for every contract: unknown fields are refused, inputs never echoed in errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True)


class _Point(_Strict):
    """A WGS84 position; (0, 0) is what a missing GPS fix looks like, so it is refused."""

    lon: Lon
    lat: Lat

    @model_validator(mode="after")
    def _not_null_island(self) -> _Point:
        if self.lon == 0.0 and self.lat == 0.0:
            raise PydanticCustomError("coordinates", "(0, 0) is not a real position; the location is missing")
        return self


def _valid_id(value: str) -> str:
    outcome = check_id(value)
    if not outcome.valid:
        raise PydanticCustomError(f"id_{outcome.reason}", "resident ID number is invalid: {reason}", {"reason": outcome.reason})
    return outcome.normalised  # type: ignore[return-value]


class Person(_Strict):
    """Who an event is about, as the declaration front end and the lab send it."""

    id_number: str
    name: Text
    phone: Phone

    _check_id = field_validator("id_number")(_valid_id)


class Destination(_Point):
    address: LongText


class ItineraryStop(_Point):
    place: Text
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> ItineraryStop:
        if self.to < self.from_:
            raise PydanticCustomError("time_order", "stop ends before it starts ('to' < 'from')")
        return self


class NatReport(_Strict):
    sampled_at: AwareDatetime
    result: Literal["negative", "positive"]
    lab: Text


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


class Location(_Point):
    pass


class VehicleOrigin(_Point):
    place: Text


class Vehicle(_Strict):
    plate: Text
    origin: VehicleOrigin
    departed_at: AwareDatetime


class CheckpointPerson(_Strict):
    id_number: str
    name: Text
    phone: Phone
    role: Role

    _check_id = field_validator("id_number")(_valid_id)


class CheckpointScan(_Strict):
    """One vehicle (or pedestrian group) at a logistics checkpoint, with 1..60 people."""

    type: Literal["checkpoint_scan"]
    event_id: EventId
    checkpoint_id: Text
    scanned_at: AwareDatetime
    location: Location
    vehicle: Vehicle | None = None
    people: list[CheckpointPerson] = Field(min_length=1, max_length=60)


class NatResult(_Strict):
    """A nucleic-acid test result pushed by a lab."""

    type: Literal["nat_result"]
    event_id: EventId
    person: Person
    sampled_at: AwareDatetime
    reported_at: AwareDatetime
    result: Literal["negative", "positive", "invalid"]
    lab_id: Text


InputEvent = Annotated[Declaration | CheckpointScan | NatResult, Field(discriminator="type")]
INPUT_ADAPTER: TypeAdapter[Declaration | CheckpointScan | NatResult] = TypeAdapter(InputEvent)


class DeclarationPayload(_Strict):
    kind: Literal["declaration"] = "declaration"
    submitted_at: AwareDatetime
    arrival_at: AwareDatetime
    destination: Destination
    itinerary: list[ItineraryStop]
    nat_report: NatReport | None = None


class ScanPayload(_Strict):
    kind: Literal["checkpoint_scan"] = "checkpoint_scan"
    checkpoint_id: str
    scanned_at: AwareDatetime
    location: Location
    vehicle: Vehicle | None = None
    role: Role


class NatPayload(_Strict):
    kind: Literal["nat_result"] = "nat_result"
    sampled_at: AwareDatetime
    reported_at: AwareDatetime
    result: Literal["negative", "positive", "invalid"]
    lab_id: str


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
    payload: Annotated[DeclarationPayload | ScanPayload | NatPayload, Field(discriminator="kind")]


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


def occurred_at(event: Declaration | CheckpointScan | NatResult) -> datetime:
    """The event time ingest checks for skew: when it was submitted, scanned or reported."""
    if isinstance(event, Declaration):
        return event.submitted_at
    if isinstance(event, CheckpointScan):
        return event.scanned_at
    return event.reported_at
