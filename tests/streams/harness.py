"""Drive a whole epiflow worker in-process on memory:// or a real Kafka broker, the same way for both.

`Bus` pushes input records and reads any topic back; `running_worker` starts and stops a worker with
its own topic prefix and consumer group, so runs on one Kafka broker never see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.settings import Settings, load_settings
from streams.memory import drop_broker, get_broker
from streams.worker import Worker, create_worker
from tools.ports import free_port


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float = 0.0


class Bus:
    """Input and output of a deployment, seen from outside the worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = None

    @property
    def is_memory(self) -> bool:
        return self.settings.broker.startswith("memory://")

    def send(self, kind: str, value: bytes, key: bytes | None = None) -> None:
        topic = self.settings.topic(kind)
        if self.is_memory:
            get_broker(self.settings.broker).append(topic, key, value)
            return
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(bootstrap_servers=self._bootstrap, linger_ms=5)
        self._producer.send(topic, key=key, value=value)

    def flush(self) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=30)

    @property
    def _bootstrap(self) -> str:
        return self.settings.broker.removeprefix("kafka://")

    def topics(self, prefix: str = "") -> list[str]:
        full = self.settings.topic(prefix) if prefix else self.settings.topic_prefix + "."
        if self.is_memory:
            return [t for t in get_broker(self.settings.broker).topics() if t.startswith(full)]
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=self._bootstrap)
        try:
            return sorted(t for t in consumer.topics() if t.startswith(full))
        finally:
            consumer.close()

    def records(self, topic: str) -> list[Record]:
        return self.records_of([topic])[topic]

    def records_of(self, topics: list[str]) -> dict[str, list[Record]]:
        """Every record of each topic, read with one consumer (no group) from the beginning to the end."""
        out: dict[str, list[Record]] = {topic: [] for topic in topics}
        if self.is_memory:
            broker = get_broker(self.settings.broker)
            for topic in topics:
                if broker.has_topic(topic):
                    out[topic] = [Record(topic, r.partition, r.offset, r.key, r.value, r.timestamp / 1000)
                                  for r in broker.all_records(topic)]
            return out
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None)
        try:
            tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or set())]
            if not tps:
                return out
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                for tp, messages in consumer.poll(timeout_ms=300).items():
                    out[tp.topic].extend(
                        Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp / 1000) for m in messages
                    )
                    if messages and messages[-1].offset + 1 >= ends[tp]:
                        pending.discard(tp)
            return out
        finally:
            consumer.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)


def deployment_settings(broker: str, *, prefix: str | None = None, **overrides: Any) -> Settings:
    """Settings for a throwaway deployment: unique topic prefix, small partition count, a free web port,
    its own data dir (a temporary one unless given)."""
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    if broker == "memory":
        broker = f"memory://{prefix}"
    options: dict[str, Any] = dict(
        broker=broker, topic_prefix=prefix, partitions=3, web_port=free_port(), insecure_demo_secret=True,
        data_dir=Path(tempfile.mkdtemp(prefix=f"epiflow-{prefix}-")),
    )
    options.update(overrides)
    return load_settings(**options)


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, *, web: bool = False, app_id: str | None = None, clock: Callable[[], datetime] | None = None,
    ready_within: float = 60.0,
) -> AsyncIterator[Worker]:
    """A started worker whose rules and regions are loaded; stopped on exit. `clock` freezes its notion of now;
    `ready_within` is how long the start may take (seeding control topics is slow on a busy shared broker)."""
    worker = create_worker(settings, app_id=app_id or f"{settings.topic_prefix}-worker", web_enabled=web)
    if clock is not None:
        worker.runtime.clock = clock
    await worker.app.start()
    try:
        await asyncio.wait_for(worker.agents.control_ready.wait(), ready_within)
        yield worker
    finally:
        await worker.app.stop()


async def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


def cleanup(settings: Settings) -> None:
    if Path(settings.data_dir).is_relative_to(tempfile.gettempdir()):
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    if settings.broker.startswith("memory://"):
        drop_broker(settings.broker)
        return
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.broker.removeprefix("kafka://"))
    try:
        ours = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
        if ours:
            admin.delete_topics(ours, timeout_ms=20_000)
    except Exception:  # cleanup is best effort; a unique prefix keeps runs apart anyway
        pass
    finally:
        admin.close()


def simulation(tmp: Path, people: int, seed: int = 11) -> dict:
    """Write a seeded simulation anchored at now into `tmp`; returns its manifest."""
    from datetime import UTC, datetime

    from pipeline.simulate import write_simulation

    at = datetime.now(UTC).replace(microsecond=0)
    return write_simulation(tmp, seed, people, at)
