"""`epiflow demo`: embedded broker + worker + simulator in one process, with a live view.

Streams simulated traffic at a fixed rate into the memory:// broker, raises a risk region to high
half-way so the retroactive sweep shows, serves the web UI, and ends with a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from geo.load import region_to_feature
from geo.regions import Region
from geo.sweep import sweep
from pipeline.events import TriageMessage
from pipeline.inputs import TOPICS
from pipeline.rules import CLEAR
from pipeline.settings import Settings
from pipeline.simulate import Geography, load_sample_geography, simulate_stream
from streams.memory import get_broker
from streams.worker import Worker, create_worker

__all__ = ["LOG_FILE_NAME", "DemoNotReady", "DemoStats", "run_demo"]

log = logging.getLogger(__name__)

#: The demo's log, in its own folder: per-record warnings (one per dead letter) would bury the live view.
LOG_FILE_NAME = "demo.log"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class DemoNotReady(TimeoutError):
    """The embedded worker did not load its rules, regions and queue topics in time."""


class _LogCounter(logging.FileHandler):
    """Writes the demo's log records to its file and counts warnings and errors for the live view."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.setFormatter(logging.Formatter(_LOG_FORMAT))
        self.warnings = 0
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1
        elif record.levelno >= logging.WARNING:
            self.warnings += 1
        super().emit(record)


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[_LogCounter]:
    """Send every log record to `path` instead of the terminal while the demo runs; put things back after."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = _LogCounter(path)
    root.handlers[:] = [handler]
    logging.captureWarnings(True)
    try:
        yield handler
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved
        handler.close()


@dataclass
class DemoStats:
    """What the live view and the summary show."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=50_000))
    flagged_by_action: Counter[str] = field(default_factory=Counter)
    by_community: Counter[str] = field(default_factory=Counter)
    raised_region: str = ""
    first_flag_s: float | None = None

    def on_triage(self, message: TriageMessage, latency_s: float) -> None:
        self.flagged_by_action[message.action] += 1
        if message.action != CLEAR:
            self.by_community[message.community] += 1
            if self.first_flag_s is None:
                self.first_flag_s = time.monotonic() - self.started
        if latency_s > 0:
            self.latencies_ms.append(latency_s * 1000)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self.latencies_ms, float), q)) if self.latencies_ms else 0.0


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def _write_regions(regions: list[Region], folder: Path) -> Path:
    path = folder / "risk_regions.geojson"
    features = [region_to_feature(r) for r in regions]
    path.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _pick_region_to_raise(worker: Worker, now: datetime) -> Region | None:
    """The medium-risk region in force that most people this worker holds have visited."""
    rt = worker.runtime
    medium = [r for r in rt.regions if r.level == "medium" and r.in_force(now)]
    if not medium or not len(rt.places):
        return None
    hits = sweep(rt.places, medium)
    if not len(hits):
        return None
    best = hits.groupby("region_id")["person_key"].nunique().idxmax()
    return rt.regions.get(str(best))


def _view(worker: Worker, stats: DemoStats, duration: float, logged: _LogCounter | None = None) -> Group:
    rt, counts = worker.runtime, worker.agents.counts
    elapsed = time.monotonic() - stats.started
    head = Table(title=f"epiflow demo — {elapsed:5.1f} / {duration:.0f} s — rules {rt.rules_version}", show_header=True)
    for column in ("events in", "events/s", "forwarded", "dead letters", "person events", "joined", "p50 ms", "p99 ms", "swept"):
        head.add_column(column, justify="right")
    head.add_row(
        str(counts["inputs"]), f"{counts['inputs'] / max(elapsed, 1e-3):,.0f}", str(counts["forwarded"]),
        str(counts["dead_lettered"]), str(counts["person_events"]), str(counts["joined"]),
        f"{stats.percentile(50):.0f}", f"{stats.percentile(99):.0f}", f"{rt.metrics.sweep_flagged._value.get():.0f}",
    )
    actions = Table(title="triage messages by action")
    actions.add_column("action")
    actions.add_column("messages", justify="right")
    for action, n in stats.flagged_by_action.most_common():
        actions.add_row(action, str(n))
    places = Table(title="top communities")
    places.add_column("community")
    places.add_column("flagged", justify="right")
    for code, n in stats.by_community.most_common(8):
        community = rt.communities.get(code)
        places.add_row(f"{code} {community.name if community else ''}", str(n))
    dead = Table(title="dead letters by reason")
    dead.add_column("reason")
    dead.add_column("count", justify="right")
    reasons: Counter[str] = Counter()
    for sample in rt.metrics.dead_letters.collect()[0].samples:
        if sample.name.endswith("_total"):
            reasons[sample.labels["reason"]] += int(sample.value)
    for reason, n in reasons.most_common():
        dead.add_row(reason, str(n))
    note = f"raised to high-risk mid-run: {stats.raised_region}" if stats.raised_region else ""
    lines = [note] if note else []
    if logged is not None:
        lines.append(f"log: {logged.warnings} warnings, {logged.errors} errors in {logged.baseFilename}")
    return Group(head, Columns([actions, places, dead]), *lines)


async def _produce(worker: Worker, records: Iterable[tuple[str, bytes]], rate: int, duration: float, stats: DemoStats) -> None:
    broker = get_broker(worker.settings.broker)
    topics = {kind: worker.settings.topic(kind) for kind in TOPICS}
    tick = 0.02
    per_tick = max(1, round(rate * tick))
    deadline = stats.started + duration
    next_at = time.monotonic()
    for kind, raw in records:
        if time.monotonic() >= deadline:
            return
        broker.append(topics[kind], None, raw)
        stats.sent += 1
        if stats.sent % per_tick == 0:
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def _raise_midway(worker: Worker, stats: DemoStats, delay: float) -> None:
    await asyncio.sleep(delay)
    now = datetime.now(UTC)
    region = _pick_region_to_raise(worker, now)
    if region is None:
        return
    raised = replace(region, level="high", name=f"{region.name} (raised)")
    get_broker(worker.settings.broker).append(
        worker.settings.topic("risk-regions"), region.id.encode(), orjson.dumps(region_to_feature(raised))
    )
    stats.raised_region = f"{region.id} {region.name}"


async def run_demo(settings: Settings, *, duration: float, rate: int, seed: int, console: Console | None = None) -> dict[str, Any]:
    """Run the demo and return its summary (the `--json-summary` document).

    The log goes to `demo.log` in the demo's folder (path shown at start, in the live view and in the
    summary), so the terminal shows the live table only. Raises `DemoNotReady` when the worker does not
    come up within a minute."""
    console = console or Console()
    now = datetime.now(UTC).replace(microsecond=0)
    folder = Path(tempfile.mkdtemp(prefix="epiflow-demo-"))
    log_file = folder / LOG_FILE_NAME
    console.print(f"[bold]epiflow demo[/]: log in {log_file}")
    with _logging_to(log_file) as logged:
        return await _run(settings, folder, logged, now, duration=duration, rate=rate, seed=seed, console=console)


async def _run(settings: Settings, folder: Path, logged: _LogCounter, now: datetime, *, duration: float, rate: int,
               seed: int, console: Console) -> dict[str, Any]:
    geography = load_sample_geography(
        settings.path(settings.regions), settings.path(settings.communities), settings.path(settings.checkpoints), now
    )
    settings = settings.model_copy(update={
        "regions": _write_regions(list(geography.regions), folder),
        "web_port": _free_port(settings.web_port),
    })
    worker = create_worker(settings)
    stats = DemoStats()
    worker.agents.listeners.append(stats.on_triage)
    people = max(1000, int(rate * duration / 1.5))
    with console.status(f"simulating {people:,} people"):
        records = list(itertools.islice(
            simulate_stream(seed, people, now, Geography(geography.regions, geography.communities, geography.checkpoints)),
            int(rate * duration) + rate,
        ))
    await worker.app.start()
    try:
        try:
            await asyncio.wait_for(worker.agents.control_ready.wait(), 60)
        except TimeoutError:
            raise DemoNotReady(f"the worker did not load its rules, regions and queue topics within 60 s; see {logged.baseFilename}") from None
        console.print(f"[bold]epiflow demo[/]: embedded broker, web UI at http://{settings.web_host}:{settings.web_port}/dashboard")
        stats.started = time.monotonic()
        raiser = asyncio.ensure_future(_raise_midway(worker, stats, duration / 2))
        with Live(_view(worker, stats, duration, logged), console=console, refresh_per_second=2, transient=False) as live:
            producer = asyncio.ensure_future(_produce(worker, iter(records), rate, duration, stats))
            while not producer.done():
                await asyncio.sleep(0.5)
                live.update(_view(worker, stats, duration, logged))
            await producer
            drain_until = time.monotonic() + _drain_seconds(duration)
            counts = worker.agents.counts
            while time.monotonic() < drain_until and not _drained(counts, stats):
                await asyncio.sleep(0.2)
                live.update(_view(worker, stats, duration, logged))
            live.update(_view(worker, stats, duration, logged))
        raiser.cancel()
    finally:
        await worker.app.stop()
    counts = worker.agents.counts
    summary = {
        "sent": stats.sent,
        "events_in": counts["inputs"],
        "forwarded": counts["forwarded"],
        "dead_lettered": counts["dead_lettered"],
        "person_events": counts["person_events"],
        "joined": counts["joined"],
        "drained": _drained(counts, stats),
        "drain_limit_s": _drain_seconds(duration),
        "flagged_by_action": dict(stats.flagged_by_action),
        "flagged": sum(stats.by_community.values()),
        "swept": int(worker.runtime.metrics.sweep_flagged._value.get()),
        "raised_region": stats.raised_region,
        "latency_p50_ms": round(stats.percentile(50), 1),
        "latency_p99_ms": round(stats.percentile(99), 1),
        "first_flag_s": None if stats.first_flag_s is None else round(stats.first_flag_s, 2),
        "duration_s": round(time.monotonic() - stats.started, 2),
        "rate": rate,
        "log_warnings": logged.warnings,
        "log_errors": logged.errors,
        "log_file": logged.baseFilename,
    }
    return summary


def _drain_seconds(duration: float) -> float:
    """How long the demo waits, once the traffic stopped, for the worker to catch up (a busy machine lags)."""
    return max(15.0, duration)


def _drained(counts: dict[str, int], stats: DemoStats) -> bool:
    """Every input sent was read, and every person event it produced was joined."""
    return counts["inputs"] >= stats.sent and counts["joined"] >= counts["person_events"]
