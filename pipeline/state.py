"""Person state: the join of one person's events, small enough to live in a changelogged table.

`apply` is pure and idempotent by event id, independent of arrival order for events inside the
horizon, and bounded: places and tests older than the horizon (measured from the newest event the
person has) are dropped, and at most `MAX_PLACES` places and `MAX_NATS` tests are kept.
All times inside the state are integer epoch seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Literal

import orjson

from pipeline.errors import StateError
from pipeline.events import DeclarationPayload, NatPayload, PersonEvent, ScanPayload

__all__ = [
    "DEFAULT_HORIZON",
    "MAX_NATS",
    "MAX_PLACES",
    "DeclarationInfo",
    "LastVerdict",
    "Nat",
    "PersonState",
    "Place",
    "PlaceKind",
    "apply",
    "apply_many",
    "new_state",
    "remember",
    "state_from_bytes",
    "state_to_bytes",
]

PlaceKind = Literal["stop", "scan", "origin"]

#: How far back from the newest event a place or test is kept, unless the caller passes the rules' window.
DEFAULT_HORIZON = timedelta(days=14)
#: Hard bounds, whatever the horizon: the newest places and tests win.
MAX_PLACES = 64
MAX_NATS = 24
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Nat:
    """One NAT result (from a lab, or the report attached to a declaration)."""

    event_id: str
    sampled: int
    reported: int
    result: str
    lab: str


@dataclass(frozen=True, slots=True)
class Place:
    """Where the person was: an itinerary stop, a checkpoint scan, or the origin of their vehicle."""

    event_id: str
    seq: int
    kind: PlaceKind
    t_from: int
    t_to: int
    lon: float
    lat: float
    label: str
    role: str = ""

    @property
    def order(self) -> tuple[int, str, int]:
        return (self.t_to, self.event_id, self.seq)


@dataclass(frozen=True, slots=True)
class DeclarationInfo:
    """The latest declaration (by submission time): arrival and destination point."""

    event_id: str
    submitted: int
    arrival: int
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class LastVerdict:
    """What the person was last told, so routing can tell a change from a repeat."""

    action: str
    severity: int
    rules_version: str
    case_id: str
    message_id: str
    at: int
    community: str = ""


@dataclass(frozen=True, slots=True)
class PersonState:
    """Everything the rules need about one person; `newest` is the latest event time seen."""

    person_key: str
    masked_id: str = ""
    name: str = ""
    phone: str = ""
    birth: int = 0
    newest: int = -(2**62)
    newest_id: str = ""
    declaration: DeclarationInfo | None = None
    nats: tuple[Nat, ...] = ()
    places: tuple[Place, ...] = ()
    last: LastVerdict | None = None

    @property
    def birth_date(self) -> date | None:
        return date.fromordinal(self.birth) if self.birth > 0 else None


def new_state(person_key: str) -> PersonState:
    """An empty state for a person nobody has seen yet."""
    if not person_key:
        raise StateError(f"person_key was {person_key!r} but is expected to be a non-empty string")
    return PersonState(person_key=person_key)


def _epoch(value) -> int:  # noqa: ANN001 - datetime, hot path
    return int(value.timestamp())


def _parts(event: PersonEvent) -> tuple[DeclarationInfo | None, list[Nat], list[Place]]:
    """Split one event into the state's pieces."""
    payload = event.payload
    eid = event.event_id
    if isinstance(payload, NatPayload):
        return None, [Nat(eid, _epoch(payload.sampled_at), _epoch(payload.reported_at), payload.result, payload.lab_id)], []
    if isinstance(payload, ScanPayload):
        t = _epoch(payload.scanned_at)
        loc = payload.location
        places = [Place(eid, 0, "scan", t, t, round(loc.lon, 6), round(loc.lat, 6), payload.checkpoint_id, payload.role)]
        vehicle = payload.vehicle
        if vehicle is not None:
            d = _epoch(vehicle.departed_at)
            o = vehicle.origin
            places.append(Place(eid, 1, "origin", d, d, round(o.lon, 6), round(o.lat, 6), o.place, payload.role))
        return None, [], places
    if isinstance(payload, DeclarationPayload):
        dest = payload.destination
        info = DeclarationInfo(eid, _epoch(payload.submitted_at), _epoch(payload.arrival_at), round(dest.lon, 6), round(dest.lat, 6))
        places = [
            Place(eid, i, "stop", _epoch(stop.from_), _epoch(stop.to), round(stop.lon, 6), round(stop.lat, 6), stop.place)
            for i, stop in enumerate(payload.itinerary)
        ]
        nats = []
        report = payload.nat_report
        if report is not None:
            sampled = _epoch(report.sampled_at)
            nats.append(Nat(eid + "#report", sampled, sampled, report.result, report.lab))
        return info, nats, places
    raise StateError(f"event {eid!r} has a payload of kind {type(payload).__name__!r} the state does not know")


def apply(state: PersonState, event: PersonEvent, *, horizon: timedelta = DEFAULT_HORIZON) -> PersonState:
    """Fold one event into the state; the same event twice, or an event past the horizon, changes nothing."""
    return apply_many(state, (event,), horizon=horizon)


def apply_many(state: PersonState, events: Iterable[PersonEvent], *, horizon: timedelta = DEFAULT_HORIZON) -> PersonState:
    """Fold several events at once (same result as applying them one by one, in any order); one trim at the end."""
    if horizon < timedelta(0):
        raise StateError(f"horizon was {horizon} but is expected to be zero or positive")
    newest, newest_id = state.newest, state.newest_id
    contact = None
    decl = state.declaration
    nat_ids = {n.event_id for n in state.nats}
    place_ids = {(p.event_id, p.seq) for p in state.places}
    nats = list(state.nats)
    places = list(state.places)
    changed = False
    for event in events:
        if event.person_key != state.person_key:
            raise StateError(f"event {event.event_id!r} is for another person than this state")
        occurred = _epoch(event.occurred_at)
        if (occurred, event.event_id) > (newest, newest_id):
            newest, newest_id, contact = occurred, event.event_id, event
            changed = True
        info, new_nats, new_places = _parts(event)
        if info is not None and (decl is None or (info.submitted, info.event_id) > (decl.submitted, decl.event_id)):
            decl = info
            changed = True
        for nat in new_nats:
            if nat.event_id not in nat_ids:
                nat_ids.add(nat.event_id)
                nats.append(nat)
                changed = True
        for place in new_places:
            if (place.event_id, place.seq) not in place_ids:
                place_ids.add((place.event_id, place.seq))
                places.append(place)
                changed = True
    if not changed:
        return state
    floor = newest - int(horizon.total_seconds())
    nats = sorted((n for n in nats if n.sampled >= floor), key=lambda n: (n.sampled, n.event_id))[-MAX_NATS:]
    places = sorted((p for p in places if p.t_to >= floor), key=lambda p: (p.t_to, p.event_id, p.seq))[-MAX_PLACES:]
    if decl is not None and decl.submitted < floor:
        decl = None
    fields = {}
    if contact is not None:
        fields = {
            "masked_id": contact.masked_id,
            "name": contact.name,
            "phone": contact.phone,
            "birth": contact.birth_date.toordinal(),
        }
    new = replace(state, newest=newest, newest_id=newest_id, declaration=decl, nats=tuple(nats), places=tuple(places), **fields)
    return state if new == state else new


def remember(state: PersonState, last: LastVerdict | None) -> PersonState:
    """The state with the verdict the person was last told; the same object when nothing changed."""
    if last is None or last == state.last:
        return state
    return replace(state, last=last)


def state_to_bytes(state: PersonState) -> bytes:
    """Compact JSON array form (no field names) for the person table's changelog."""
    d = state.declaration
    last = state.last
    return orjson.dumps([
        _FORMAT,
        state.person_key,
        state.masked_id,
        state.name,
        state.phone,
        state.birth,
        state.newest,
        state.newest_id,
        None if d is None else [d.event_id, d.submitted, d.arrival, d.lon, d.lat],
        [[n.event_id, n.sampled, n.reported, n.result, n.lab] for n in state.nats],
        [[p.event_id, p.seq, p.kind, p.t_from, p.t_to, p.lon, p.lat, p.label, p.role] for p in state.places],
        None if last is None else [last.action, last.severity, last.rules_version, last.case_id, last.message_id, last.at, last.community],
    ])


def state_from_bytes(raw: bytes) -> PersonState:
    """Inverse of `state_to_bytes`; raises `StateError` on anything else."""
    try:
        v = orjson.loads(raw)
        if not isinstance(v, list) or not v or v[0] != _FORMAT:
            raise StateError(f"person state has an unknown format marker {v[0] if isinstance(v, list) and v else v!r:.40}")
        (_, key, masked, name, phone, birth, newest, newest_id, d, nats, places, last) = v
        return PersonState(
            person_key=key,
            masked_id=masked,
            name=name,
            phone=phone,
            birth=birth,
            newest=newest,
            newest_id=newest_id,
            declaration=None if d is None else DeclarationInfo(*d),
            nats=tuple(Nat(*n) for n in nats),
            places=tuple(Place(*p) for p in places),
            last=None if last is None else LastVerdict(*last),
        )
    except StateError:
        raise
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise StateError(f"person state bytes do not decode: {exc}") from None
