"""A small Faust app that exercises what the transport must carry: agents, group_by, a table,
a timer, a task and a web view. Built fresh per test so it runs unchanged on memory:// and Kafka.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

PARTITIONS = 4


def regroup_key(value: bytes) -> bytes:
    """The key a record is repartitioned by: its value's prefix before ':'."""
    return value.split(b":", 1)[0]


@dataclass
class SmallApp:
    """The app and what its agents observed, for assertions."""

    app: faust.App
    source: Any
    regrouped_topic: str
    counts: Any
    seen: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)
    regrouped: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    ticks: list[float] = field(default_factory=list)
    task_ran: asyncio.Event = field(default_factory=asyncio.Event)

    def source_tp(self, partition: int) -> TP:
        return TP(self.source.get_topic_name(), partition)


def build_small_app(
    broker: str,
    app_id: str,
    *,
    web_port: int | None = None,
    commit_every: int = 1,
    with_timer: bool = True,
    **settings: Any,
) -> SmallApp:
    """Build the app; topics are named after ``app_id`` so runs on one Kafka broker never collide.

    Faust's data dir goes under the system temp dir (its default is the working directory)."""
    settings.setdefault("datadir", str(Path(tempfile.gettempdir()) / f"epiflow-{app_id}-data"))
    app = faust.App(
        app_id,
        broker=broker,
        store="memory://",
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        table_standby_replicas=0,
        broker_commit_every=commit_every,
        broker_commit_interval=0.5,
        stream_wait_empty=False,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_host="127.0.0.1",
        consumer_auto_offset_reset="earliest",
        **settings,
    )
    source = app.topic(
        f"{app_id}-source",
        key_serializer="raw",
        value_serializer="raw",
        partitions=PARTITIONS,
        internal=True,
    )
    counts = app.Table("counts", default=int, partitions=PARTITIONS, key_type=str, value_type=int)
    small = SmallApp(app=app, source=source, regrouped_topic=f"{app_id}-regroup-repartition", counts=counts)

    @app.agent(source, name="record")
    async def record(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            small.seen.append((message.partition, message.offset, message.key, message.value))
            counts[message.key.decode()] += 1

    @app.agent(source, name="regroup")
    async def regroup(stream: Any) -> None:
        async for event in stream.group_by(lambda value: regroup_key(value), name="regroup").events():
            small.regrouped.append((event.message.partition, event.key, event.value))

    if with_timer:

        @app.timer(0.1)
        async def tick() -> None:
            small.ticks.append(time.monotonic())

    @app.task
    async def started() -> None:
        small.task_ran.set()

    @app.page("/counts/")
    async def show_counts(web: Any, request: Any) -> Any:
        return web.json(dict(counts.items()))

    return small


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_ready(app: faust.App, timeout: float = 60.0) -> None:
    """Wait until the app is assigned its partitions and table recovery has finished."""
    await wait_for(
        lambda: (
            bool(app.consumer.assignment()) and app.tables.recovery.completed.is_set() and not app.rebalancing
        ),
        timeout=timeout,
        what=f"app {app.conf.id} to be assigned and recovered",
    )


async def running(small: SmallApp, body: Callable[[SmallApp], Awaitable[Any]], timeout: float = 120.0) -> Any:
    """Start the app, wait until it is ready, run ``body``, and always stop the app."""
    await small.app.start()
    try:
        await wait_ready(small.app)
        return await asyncio.wait_for(body(small), timeout)
    finally:
        await small.app.stop()
