"""Person state: the join of one person's events, small enough to live in a changelogged table.

`apply` is pure and idempotent by event id, independent of arrival order for events inside the
horizon, and bounded: places and tests older than the horizon (measured from the newest event the
person has) are dropped, and at most `MAX_PLACES` places and `MAX_NATS` tests are kept.
All times inside the state are integer epoch seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from operator import attrgetter
from typing import Literal

import msgspec
import orjson

from pipeline.errors import StateError
from pipeline.events import (
    DeclarationPayload,
    DeclarationPayloadMirror,
    NatPayload,
    NatPayloadMirror,
    Payload,
    PayloadMirror,
    PersonEvent,
    PersonEventMirror,
    ScanPayload,
    ScanPayloadMirror,
)

__all__ = [
    "DEFAULT_HORIZON",
    "MAX_NATS",
    "MAX_PLACES",
    "DeclarationInfo",
    "LastVerdict",
    "Managed",
    "Nat",
    "Observation",
    "PersonState",
    "Place",
    "PlaceKind",
    "apply",
    "apply_many",
    "declaration_parts",
    "epoch_seconds",
    "fold",
    "nat_of",
    "new_state",
    "observation_of",
    "payload_parts",
    "remember",
    "scan_places",
    "state_from_bytes",
    "state_of",
    "state_to_bytes",
    "states_of",
]

PlaceKind = Literal["stop", "scan", "origin"]

#: How far back from the newest event a place or test is kept, unless the caller passes the rules' window.
DEFAULT_HORIZON = timedelta(days=14)
#: Hard bounds, whatever the horizon: the newest places and tests win.
MAX_PLACES = 64
MAX_NATS = 24
#: Format marker of `state_to_bytes` (msgpack); 1 was a JSON array, still decoded.
_FORMAT = 2
_FORMAT_JSON = 1
_KINDS: tuple[PlaceKind, ...] = ("stop", "scan", "origin")
_KIND_CODE = {kind: code for code, kind in enumerate(_KINDS)}
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder().decode
_NO_TIME = timedelta(0)


class _Record(msgspec.Struct, frozen=True, gc=False):
    """Base of the state's records: immutable, hashable and compared by value, like a frozen dataclass.

    A frozen msgspec Struct rather than a frozen dataclass because it is built ten times faster, and
    offline evaluation builds several per event. Records hold values, tuples and other records built
    before them, so they can never be part of a reference cycle: `gc=False` spares the cycle collector.
    """


class Nat(_Record):
    """One NAT result (from a lab, or the report attached to a declaration)."""

    event_id: str
    sampled: int
    reported: int
    result: str
    lab: str


class Place(_Record):
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


class DeclarationInfo(_Record):
    """The latest declaration (by submission time): arrival, destination point and the declared address."""

    event_id: str
    submitted: int
    arrival: int
    lon: float
    lat: float
    address: str = ""


class LastVerdict(_Record):
    """What the person was last told, so routing can tell a change from a repeat."""

    action: str
    severity: int
    rules_version: str
    case_id: str
    message_id: str
    at: int
    community: str = ""


class Managed(_Record):
    """The action a person is managed under after triage; the tests met are read from `nats` (`pipeline.management`).

    `day_one` is a date ordinal in the display zone, `start` the moment hour windows count from, `since`
    when management began; `ended` is when the release was announced, bit i of `told` that test i's miss was.
    """

    action: str
    day_one: int
    start: int
    since: int
    case_id: str
    ended: int = 0
    told: int = 0


class PersonState(_Record):
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
    managed: Managed | None = None

    @property
    def birth_date(self) -> date | None:
        return date.fromordinal(self.birth) if self.birth > 0 else None


class Observation(_Record):
    """One person's share of one event, cut into the pieces the state keeps: what `fold` folds.

    Its nats and places all come from that one event, so no two of them share an id.
    """

    person_key: str
    event_id: str
    occurred: int
    masked_id: str
    name: str
    phone: str
    birth: int
    declaration: DeclarationInfo | None = None
    nats: tuple[Nat, ...] = ()
    places: tuple[Place, ...] = ()


def new_state(person_key: str) -> PersonState:
    """An empty state for a person nobody has seen yet."""
    if not person_key:
        raise StateError(f"person_key was {person_key!r} but is expected to be a non-empty string")
    return PersonState(person_key=person_key)


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The Unix epoch in each fixed-offset tzinfo object met so far (a few dozen offsets exist).
_EPOCH_IN: dict[timezone, datetime] = {}


def epoch_seconds(moment: datetime) -> int:
    """`int(moment.timestamp())`, three times faster for whole seconds at a fixed UTC offset, as decoded times are.

    Subtracting the epoch held in the same fixed-offset tzinfo object takes datetime's same-zone
    shortcut (no offset arithmetic); with no microseconds the whole seconds are exact.
    """
    zone = moment.tzinfo
    if moment.microsecond == 0 and type(zone) is timezone:
        epoch = _EPOCH_IN.get(zone)
        if epoch is None:
            epoch = _EPOCH_IN[zone] = _UNIX_EPOCH.astimezone(zone)
        since = moment - epoch
        return since.days * 86_400 + since.seconds
    return int(moment.timestamp())


def _coordinate(value: float) -> float:
    """`round(value, 6)`; a value that already has at most 6 decimals (most do) skips the slow decimal rounding.

    When `value` is the double nearest some n / 10**6, rounding it to 6 decimals gives it back unchanged.
    """
    if round(value * 1e6) / 1e6 == value:
        return value
    return round(value, 6)


def nat_of(event_id: str, result: NatPayload | NatPayloadMirror) -> Nat:
    """The state's record of a lab's NAT result."""
    return Nat(event_id, epoch_seconds(result.sampled_at), epoch_seconds(result.reported_at), result.result, result.lab_id)


def scan_places(event_id: str, scan: ScanPayload | ScanPayloadMirror, role: str) -> tuple[Place, ...]:
    """The checkpoint, and the vehicle's origin when there is one, for one person on board."""
    t = epoch_seconds(scan.scanned_at)
    loc = scan.location
    at_checkpoint = Place(event_id, 0, "scan", t, t, _coordinate(loc.lon), _coordinate(loc.lat), scan.checkpoint_id, role)
    vehicle = scan.vehicle
    if vehicle is None:
        return (at_checkpoint,)
    d = epoch_seconds(vehicle.departed_at)
    o = vehicle.origin
    return (at_checkpoint, Place(event_id, 1, "origin", d, d, _coordinate(o.lon), _coordinate(o.lat), o.place, role))


def declaration_parts(
    event_id: str, declaration: DeclarationPayload | DeclarationPayloadMirror
) -> tuple[DeclarationInfo, tuple[Nat, ...], tuple[Place, ...]]:
    """Arrival and destination, the attached NAT report (if any) and the itinerary stops of a declaration."""
    dest = declaration.destination
    info = DeclarationInfo(
        event_id, epoch_seconds(declaration.submitted_at), epoch_seconds(declaration.arrival_at),
        _coordinate(dest.lon), _coordinate(dest.lat), dest.address,
    )
    places = tuple([
        Place(event_id, i, "stop", epoch_seconds(stop.from_), epoch_seconds(stop.to),
              _coordinate(stop.lon), _coordinate(stop.lat), stop.place)
        for i, stop in enumerate(declaration.itinerary)
    ])
    report = declaration.nat_report
    if report is None:
        return info, (), places
    sampled = epoch_seconds(report.sampled_at)
    return info, (Nat(event_id + "#report", sampled, sampled, report.result, report.lab),), places


def payload_parts(event_id: str, payload: Payload | PayloadMirror) -> tuple[DeclarationInfo | None, tuple[Nat, ...], tuple[Place, ...]]:
    """The state's pieces of one person event's payload, from the pydantic contract or its msgspec mirror."""
    kind = payload.kind
    if kind == "nat_result":
        return None, (nat_of(event_id, payload),), ()  # type: ignore[arg-type]
    if kind == "checkpoint_scan":
        return None, (), scan_places(event_id, payload, payload.role)  # type: ignore[arg-type, union-attr]
    if kind == "declaration":
        return declaration_parts(event_id, payload)  # type: ignore[arg-type]
    raise StateError(f"event {event_id!r} has a payload of kind {kind!r} the state does not know")


def observation_of(event: PersonEvent | PersonEventMirror) -> Observation:
    """Cut one person event into the state's pieces, from the pydantic contract or its msgspec mirror."""
    eid = event.event_id
    info, nats, places = payload_parts(eid, event.payload)
    return Observation(
        event.person_key, eid, epoch_seconds(event.occurred_at), event.masked_id, event.name, event.phone,
        event.birth_date.toordinal(), info, nats, places,
    )


def apply(state: PersonState, event: PersonEvent, *, horizon: timedelta = DEFAULT_HORIZON) -> PersonState:
    """Fold one event into the state; the same event twice, or an event past the horizon, changes nothing."""
    return apply_many(state, (event,), horizon=horizon)


def apply_many(state: PersonState, events: Iterable[PersonEvent], *, horizon: timedelta = DEFAULT_HORIZON) -> PersonState:
    """Fold several events at once (same result as applying them one by one, in any order); one trim at the end."""
    return fold(state, map(observation_of, events), horizon=horizon)


_NAT_ORDER = attrgetter("sampled", "event_id")
_PLACE_ORDER = attrgetter("t_to", "event_id", "seq")


def fold(state: PersonState, observations: Iterable[Observation], *, horizon: timedelta = DEFAULT_HORIZON) -> PersonState:
    """`apply_many` on events already cut into pieces (`observation_of`, or `pipeline.ingest.Observer`)."""
    new = _merged(state.person_key, state, observations, _horizon_seconds(horizon))
    if new is None:
        return state
    return new if new.newest != state.newest or new != state else state


def state_of(person_key: str, observations: Iterable[Observation], *, horizon: timedelta = DEFAULT_HORIZON) -> PersonState:
    """`fold(new_state(person_key), observations)`, without building the empty state first."""
    return _state_of(person_key, list(observations), _horizon_seconds(horizon))


def states_of(grouped: dict[str, list[Observation]], *, horizon: timedelta = DEFAULT_HORIZON) -> dict[str, PersonState]:
    """`state_of` for every person of `grouped` (person key -> observations), in its order: offline evaluation."""
    floor_gap = _horizon_seconds(horizon)
    return {key: _state_of(key, observations, floor_gap) for key, observations in grouped.items()}


def _state_of(person_key: str, observations: list[Observation], floor_gap: int) -> PersonState:
    if not person_key:
        raise StateError(f"person_key was {person_key!r} but is expected to be a non-empty string")
    if len(observations) == 1:
        return _from_one(person_key, observations[0], floor_gap)
    new = _merged(person_key, None, observations, floor_gap)
    return PersonState(person_key=person_key) if new is None else new


def _from_one(key: str, seen: Observation, floor_gap: int) -> PersonState:
    """`_merged` of a single observation into nothing (most people offline): one event's pieces never repeat an id."""
    if seen.person_key != key:
        raise StateError(f"event {seen.event_id!r} is for another person than this state")
    floor = seen.occurred - floor_gap
    nats = seen.nats
    if len(nats) > 1 or (nats and nats[0].sampled < floor):
        nats = tuple(sorted([n for n in nats if n.sampled >= floor], key=_NAT_ORDER)[-MAX_NATS:])
    places = seen.places
    if len(places) > 1 or (places and places[0].t_to < floor):
        places = tuple(sorted([p for p in places if p.t_to >= floor], key=_PLACE_ORDER)[-MAX_PLACES:])
    decl = seen.declaration
    if decl is not None and decl.submitted < floor:
        decl = None
    return PersonState(key, seen.masked_id, seen.name, seen.phone, seen.birth, seen.occurred, seen.event_id, decl, nats, places)


def _horizon_seconds(horizon: timedelta) -> int:
    if horizon < _NO_TIME:
        raise StateError(f"horizon was {horizon} but is expected to be zero or positive")
    return int(horizon.total_seconds())


def _merged(key: str, state: PersonState | None, observations: Iterable[Observation], floor_gap: int) -> PersonState | None:
    """The state after the observations, trimmed `floor_gap` seconds behind the newest; None when nothing changed."""
    if state is None:
        newest, newest_id, decl, last, managed = -(2**62), "", None, None, None
        masked_id, name, phone, birth = "", "", "", 0
        nats: list[Nat] = []
        places: list[Place] = []
    else:
        newest, newest_id, decl, last, managed = state.newest, state.newest_id, state.declaration, state.last, state.managed
        masked_id, name, phone, birth = state.masked_id, state.name, state.phone, state.birth
        nats = list(state.nats)
        places = list(state.places)
    nat_ids = {n.event_id for n in nats}
    place_ids = {(p.event_id, p.seq) for p in places}
    changed = False
    for seen in observations:
        if seen.person_key != key:
            raise StateError(f"event {seen.event_id!r} is for another person than this state")
        occurred, event_id = seen.occurred, seen.event_id
        if occurred > newest or (occurred == newest and event_id > newest_id):
            newest, newest_id = occurred, event_id
            masked_id, name, phone, birth = seen.masked_id, seen.name, seen.phone, seen.birth
            changed = True
        info = seen.declaration
        if info is not None and (decl is None or (info.submitted, info.event_id) > (decl.submitted, decl.event_id)):
            decl = info
            changed = True
        for nat in seen.nats:
            if nat.event_id not in nat_ids:
                nat_ids.add(nat.event_id)
                nats.append(nat)
                changed = True
        for place in seen.places:
            place_id = (place.event_id, place.seq)
            if place_id not in place_ids:
                place_ids.add(place_id)
                places.append(place)
                changed = True
    if not changed:
        return None
    floor = newest - floor_gap
    kept_nats = sorted([n for n in nats if n.sampled >= floor], key=_NAT_ORDER)[-MAX_NATS:]
    kept_places = sorted([p for p in places if p.t_to >= floor], key=_PLACE_ORDER)[-MAX_PLACES:]
    if decl is not None and decl.submitted < floor:
        decl = None
    return PersonState(key, masked_id, name, phone, birth, newest, newest_id, decl, tuple(kept_nats), tuple(kept_places), last,
                       managed)


def remember(state: PersonState, last: LastVerdict | None) -> PersonState:
    """The state with the verdict the person was last told; the same object when nothing changed."""
    if last is None or last == state.last:
        return state
    return msgspec.structs.replace(state, last=last)


def state_to_bytes(state: PersonState) -> bytes:
    """Compact msgpack array form (no field names, place kinds as small ints) for the person table's changelog.

    msgspec allocates the output at its exact size; orjson's output keeps its whole growth buffer (4 KiB
    and more for a state of a few hundred bytes), which a table holding one value per person pays for.
    """
    d = state.declaration
    last = state.last
    m = state.managed
    return _ENCODE((
        _FORMAT,
        state.person_key,
        state.masked_id,
        state.name,
        state.phone,
        state.birth,
        state.newest,
        state.newest_id,
        None if d is None else (d.event_id, d.submitted, d.arrival, d.lon, d.lat, d.address),
        [(n.event_id, n.sampled, n.reported, n.result, n.lab) for n in state.nats],
        [(p.event_id, p.seq, _KIND_CODE[p.kind], p.t_from, p.t_to, p.lon, p.lat, p.label, p.role) for p in state.places],
        None if last is None else (last.action, last.severity, last.rules_version, last.case_id, last.message_id, last.at,
                                   last.community),
        *(() if m is None else ((m.action, m.day_one, m.start, m.since, m.case_id, m.ended, m.told),)),
    ))


def state_from_bytes(raw: bytes) -> PersonState:
    """Inverse of `state_to_bytes`, and of the JSON array form of format 1 still found in older changelogs;
    raises `StateError` on anything else."""
    try:
        if raw[:1] == b"[":
            return _decoded_state(orjson.loads(raw), _FORMAT_JSON, lambda p: Place(*p))
        return _decoded_state(_DECODE(raw), _FORMAT, lambda p: Place(p[0], p[1], _KINDS[p[2]], *p[3:]))
    except StateError:
        raise
    except (msgspec.DecodeError, orjson.JSONDecodeError, TypeError, ValueError, IndexError) as exc:
        raise StateError(f"person state bytes do not decode: {exc}") from None


def _decoded_state(v: object, marker: int, place: Callable[[list], Place]) -> PersonState:
    """A state from its decoded array: `marker` is the format expected, `place` builds a place from its row
    (format 1 keeps place kinds as strings, the msgpack format as small ints)."""
    if not isinstance(v, list) or not v or v[0] != marker:
        raise StateError(f"person state has an unknown format marker {v[0] if isinstance(v, list) and v else v!r:.40}")
    (_, key, masked, name, phone, birth, newest, newest_id, d, nats, places, last, *managed) = v
    return PersonState(
        key, masked, name, phone, birth, newest, newest_id,
        None if d is None else DeclarationInfo(*d),
        tuple([Nat(*n) for n in nats]),
        tuple([place(p) for p in places]),
        None if last is None else LastVerdict(*last),
        Managed(*managed[0]) if managed else None,
    )
