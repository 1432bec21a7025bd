"""Control topics (rules, risk regions) read in full by every worker, outside the consumer group.

Each worker reads the compacted topic from the beginning at start (so a restarted worker gets the
current version) and then follows it, so all workers switch together. Two readers behind one
interface: the embedded broker's log, and an aiokafka consumer with no group on real Kafka; and the
followers that apply what they read (`follow_rules`, `follow_regions`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import faust
import orjson

from pipeline.settings import Settings
from streams.kafka_options import kafka_client_options
from streams.runtime import RegionChange, Runtime

if TYPE_CHECKING:
    from streams.agents import Agents

__all__ = ["ControlLog", "KafkaControlLog", "MemoryControlLog", "control_log_for", "follow_regions", "follow_rules",
           "mark_ready", "seed_if_empty"]

#: header of a person event that only asks the join to evaluate its person again (`streams.agents`)
REEVALUATE = "epiflow-reevaluate"

log = logging.getLogger(__name__)

Record = tuple[bytes | None, bytes | None]


class ControlLog(Protocol):
    """A compacted topic seen from start to now, then followed."""

    async def start(self) -> None: ...
    async def read_to_end(self) -> list[Record]: ...
    def follow(self) -> AsyncIterator[Record]: ...
    async def stop(self) -> None: ...


class MemoryControlLog:
    """Reader over the embedded broker's topic log; wakes on appends instead of polling."""

    def __init__(self, broker_url: str, topic: str) -> None:
        from streams.memory import get_broker

        self._broker = get_broker(broker_url)
        self._topic = topic
        self._position = 0
        self._changed = asyncio.Event()

    def _wake(self, tp: object = None) -> None:
        if tp is None or getattr(tp, "topic", self._topic) == self._topic:
            self._changed.set()

    async def start(self) -> None:
        self._broker.create_topic(self._topic, 1, config={"cleanup.policy": "compact"})
        self._broker.add_waiter(self._wake)

    def _take(self) -> list[Record]:
        records = self._broker.records(self._topic, 0, self._position)
        if records:
            self._position = records[-1].offset + 1
        return [(r.key, r.value) for r in records]

    async def read_to_end(self) -> list[Record]:
        return self._take()

    async def follow(self) -> AsyncIterator[Record]:
        while True:
            self._changed.clear()
            batch = self._take()
            if not batch:
                await self._changed.wait()
                continue
            for record in batch:
                yield record

    async def stop(self) -> None:
        self._broker.remove_waiter(self._wake)


class KafkaControlLog:
    """aiokafka consumer with no group id: every worker reads every partition from offset 0."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._consumer = None
        self._ends: dict = {}

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        options = kafka_client_options(self._settings, "aiokafka")
        admin = AIOKafkaAdminClient(**options)
        await admin.start()
        try:
            existing = await admin.list_topics()
            if self._topic not in existing:
                try:
                    await admin.create_topics([NewTopic(
                        self._topic, num_partitions=1, replication_factor=self._settings.replication,
                        topic_configs={"cleanup.policy": "compact"},
                    )])
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()
        self._consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **options
        )
        await self._consumer.start()
        partitions = None
        for _ in range(50):
            partitions = self._consumer.partitions_for_topic(self._topic)
            if partitions:
                break
            await self._consumer.topics()
            await asyncio.sleep(0.1)
        from aiokafka import TopicPartition

        tps = [TopicPartition(self._topic, p) for p in sorted(partitions or {0})]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._ends = await self._consumer.end_offsets(tps)

    async def _behind(self) -> bool:
        assert self._consumer is not None
        for tp, end in self._ends.items():
            if await self._consumer.position(tp) < end:
                return True
        return False

    async def read_to_end(self) -> list[Record]:
        assert self._consumer is not None
        records: list[Record] = []
        while await self._behind():
            batch = await self._consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend((m.key, m.value) for m in messages)
        return records

    async def follow(self) -> AsyncIterator[Record]:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for m in messages:
                    yield (m.key, m.value)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


def control_log_for(settings: Settings, topic: str) -> ControlLog:
    """The reader matching the configured broker."""
    if settings.broker.startswith("memory://"):
        return MemoryControlLog(settings.broker, topic)
    return KafkaControlLog(settings, topic)


async def seed_if_empty(agents: Agents, topic: str, records: list, seed: Callable[[], list[tuple[bytes, bytes]]]) -> list:
    """`records`, or when the topic held none, the `seed` records, sent to it first."""
    if records:
        return records
    seeded = seed()
    for key, value in seeded:
        await _send_when_ready(agents.app, topic, key, value)
    log.info("seeded control topic=%s records=%d", topic, len(seeded))
    return seeded


async def _send_when_ready(app: faust.App, topic: str, key: bytes, value: bytes, timeout: float = 30.0) -> None:
    """Send and wait; under `faust.Worker` control tasks can run before the producer is up, so retry NotReady."""
    from faust.exceptions import NotReady

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await app.producer.send_and_wait(topic, key, value, None, None, {})
            return
        except NotReady:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def follow_rules(agents: Agents) -> None:
    """Apply the rules topic from its start, seeding it from the rules file when empty, then follow it."""
    rt = agents.runtime
    topic = agents.topics.rules
    feed = control_log_for(rt.settings, topic)
    await feed.start()
    records = await seed_if_empty(agents, topic, await feed.read_to_end(), lambda: [(b"active", _rules_file(rt))])
    for _, value in records:
        rt.apply_rules_document(value, source=f"{topic} (startup)")
    if rt.rules is None:
        log.error("no valid rules on %s; the worker waits for a valid publish", topic)
    mark_ready(agents)
    try:
        async for _, value in feed.follow():
            rt.apply_rules_document(value, source=topic)
            mark_ready(agents)
    finally:
        await feed.stop()


def mark_ready(agents: Agents) -> None:
    """Agents start work once the first valid rules, the full region set and the queue topics are in place."""
    if agents.runtime.rules is not None and agents.regions_loaded and agents.queues_declared:
        agents.control_ready.set()


async def follow_regions(agents: Agents) -> None:
    """Load the risk-region topic from its start (seeded from the regions file when empty), then follow it and sweep."""
    rt = agents.runtime
    topic = agents.topics.risk_regions
    feed = control_log_for(rt.settings, topic)
    await feed.start()
    records = await seed_if_empty(agents, topic, await feed.read_to_end(), lambda: _regions_file(rt))
    rt.load_regions_bulk(records)
    agents.regions_loaded = True
    mark_ready(agents)
    try:
        async for key, value in feed.follow():
            change = rt.apply_region_record(key, value)
            if change is not None and change.sweep:
                try:
                    await _sweep(agents, change)
                except Exception:
                    log.exception("sweep failed region=%s", change.region_id)
    finally:
        await feed.stop()


async def _sweep(agents: Agents, change: RegionChange) -> None:
    """Flag everyone this worker holds who was in a newly designated or raised region."""
    from geo.sweep import sweep

    rt = agents.runtime
    started = asyncio.get_running_loop().time()
    pre = timedelta(seconds=rt.rules.windows.pre_designation if rt.rules is not None else 0)
    hits = sweep(rt.places, [change.region], pre_designation=pre)
    people = sorted(set(hits["person_key"])) if len(hits) else []
    for person_key in people:
        await agents.topics.person_events.send(
            key=person_key.encode(), value=orjson.dumps({"region_id": change.region_id}), headers={REEVALUATE: b"1"}
        )
    rt.metrics.sweep_seconds.observe(asyncio.get_running_loop().time() - started)
    rt.metrics.sweep_flagged.inc(len(people))
    log.info("sweep region=%s places=%d people=%d", change.region_id, len(rt.places), len(people))


def _rules_file(rt: Runtime) -> bytes:
    return rt.settings.path(rt.settings.rules).read_bytes()


def _regions_file(rt: Runtime) -> list[tuple[bytes, bytes]]:
    from geo.load import load_regions, region_to_feature

    return [
        (r.id.encode(), orjson.dumps(region_to_feature(r)))
        for r in load_regions(rt.settings.path(rt.settings.regions))
    ]
