"""Contact tracing: who shared a vehicle or a place with a positive case, and what each contact gets.

The `contacts:` section of the rules document says what makes a close and a secondary contact and
the action each gets. A *trace request* is one source person's places to search from: an index
case's places since `days_before_sample` before their first positive sample (close contacts), or a
close contact's places since their first exposure (secondary contacts). Candidates come from the
vectorised proximity search over held places (`geo.proximity`); `match` then checks each candidate's
own places exactly (same scan for a vehicle, distance and overlap for a stay). `with_exposures` folds
a person's exposures into their verdict, so contacts are triaged like everyone else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from geo.proximity import distance_m, near_in_time
from geo.sweep import PlaceStore, keys_of
from pipeline.events import Reason
from pipeline.state import PersonState, Place

if TYPE_CHECKING:
    from pipeline.rules import Action, Rules
    from pipeline.triage import Verdict

__all__ = [
    "ContactRule",
    "Person",
    "ContactRuleDoc",
    "ContactRules",
    "ContactsDoc",
    "Degree",
    "Exposure",
    "TraceRequest",
    "candidates",
    "candidates_many",
    "chain",
    "chain_geojson",
    "close_request",
    "decode_exposures",
    "decode_request",
    "encode_exposures",
    "encode_request",
    "first_close",
    "match",
    "merge_exposures",
    "positives",
    "secondary_request",
    "store_of",
    "trace_states",
    "with_exposures",
]

Degree = Literal["close", "secondary"]
Same = Literal["vehicle", "place"]
_DAY = 86_400
#: Two scans of one vehicle are one place at one second; the search radius only absorbs rounding.
_SAME_SCAN_M = 1.0
_ENCODE = msgspec.json.Encoder().encode


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactRuleDoc(_Doc):
    """One contact rule as written: who (`degree`), by what (`same`), and the action they get."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=80)]
    description: Annotated[str, StringConstraints(min_length=1)]
    degree: Degree
    same: Same
    within_m: Annotated[float, Field(gt=0, le=5_000, allow_inf_nan=False)] = 100
    overlap_minutes: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 15
    action: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class ContactsDoc(_Doc):
    """The `contacts:` section; absent means no contact tracing."""

    days_before_sample: Annotated[float, Field(ge=0, le=30, allow_inf_nan=False)] = 4
    rules: list[ContactRuleDoc]


@dataclass(frozen=True, slots=True)
class ContactRule:
    """A compiled contact rule: `within_m` and `overlap_s` matter for `same: place` only."""

    id: str
    description: str
    degree: Degree
    same: Same
    within_m: float
    overlap_s: int
    action: Action


@dataclass(frozen=True, slots=True)
class ContactRules:
    """Every contact rule of a rules document, and how far before the positive sample tracing reaches."""

    rules: tuple[ContactRule, ...]
    before_sample_s: int

    def of(self, degree: Degree) -> tuple[ContactRule, ...]:
        return tuple(r for r in self.rules if r.degree == degree)


class Exposure(msgspec.Struct, frozen=True, gc=False):
    """One shared place and time that makes `person_key` a contact of `source_key` (the index case, or
    for a secondary contact the close contact they met); times are epoch seconds of the shared interval."""

    person_key: str
    degree: Degree
    rule: str
    source_key: str
    source_masked_id: str
    index_masked_id: str
    place: str
    lon: float
    lat: float
    t_from: int
    t_to: int
    event_id: str
    seq: int

    @property
    def identity(self) -> tuple[str, str, str, str, int]:
        return (self.degree, self.rule, self.source_key, self.event_id, self.seq)

    @property
    def order(self) -> tuple[int, str, str, str, int]:
        return (self.t_from, self.rule, self.source_key, self.event_id, self.seq)


class TraceRequest(msgspec.Struct, frozen=True, gc=False):
    """The places to search from for one source person; `not_before` (epoch s) bounds the shared time."""

    degree: Degree
    source_key: str
    source_masked_id: str
    index_key: str
    index_masked_id: str
    not_before: int
    places: tuple[Place, ...]

    @property
    def topic_key(self) -> str:
        """One live request per source and degree: a newer one replaces it (compacted topic key)."""
        return f"{self.degree}/{self.source_key}"

    @property
    def digest(self) -> str:
        return hashlib.sha256(encode_request(self)).hexdigest()[:16]


def encode_request(request: TraceRequest) -> bytes:
    return _ENCODE(request)


def decode_request(raw: bytes) -> TraceRequest:
    return msgspec.json.decode(raw, type=TraceRequest)


def encode_exposures(exposures: Sequence[Exposure]) -> bytes:
    return _ENCODE(list(exposures))


def decode_exposures(raw: bytes | None) -> tuple[Exposure, ...]:
    return tuple(msgspec.json.decode(raw, type=list[Exposure])) if raw else ()


def merge_exposures(old: Sequence[Exposure], new: Iterable[Exposure]) -> tuple[Exposure, ...]:
    """`old` plus the exposures of `new` not yet known (by identity), in time order; `old` itself when none is new."""
    known = {e.identity for e in old}
    fresh = []
    for e in new:
        if e.identity not in known:
            known.add(e.identity)
            fresh.append(e)
    if not fresh:
        return tuple(old)
    return tuple(sorted((*old, *fresh), key=lambda e: e.order))


# -- requests ---------------------------------------------------------------------------------
def positives(state: PersonState) -> list[int]:
    """Sample times (epoch s) of the person's positive NAT results, earliest first."""
    return sorted(n.sampled for n in state.nats if n.result == "positive")


def close_request(state: PersonState, contacts: ContactRules) -> TraceRequest | None:
    """What to search from when this person is positive: their places since `days_before_sample`
    before their first positive sample; None when they are not positive or no close rule exists."""
    sampled = positives(state)
    if not sampled or not contacts.of("close"):
        return None
    not_before = sampled[0] - contacts.before_sample_s
    places = tuple(p for p in state.places if p.t_to >= not_before and p.kind != "origin")
    return TraceRequest("close", state.person_key, state.masked_id, state.person_key, state.masked_id, not_before, places)


def first_close(exposures: Sequence[Exposure]) -> Exposure | None:
    """The earliest close exposure (what starts a close contact's own search for secondary contacts)."""
    close = [e for e in exposures if e.degree == "close"]
    return min(close, key=lambda e: e.order) if close else None


def secondary_request(state: PersonState, exposures: Sequence[Exposure], contacts: ContactRules) -> TraceRequest | None:
    """What to search from for a close contact: their places after their first exposure ended (the people
    they shared that exposure with are contacts of the index case, not through them)."""
    first = first_close(exposures)
    if first is None or not contacts.of("secondary"):
        return None
    places = tuple(p for p in state.places if p.t_to > first.t_to and p.kind != "origin")
    return TraceRequest("secondary", state.person_key, state.masked_id, first.source_key, first.index_masked_id,
                        first.t_to + 1, places)


# -- search -----------------------------------------------------------------------------------
def candidates(request: TraceRequest, store: PlaceStore, contacts: ContactRules) -> list[str]:
    """Person keys with a held place near one of the request's places at an overlapping time (sorted);
    `match` decides which of them are contacts. Vectorised over the store."""
    return candidates_many([request], store, contacts)[0]


def candidates_many(requests: Sequence[TraceRequest], store: PlaceStore, contacts: ContactRules) -> list[list[str]]:
    """`candidates` for several requests at once, aligned with them: one pass over the store per kind of
    place searched (scans for vehicles, stays for places), whatever the number of requests."""
    found: list[set[str]] = [set() for _ in requests]
    for degree in ("close", "secondary"):
        rules = contacts.of(degree)  # type: ignore[arg-type]
        mine = [i for i, r in enumerate(requests) if r.degree == degree]
        if not rules or not mine:
            continue
        stays = [r for r in rules if r.same == "place"]
        searches = []
        if any(r.same == "vehicle" for r in rules):
            searches.append(("scan", _SAME_SCAN_M, 0))
        if stays:
            searches.append(("stop", max(r.within_m for r in stays), min(r.overlap_s for r in stays)))
        for kind, radius, overlap in searches:
            owner: list[int] = []
            places: list[Place] = []
            for i in mine:
                ps = [p for p in requests[i].places if p.kind == kind and p.t_to >= requests[i].not_before]
                owner += [i] * len(ps)
                places += ps
            if not places:
                continue
            near = near_in_time(store, [p.lon for p in places], [p.lat for p in places], [p.t_from for p in places],
                                [p.t_to for p in places], radius_m=radius, min_overlap_s=overlap)
            if not len(near):
                continue
            for key, q in zip(keys_of(near.key).tolist(), near.query.tolist(), strict=True):
                found[owner[q]].add(key)
    out = []
    for request, keys in zip(requests, found, strict=True):
        keys.discard(request.source_key)
        keys.discard(request.index_key)
        out.append(sorted(keys))
    return out


def match(request: TraceRequest, state: PersonState, contacts: ContactRules) -> list[Exposure]:
    """The exposures of one person to the request's source: each place they shared, by the first rule
    (in document order) that it satisfies. The source and the index case are never their own contacts."""
    key = state.person_key
    if key in (request.source_key, request.index_key):
        return []
    rules = contacts.of(request.degree)
    out: list[Exposure] = []
    for mine in state.places:
        if mine.kind == "origin" or mine.t_to < request.not_before:
            continue
        for rule in rules:
            shared = _shared(rule, request, mine)
            if shared is not None:
                theirs, t_from, t_to = shared
                out.append(Exposure(key, request.degree, rule.id, request.source_key, request.source_masked_id,
                                    request.index_masked_id, theirs.label, theirs.lon, theirs.lat, t_from, t_to,
                                    mine.event_id, mine.seq))
                break
    return out


def _shared(rule: ContactRule, request: TraceRequest, mine: Place) -> tuple[Place, int, int] | None:
    """The request's place that `mine` shares under `rule`, with the shared interval; None when none does."""
    for theirs in request.places:
        if rule.same == "vehicle":
            if mine.kind == "scan" and theirs.kind == "scan" and theirs.event_id == mine.event_id and theirs.seq == mine.seq:
                return theirs, mine.t_from, mine.t_to
            continue
        if mine.kind != "stop" or theirs.kind != "stop":
            continue
        t_from, t_to = max(mine.t_from, theirs.t_from), min(mine.t_to, theirs.t_to)
        if t_to - t_from < rule.overlap_s or t_to < request.not_before:
            continue
        if float(distance_m(mine.lon, mine.lat, theirs.lon, theirs.lat)) <= rule.within_m:
            return theirs, t_from, t_to
    return None


def store_of(states: Iterable[PersonState]) -> PlaceStore:
    """A place store holding every place of `states` (what a worker holds for its partitions)."""
    store = PlaceStore()
    keys: list[str] = []
    places: list[Place] = []
    for s in states:
        keys += [s.person_key] * len(s.places)
        places += s.places
    if places:
        store.add(keys, [p.lon for p in places], [p.lat for p in places], [p.t_from for p in places], [p.t_to for p in places])
    return store


def trace_states(states: Mapping[str, PersonState], rules: Rules, store: PlaceStore | None = None) -> dict[str, tuple[Exposure, ...]]:
    """Every person's exposures among `states` (offline): close contacts of each positive person, then
    secondary contacts of each close contact. The same search the workers run on the stream."""
    contacts = rules.contacts
    if contacts is None or not contacts.rules:
        return {}
    held = store if store is not None else store_of(states.values())
    found: dict[str, tuple[Exposure, ...]] = {}

    def run(request: TraceRequest | None) -> None:
        if request is None:
            return
        for key in candidates(request, held, contacts):
            state = states.get(key)
            if state is not None:
                hits = match(request, state, contacts)
                if hits:
                    found[key] = merge_exposures(found.get(key, ()), hits)

    for state in states.values():
        run(close_request(state, contacts))
    for key in [k for k, ex in found.items() if first_close(ex) is not None]:
        run(secondary_request(states[key], found[key], contacts))
    return found


# -- verdicts ---------------------------------------------------------------------------------
def _when(t: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M")


def _reason(rule: ContactRule, e: Exposure, tz: tzinfo) -> Reason:
    if e.degree == "close":
        who = f"index case {e.index_masked_id}"
    else:
        who = f"close contact {e.source_masked_id} of index case {e.index_masked_id}"
    text = f"{rule.description}: {who} at {e.place}, {_when(e.t_from, tz)}–{_when(e.t_to, tz)}"
    return Reason(rule=rule.id, text=text, at=datetime.fromtimestamp(e.t_from, tz))


def with_exposures(verdict: Verdict, exposures: Sequence[Exposure], rules: Rules, now: datetime) -> Verdict:
    """The verdict with the person's live exposures (inside the lookback, not in the future) as fired
    rules: one reason per contact rule and source (its earliest exposure); the most severe action wins."""
    contacts = rules.contacts
    if contacts is None or not exposures:
        return verdict
    t_now = int(now.timestamp())
    floor = t_now - rules.windows.lookback
    by_id = {r.id: r for r in contacts.rules}
    earliest: dict[tuple[str, str], Exposure] = {}
    for e in exposures:
        rule = by_id.get(e.rule)
        if rule is None or rule.degree != e.degree or e.t_to < floor or e.t_from > t_now:
            continue
        k = (e.rule, e.source_key)
        if k not in earliest or e.order < earliest[k].order:
            earliest[k] = e
    if not earliest:
        return verdict
    extra = [(by_id[e.rule].id, _reason(by_id[e.rule], e, rules.tz), by_id[e.rule].action)
             for e in sorted(earliest.values(), key=lambda e: e.order)]
    top = max(extra, key=lambda f: f[2].severity)[2]
    if top.severity <= verdict.severity:
        action_name, severity, duration, due = verdict.action, verdict.severity, verdict.duration_days, verdict.due_at
    else:
        action_name, severity, duration = top.name, top.severity, top.duration_days
        due = None if top.accept_within_minutes is None else now.astimezone(rules.tz) + timedelta(minutes=top.accept_within_minutes)
    # the verdict's own reasons keep their order, at the verdict's severity; contact reasons slot in by theirs
    merged = [(rid, reason, verdict.severity) for rid, reason in zip(verdict.rules, verdict.reasons, strict=True)]
    merged += [(rid, reason, a.severity) for rid, reason, a in extra]
    merged.sort(key=lambda f: -f[2])
    return msgspec.structs.replace(
        verdict, action=action_name, severity=severity, duration_days=duration, due_at=due,
        rules=tuple(f[0] for f in merged), reasons=tuple(f[1] for f in merged),
    )



# -- the chain, for the epidemiologist ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Person:
    """Who a contact is, as the chain shows them (masked ID only)."""

    person_key: str
    masked_id: str
    name: str


def _iso(t: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


def chain(
    index_key: str,
    index_masked_id: str,
    index_places: Sequence[Place],
    exposures: Mapping[str, Sequence[Exposure]],
    people: Mapping[str, Person],
    tz: tzinfo,
) -> dict:
    """An index case's chain as JSON: their places and times, each close contact (exposed to the index
    case) and each secondary contact (exposed to one of those close contacts), with the shared place."""
    close = {key: [e for e in ex if e.degree == "close" and e.source_key == index_key] for key, ex in exposures.items()}
    close = {key: ex for key, ex in close.items() if ex}
    secondary = {key: [e for e in ex if e.degree == "secondary" and e.source_key in close]
                 for key, ex in exposures.items()}
    rows = []
    for degree, found in (("close", close), ("secondary", secondary)):
        for key, ex in sorted(found.items()):
            for e in sorted(ex, key=lambda e: e.order):
                who = people.get(key)
                rows.append({
                    "person_key": key, "masked_id": who.masked_id if who else "", "name": who.name if who else "",
                    "degree": degree, "rule": e.rule, "via_masked_id": e.source_masked_id, "place": e.place,
                    "lon": e.lon, "lat": e.lat, "from": _iso(e.t_from, tz), "to": _iso(e.t_to, tz),
                })
    return {
        "index": {
            "person_key": index_key, "masked_id": index_masked_id,
            "places": [{"kind": p.kind, "place": p.label, "lon": p.lon, "lat": p.lat, "from": _iso(p.t_from, tz),
                        "to": _iso(p.t_to, tz)} for p in sorted(index_places, key=lambda p: p.order) if p.kind != "origin"],
        },
        "contacts": rows,
        "counts": {"close": len(close), "secondary": sum(1 for ex in secondary.values() if ex)},
    }


def chain_geojson(found: dict) -> dict:
    """The chain as a GeoJSON FeatureCollection: the index case's places, then one point per shared place."""
    index = found["index"]
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
         "properties": {"role": "index", "masked_id": index["masked_id"], "kind": p["kind"], "place": p["place"],
                        "from": p["from"], "to": p["to"]}}
        for p in index["places"]
    ]
    features += [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [c["lon"], c["lat"]]},
         "properties": {"role": c["degree"], **{k: v for k, v in c.items() if k not in ("lon", "lat", "person_key")}}}
        for c in found["contacts"]
    ]
    return {"type": "FeatureCollection", "features": features}
