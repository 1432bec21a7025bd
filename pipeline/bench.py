"""Benchmark of `epiflow evaluate` throughput: `python -m pipeline.bench [--events N]` prints one JSON object.

The events are simulated into a temporary folder first (not timed); the timed part reads the merged
file, ingests every record, folds the states and evaluates every person once, on one core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson

from pipeline.evaluate import evaluate_lines, load_indexes, read_lines
from pipeline.rules import load_rules
from pipeline.settings import load_settings
from pipeline.simulate import SAMPLE_ANCHOR, load_sample_geography, write_simulation

__all__ = ["main", "run"]

_EVENTS_PER_PERSON = 1.62


def run(events: int, seed: int = 1) -> dict:
    """Simulate about `events` records, then time offline evaluation of them."""
    if events < 1:
        raise ValueError(f"events was {events!r} but is expected to be positive")
    settings = load_settings()
    at = SAMPLE_ANCHOR
    geo = load_sample_geography(settings.path(settings.regions), settings.path(settings.communities), settings.path(settings.checkpoints), at)
    rules = load_rules(settings.path(settings.rules))
    with tempfile.TemporaryDirectory(prefix="epiflow-bench-") as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        manifest = write_simulation(out, seed, max(1, round(events / _EVENTS_PER_PERSON)), at, geo)
        simulate_s = time.perf_counter() - started
        regions, communities = load_indexes(out / "risk_regions.geojson", settings.path(settings.communities))
        started = time.perf_counter()
        result = evaluate_lines(read_lines(out / "events.jsonl"), rules=rules, regions=regions, communities=communities,
                                at=at, secret=settings.secret_bytes)
        seconds = time.perf_counter() - started
    return {
        "events": result.records,
        "valid": result.valid,
        "dead_lettered": result.invalid,
        "person_events": result.person_events,
        "people": len(result.verdicts),
        "seconds": round(seconds, 3),
        "events_per_s": round(result.records / seconds),
        "phases": {k: round(v, 3) for k, v in result.phases.items()},
        "simulate_s_untimed": round(simulate_s, 3),
        "manifest_events": manifest["events"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="how many records to simulate and evaluate")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(orjson.dumps(run(args.events, args.seed)).decode())


if __name__ == "__main__":
    main()
