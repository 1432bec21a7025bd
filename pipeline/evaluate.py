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
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from geo.communities import CommunityIndex
from geo.regions import RiskIndex
from pipeline.contacts import Exposure, trace_states, with_exposures
from pipeline.errors import PipelineError, RejectedEvent
from pipeline.events import DeadLetter
from pipeline.ingest import Observer, dead_letter
from pipeline.rules import Rules
from pipeline.state import Observation, PersonState, states_of
from pipeline.triage import Verdict, evaluate_many

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
    grouped: dict[str, list[Observation]] = {}
    ev = evaluation if evaluation is not None else Evaluation([])
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
    ingested = time.perf_counter()
    states = states_of(grouped, horizon=horizon)
    ev.phases["ingest_s"] = ingested - started
    ev.phases["apply_s"] = time.perf_counter() - ingested
    return states


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
) -> Evaluation:
    """Validate, join and evaluate a batch of raw records as of `at`."""
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise PipelineError(f"at was {at!r} but is expected to be a timezone-aware datetime")
    ev = Evaluation([])
    collecting = gc.isenabled()
    gc.disable()  # millions of long-lived small objects: the cyclic collector would rescan them all, over and over
    try:
        return _evaluate(lines, ev, rules, regions, communities, at, secret, source, on_reject)
    finally:
        if collecting:
            gc.enable()


def _evaluate(lines, ev, rules, regions, communities, at, secret, source, on_reject) -> Evaluation:  # noqa: ANN001
    states = build_states(
        lines,
        lookback=timedelta(seconds=rules.windows.lookback),
        horizon=rules.horizon,
        secret=secret,
        at=at,
        source=source,
        on_reject=on_reject,
        evaluation=ev,
    )
    started = time.perf_counter()
    ev.verdicts = evaluate_many(list(states.values()), rules, regions, communities, at)
    ev.phases["evaluate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    ev.exposures = trace_states(states, rules)
    if ev.exposures:
        ev.verdicts = [with_exposures(v, ev.exposures.get(v.person_key, ()), rules, at) for v in ev.verdicts]
    ev.phases["contacts_s"] = time.perf_counter() - started
    return ev


def verdict_line(verdict: Verdict) -> bytes:
    """One output line of `epiflow evaluate`."""
    return orjson.dumps(verdict.to_json()) + b"\n"


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
