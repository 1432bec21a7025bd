"""Round trips through the real Kafka broker: the guarantees the pipeline's partitioning relies on.

Keys must always land on the same partition and each partition must keep its order, with
kafka-python (producers, tools) and with aiokafka (what Faust uses underneath).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

MESSAGES = 1_000
KEYS = 37
PARTITIONS = 3


def _keyed_messages(count: int, keys: int) -> list[tuple[bytes, bytes]]:
    """``count`` (key, value) pairs over ``keys`` keys; the value names the key and its sequence."""
    sequence: dict[int, int] = defaultdict(int)
    messages = []
    for index in range(count):
        key = index % keys
        messages.append((f"person-{key}".encode(), f"person-{key}:{sequence[key]}:{index}".encode()))
        sequence[key] += 1
    return messages


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="roundtrip")
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_keyed_messages_keep_partition_and_order(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory("roundtrip", partitions=PARTITIONS)
    messages = _keyed_messages(MESSAGES, KEYS)

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in messages]
        producer.flush(timeout=30)
        sent = [future.get(timeout=10) for future in futures]
    finally:
        producer.close()

    produced_by_partition: dict[int, list[bytes]] = defaultdict(list)
    for (_, value), metadata in zip(messages, sent, strict=True):
        produced_by_partition[metadata.partition].append(value)

    records = _consume_all(kafka_bootstrap, topic, MESSAGES)

    assert len(records) == MESSAGES
    assert sorted(r.value for r in records) == sorted(value for _, value in messages)

    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    for record in records:
        partitions_of_key[record.key].add(record.partition)
    assert len(partitions_of_key) == KEYS
    assert all(len(parts) == 1 for parts in partitions_of_key.values()), partitions_of_key
    assert len({next(iter(parts)) for parts in partitions_of_key.values()}) == PARTITIONS

    consumed_by_partition: dict[int, list] = defaultdict(list)
    for record in records:
        consumed_by_partition[record.partition].append(record)
    for partition, batch in consumed_by_partition.items():
        offsets = [r.offset for r in batch]
        assert offsets == list(range(len(batch))), f"partition {partition} offsets not contiguous"
        assert [r.value for r in batch] == produced_by_partition[partition]

    last_sequence: dict[bytes, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        _, sequence, _ = record.value.decode().split(":")
        assert int(sequence) == last_sequence.get(record.key, -1) + 1, record
        last_sequence[record.key] = int(sequence)


def test_aiokafka_produce_consume_and_commit(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    """aiokafka (Faust's client) talks to this broker: produce, group consume, commit."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTopicPartition

    topic = kafka_topic_factory("aiokafka", partitions=PARTITIONS)
    group = f"{topic}.group"
    messages = _keyed_messages(300, KEYS)

    async def run() -> tuple[list, dict[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, enable_idempotence=True)
        await producer.start()
        try:
            for key, value in messages:
                await producer.send(topic, key=key, value=value)
            await producer.flush()
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            records: list = []
            async with asyncio.timeout(60):
                while len(records) < len(messages):
                    for batch in (await consumer.getmany(timeout_ms=500)).values():
                        records.extend(batch)
            await consumer.commit()
            committed = {p: await consumer.committed(AioTopicPartition(topic, p)) for p in range(PARTITIONS)}
        finally:
            await consumer.stop()
        return records, committed

    records, committed = asyncio.run(run())

    assert sorted(r.value for r in records) == sorted(value for _, value in messages)
    counts: dict[int, int] = defaultdict(int)
    for record in records:
        counts[record.partition] += 1
    assert {p: offset for p, offset in committed.items() if offset is not None} == dict(counts)


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _topic_values(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    return sorted(r.value for r in _consume_all(bootstrap, topic, expected, timeout_s=20.0))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_data_survives_clean_and_crash_restart(private_kafka_broker) -> None:
    """What the failure drills rely on: stopping (or killing) the broker and starting it on kept data."""
    from kafka import KafkaAdminClient

    from tools.kafka_broker import broker_running, ensure_broker, restart_broker, stop_broker

    settings = private_kafka_broker
    bootstrap = settings.bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics(
        {"drill": {"num_partitions": PARTITIONS, "replication_factor": 1}}, wait_for_metadata=True
    )
    admin.close()
    first, second = _keyed_messages(400, KEYS)[:200], _keyed_messages(400, KEYS)[200:]
    _produce(bootstrap, "drill", first)

    assert stop_broker(keep_data=True, settings=settings)
    assert not broker_running(settings)
    assert ensure_broker(keep_data=True, settings=settings) == bootstrap
    assert _topic_values(bootstrap, "drill", 200) == sorted(v for _, v in first)

    restart_broker(force=True, settings=settings)
    assert _topic_values(bootstrap, "drill", 200) == sorted(v for _, v in first)
    _produce(bootstrap, "drill", second)
    assert _topic_values(bootstrap, "drill", 400) == sorted(v for _, v in first + second)

    stop_broker(settings=settings)
    assert not settings.data_dir.exists()
    ensure_broker(settings=settings)
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        assert "drill" not in probe.topics()
    finally:
        probe.close()
