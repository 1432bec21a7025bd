"""Control topics (rules, risk regions) read in full by every worker, outside the consumer group.

Each worker reads the compacted topic from the beginning at start (so a restarted worker gets the
current version) and then follows it, so all workers switch together. Two readers behind one
interface: the embedded broker's log, and an aiokafka consumer with no group on real Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from pipeline.settings import Settings
from streams.kafka_options import kafka_client_options

__all__ = ["ControlLog", "KafkaControlLog", "MemoryControlLog", "control_log_for"]

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
