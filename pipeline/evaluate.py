"""Offline evaluation: a file of mixed raw events -> one verdict per person, as the live pipeline would decide.

Every record goes through a `pipeline.ingest.Observer` (which validates exactly as the streaming
`ingest` does); each person's share of an event is grouped per person and folded once with
`state.states_of`, then every person is evaluated once, with vectorised geo lookups per batch of people.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Literal

import msgspec
import orjson

from geo.communities import CommunityIndex
from geo.regions import RiskIndex
from pipeline.contacts import Exposure, trace_states, with_exposures
from pipeline.errors import PipelineError, RejectedEvent
from pipeline.events import DeadLetter
from pipeline.ingest import Observer, dead_letter
from pipeline.join import managed
from pipeline.management import Management
from pipeline.rules import Rules
from pipeline.state import Observation, PersonState, fold, new_state, states_of
from pipeline.triage import Verdict, evaluate_many, remember, route

#: When the events were seen: each at its own time (as a live worker sees them), or all at `at`.
Seen = Literal["events", "at"]

__all__ = [
    "Evaluation",
    "build_states",
    "dead_letter_for",
    "evaluate_lines",
    "load_indexes",
    "parse_time",
    "read_lines",
    "verdict_line",
]


@dataclass
class Evaluation:
    """Verdicts (in order of each person's first valid event) plus counts and per-phase seconds."""

    verdicts: list[Verdict]
    #: each person's management at `at`, aligned with `verdicts`
    management: list[Management] = field(default_factory=list)
    records: int = 0
    valid: int = 0
    person_events: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    #: Each contact's exposures (person key -> shared places), as the workers find them on the stream.
    exposures: dict[str, tuple[Exposure, ...]] = field(default_factory=dict)

    @property
    def invalid(self) -> int:
        return sum(self.rejected.values())


def read_lines(path: Path) -> Iterator[bytes]:
    """The records of a JSONL file (blank lines skipped), as raw bytes; read in 1 MiB chunks, not 8 KiB."""
    with Path(path).open("rb", buffering=1 << 20) as handle:
        for line in handle:
            if not line.isspace():
                yield line.rstrip(b"\r\n")


def dead_letter_for(raw: bytes, error: RejectedEvent, source: str, offset: int, at: datetime) -> DeadLetter:
    """The dead letter the worker would write for this record (payload masked the same way; offset = line index)."""
    return dead_letter(raw, error.reason, error.detail, source_topic=source, partition=0, offset=offset, at=at)


def build_states(
    lines: Iterable[bytes],
    *,
    lookback: timedelta,
    horizon: timedelta,
    secret: bytes,
    at: datetime,
    source: str = "",
    on_reject: Callable[[DeadLetter], None] | None = None,
    evaluation: Evaluation | None = None,
) -> dict[str, PersonState]:
    """Ingest every record and fold each person's events into a state (insertion order = first seen)."""
    ev = evaluation if evaluation is not None else Evaluation([])
    grouped = _grouped(lines, lookback=lookback, secret=secret, at=at, source=source, on_reject=on_reject, evaluation=ev)
    started = time.perf_counter()
    states = states_of(grouped, horizon=horizon)
    ev.phases["apply_s"] = time.perf_counter() - started
    return states


def _grouped(
    lines: Iterable[bytes],
    *,
    lookback: timedelta,
    secret: bytes,
    at: datetime,
    source: str,
    on_reject: Callable[[DeadLetter], None] | None,
    evaluation: Evaluation,
) -> dict[str, list[Observation]]:
    """Every valid record cut into each person's observations, grouped per person (first seen first)."""
    grouped: dict[str, list[Observation]] = {}
    ev = evaluation
    rejected = ev.rejected
    observe = Observer(secret=secret, now=at, lookback=lookback)
    started = time.perf_counter()
    for offset, raw in enumerate(lines):
        ev.records += 1
        try:
            events = observe(raw)
        except RejectedEvent as exc:
            rejected[exc.reason] = rejected.get(exc.reason, 0) + 1
            if on_reject is not None:
                on_reject(dead_letter_for(raw, exc, source, offset, at))
            continue
        ev.valid += 1
        ev.person_events += len(events)
        for event in events:
            bucket = grouped.get(event.person_key)
            if bucket is None:
                grouped[event.person_key] = [event]
            else:
                bucket.append(event)
    ev.phases["ingest_s"] = time.perf_counter() - started
    return grouped


def evaluate_lines(
    lines: Iterable[bytes],
    *,
    rules: Rules,
    regions: RiskIndex,
    communities: CommunityIndex,
    at: datetime,
    secret: bytes,
    source: str = "",
    on_reject: Callable[[DeadLetter], None] | None = None,
    seen: Seen = "events",
) -> Evaluation:
    """Validate, join and evaluate a batch of raw records as of `at`; `seen` says when a worker would have
    seen each event, which decides the management an episode began with (its verdicts are the same)."""
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise PipelineError(f"at was {at!r} but is expected to be a timezone-aware datetime")
    ev = Evaluation([])
    collecting = gc.isenabled()
    gc.disable()  # millions of long-lived small objects: the cyclic collector would rescan them all, over and over
    try:
        return _evaluate(lines, ev, rules, regions, communities, at, secret, source, on_reject, seen)
    finally:
        if collecting:
            gc.enable()


def _evaluate(lines, ev, rules, regions, communities, at, secret, source, on_reject, seen) -> Evaluation:  # noqa: ANN001
    grouped = _grouped(lines, lookback=timedelta(seconds=rules.windows.lookback), secret=secret, at=at, source=source,
                       on_reject=on_reject, evaluation=ev)
    started = time.perf_counter()
    states = states_of(grouped, horizon=rules.horizon)
    ev.phases["apply_s"] = time.perf_counter() - started
    started = time.perf_counter()
    people = list(states.values())
    ev.verdicts = evaluate_many(people, rules, regions, communities, at)
    ev.phases["evaluate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    ev.exposures = trace_states(states, rules)
    if ev.exposures:
        ev.verdicts = [with_exposures(v, ev.exposures.get(v.person_key, ()), rules, at) for v in ev.verdicts]
    ev.phases["contacts_s"] = time.perf_counter() - started
    started = time.perf_counter()
    before = replayed(grouped, rules, regions, communities, at) if seen == "events" else {}
    t_at = int(at.timestamp())
    out = []
    for state, verdict in zip(people, ev.verdicts, strict=True):
        prior = before.get(state.person_key)
        if prior is not None:
            state = msgspec.structs.replace(state, last=prior.last, managed=prior.managed)
        out.append(managed(remember(state, route(state.last, verdict)), verdict, rules, t_at)[1])
    ev.management = out
    ev.phases["manage_s"] = time.perf_counter() - started
    return ev


#: Events of the same hour are evaluated together, at the time of the latest of them (never before an
#: event, never past the hour, so never past a day's end in a zone with a whole-hour offset).
_TICK = 3600


def replayed(
    grouped: dict[str, list[Observation]], rules: Rules, regions: RiskIndex, communities: CommunityIndex, at: datetime
) -> dict[str, PersonState]:
    """Each person's state as a live worker would hold it just before `at`, having seen every event at its own time
    (those of one hour together): folded, evaluated, routed and managed hour by hour."""
    t_at = int(at.timestamp())
    ticks: dict[int, list[tuple[str, Observation]]] = {}
    for key, observations in grouped.items():
        for o in observations:
            ticks.setdefault(o.occurred // _TICK, []).append((key, o))
    states: dict[str, PersonState] = {}
    for tick in sorted(ticks):
        mine: dict[str, list[Observation]] = {}
        seen_at = t_at
        latest = 0
        for key, o in ticks[tick]:
            mine.setdefault(key, []).append(o)
            latest = max(latest, o.occurred)
        seen_at = min(latest, t_at)
        folded = [fold(states.get(key) or new_state(key), obs, horizon=rules.horizon) for key, obs in mine.items()]
        verdicts = evaluate_many(folded, rules, regions, communities, datetime.fromtimestamp(seen_at, UTC))
        for state, verdict in zip(folded, verdicts, strict=True):
            states[state.person_key] = managed(remember(state, route(state.last, verdict)), verdict, rules, seen_at)[0]
    return states


def verdict_line(verdict: Verdict, management: Management | None = None, tz: tzinfo = UTC) -> bytes:
    """One output line of `epiflow evaluate` (with the person's `management` when given)."""
    line = verdict.to_json()
    if management is not None:
        line["management"] = management.to_json(tz)
    return orjson.dumps(line) + b"\n"


def load_indexes(regions: Path, communities: Path) -> tuple[RiskIndex, CommunityIndex]:
    """Risk and community indexes from files (GeoJSON, GeoPackage or Shapefile)."""
    from geo.load import load_communities, load_regions

    return RiskIndex(load_regions(regions)), CommunityIndex(load_communities(communities))


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset (a naive time is refused, quoting it)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise PipelineError(f"time was {text!r} but is expected to be ISO 8601, e.g. 2022-06-20T12:00:00+08:00") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise PipelineError(f"time was {text!r} but is expected to carry a UTC offset, e.g. 2022-06-20T12:00:00+08:00")
    return value
