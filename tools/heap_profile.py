"""Where a loaded worker's memory goes: tracemalloc of one in-process worker after it joined N people.

``python -m tools.heap_profile [--people N] [--store memory://|rocksdb://] [--top K]`` starts one worker
in this process on the test Kafka broker, starts tracing once its rules and regions are loaded, pre-fills
the input topics with a simulation of N people, waits until every person event is joined, and prints one
JSON object: RSS growth, traced bytes still alive grouped by the innermost epiflow line that allocated
them (so a pydantic model or a bytes value is charged to the line that built it), and the sizes of the
structures a worker keeps per person (person and case tables, the sweep's place store, cases awaiting
acceptance, RocksDB's memtables, block cache and table readers). Tracing slows the worker several times
over: use tens of thousands of people, not millions; ``--frames 0`` skips it and reports RSS only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import secrets
import shutil
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["profile_worker", "table_bytes"]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
_OURS = tuple(str(REPO / d) for d in ("pipeline", "streams", "geo"))


def table_bytes(items: Iterable[tuple[Any, Any]]) -> dict[str, int]:
    """Rows and bytes of a table's keys and values as Python objects (`sys.getsizeof`, no dict slots)."""
    rows = keys = values = 0
    for key, value in items:
        rows += 1
        keys += sys.getsizeof(key)
        values += sys.getsizeof(value)
    return {"rows": rows, "key_bytes": keys, "value_bytes": values}


def _site(trace: tracemalloc.Traceback) -> str:
    """`file:line` of the innermost frame in epiflow's own packages (else of the allocating frame)."""
    for frame in reversed(trace):
        if frame.filename.startswith(_OURS):
            return f"{Path(frame.filename).relative_to(REPO)}:{frame.lineno}"
    frame = trace[-1]
    parts = Path(frame.filename).parts
    tail = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else frame.filename
    return f"{tail}:{frame.lineno}"


def _grouped(snapshot: tracemalloc.Snapshot, top: int) -> list[dict[str, Any]]:
    sites: dict[str, list[int]] = {}
    for stat in snapshot.statistics("traceback"):
        entry = sites.setdefault(_site(stat.traceback), [0, 0])
        entry[0] += stat.size
        entry[1] += stat.count
    ranked = sorted(sites.items(), key=lambda kv: -kv[1][0])[:top]
    return [{"site": site, "mb": round(size / 2**20, 2), "blocks": count} for site, (size, count) in ranked]


def _structures(worker: Any) -> dict[str, Any]:
    """What the worker holds per person, measured directly (bytes of the Python objects)."""
    agents = worker.agents
    places = worker.runtime.places
    out: dict[str, Any] = {}
    for name, table in (("persons", agents.persons), ("cases", agents.cases)):
        data = table.data
        mapping = getattr(data, "data", None)
        if isinstance(mapping, dict):
            sizes = table_bytes(mapping.items())
            sizes["dict_bytes"] = sys.getsizeof(mapping)
        else:
            sizes = table_bytes(data.items())
        out[name] = sizes
    out["awaiting"] = {"cases": len(agents.case_agent.awaiting), "dict_bytes": sys.getsizeof(agents.case_agent.awaiting)}
    out["places"] = {"rows": len(places), "column_bytes": places.nbytes}
    rocksdb = _rocksdb_memory([agents.persons, agents.cases])
    if rocksdb:
        out["rocksdb"] = rocksdb
    return out


#: RocksDB's own memory, per database (`Rdict.property_int_value`): memtables, block cache, index and filter blocks.
_ROCKSDB_PROPERTIES = ("rocksdb.cur-size-all-mem-tables", "rocksdb.block-cache-usage", "rocksdb.estimate-table-readers-mem")


def _rocksdb_memory(tables: list[Any]) -> dict[str, int]:
    """Summed RocksDB memory properties of every open partition database of `tables` (empty on the memory store)."""
    totals: dict[str, int] = {}
    databases = 0
    for table in tables:
        for db in getattr(table.data, "_dbs", {}).values():
            databases += 1
            for name in _ROCKSDB_PROPERTIES:
                totals[name.removeprefix("rocksdb.")] = totals.get(name.removeprefix("rocksdb."), 0) + int(db.property_int_value(name) or 0)
    return {"databases": databases, **totals} if databases else {}


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


async def _loaded(worker: Any, inputs: int, person_events: int, timeout: float) -> float:
    counts = worker.agents.counts
    started = time.monotonic()
    while counts["inputs"] < inputs or counts["joined"] < person_events:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not drained after {timeout:.0f} s: {counts} "
                               f"(expected {inputs} inputs, {person_events} person events)")
        await asyncio.sleep(0.25)
    return time.monotonic() - started


async def _profile(bootstrap: str, people: int, store: str, top: int, frames: int, seed: int) -> dict[str, Any]:
    from pipeline.settings import load_settings
    from streams.heap import trim
    from streams.worker import create_worker
    from tools.bench_worker import INPUT_KINDS, _create_topics, _delete_prefix, _expected, _prefill, _simulate

    prefix = f"heap-{uuid.uuid4().hex[:8]}"
    secret = secrets.token_hex(32)
    at = datetime.now(UTC).replace(microsecond=0)
    folder = Path(tempfile.mkdtemp(prefix="epiflow-heap-"))
    records = _simulate(seed, people, at, folder)
    person_events, keys = _expected(records, secret.encode(), at)
    settings = load_settings(broker=f"kafka://{bootstrap}", store=store, topic_prefix=prefix, secret=secret,
                             partitions=4, regions=folder / "risk_regions.geojson", data_dir=folder / "data")
    _create_topics(bootstrap, [f"{prefix}.{k}" for k in INPUT_KINDS], 4)
    worker = create_worker(settings, web_enabled=False)
    try:
        await worker.app.start()
        await asyncio.wait_for(worker.agents.control_ready.wait(), 120)
        await asyncio.sleep(2.0)
        gc.collect()
        trim()
        rss_idle = _rss()
        if frames:
            tracemalloc.start(frames)
        inputs = len(records)
        await _prefill(bootstrap, prefix, records)
        del records
        drain_s = await _loaded(worker, inputs, person_events, 3600)
        gc.collect()
        snapshot = tracemalloc.take_snapshot() if frames else None
        traced, peak = tracemalloc.get_traced_memory() if frames else (0, 0)
        tracemalloc.stop()
        gc.collect()
        rss_untrimmed = _rss()
        trim()
        rss_loaded = _rss()
        structures = _structures(worker)
    finally:
        await worker.app.stop()
        _delete_prefix(bootstrap, prefix)
        shutil.rmtree(folder, ignore_errors=True)
    per = 1 / len(keys)
    return {
        "people_simulated": people,
        "tracked_people": len(keys),
        "person_events": person_events,
        "store": store,
        "counts": dict(worker.agents.counts),
        "drain_s": round(drain_s, 1),
        "rss_idle_mb": round(rss_idle / 2**20, 1),
        "rss_loaded_mb": round(rss_loaded / 2**20, 1),
        "rss_loaded_before_trim_mb": round(rss_untrimmed / 2**20, 1),
        "rss_growth_per_person_bytes": round((rss_loaded - rss_idle) * per),
        "traced_alive_mb": round(traced / 2**20, 1),
        "traced_peak_mb": round(peak / 2**20, 1),
        "traced_alive_per_person_bytes": round(traced * per),
        "structures": structures,
        "top_sites": _grouped(snapshot, top) if snapshot else [],
    }


def profile_worker(bootstrap: str, *, people: int = 20_000, store: str = "memory://", top: int = 25,
                   frames: int = 24, seed: int = 7) -> dict[str, Any]:
    """Heap breakdown of one worker loaded with `people` simulated people (see the module docstring)."""
    if people < 100:
        raise ValueError(f"people={people!r} must be at least 100")
    if not store.startswith(("memory://", "rocksdb://")):
        raise ValueError(f"store={store!r} must be 'memory://' or 'rocksdb://'")
    return asyncio.run(_profile(bootstrap, people, store, top, frames, seed))


def main(argv: list[str] | None = None) -> int:
    from tools.kafka_broker import shared_broker

    parser = argparse.ArgumentParser(prog="python -m tools.heap_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--store", default="memory://")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=24, help="traceback depth kept by tracemalloc (0: no tracing, RSS only)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    with shared_broker(start=True) as bootstrap:
        result = profile_worker(bootstrap, people=args.people, store=args.store, top=args.top, frames=args.frames,
                                seed=args.seed)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
