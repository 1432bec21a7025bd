"""kafka-python producers for the tools: publish rules and regions (validated first), push recorded events."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from pipeline.settings import Settings
from streams.kafka_options import kafka_client_options

__all__ = ["TopicMissing", "latest_records", "produce_lines", "require_topic", "send_records"]


class TopicMissing(Exception):
    """A topic to send to does not exist; sending would let the broker create it with its own defaults."""


def require_topic(settings: Settings, topic: str, wait_s: float = 5.0) -> None:
    """Raise `TopicMissing` unless `topic` exists, asked with a metadata request that may create nothing.

    A producer's own metadata request for the topic of a send would let a broker with
    `auto.create.topics.enable` create it with its default partition count and no compaction
    (kafka-python 3.0 does not pass `allow_auto_create_topics=False` on); the admin client's
    describe does not. A topic the principal may not see raises `TopicAuthorizationFailedError`; one
    created a moment ago may take up to `wait_s` seconds to show in the broker's metadata.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import for_code

    admin = KafkaAdminClient(client_id="epiflow-publish", **kafka_client_options(settings, "kafka-python"))
    deadline = time.monotonic() + wait_s
    try:
        (described,) = admin.describe_topics([topic])
        while described["error_code"] == 3 and time.monotonic() < deadline:
            time.sleep(0.25)
            (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    code = described["error_code"]
    if code == 3:  # UNKNOWN_TOPIC_OR_PARTITION
        raise TopicMissing(
            f"topic {topic!r} does not exist: start `epiflow worker` once with this topic prefix "
            "(it declares every topic with its partitions and compaction); nothing was sent"
        )
    if code:
        raise for_code(code)(f"describing topic {topic!r}")


def send_records(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Send (key, value) pairs and wait until the broker has them all; returns the count.

    Raises `TopicMissing` before sending anything when `topic` does not exist, and
    `kafka.errors.KafkaError` naming how many were not delivered and why (e.g. the principal may not
    write to `topic`), instead of counting records the broker never took.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    require_topic(settings, topic)
    producer = KafkaProducer(linger_ms=5, acks="all", **kafka_client_options(settings, "kafka-python"))
    count = 0
    failures: list[BaseException] = []
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value).add_errback(failures.append)
            count += 1
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    if failures:
        raise KafkaError(f"{len(failures)} of {count} record(s) to {topic} not delivered; first: {failures[0]!r}")
    return count


def _lines(path: Path) -> Iterator[tuple[None, bytes]]:
    with path.open("rb") as handle:
        for line in handle:
            line = line.rstrip(b"\r\n")
            if line:
                yield None, line


def produce_lines(settings: Settings, topic: str, path: Path) -> int:
    """Push every non-empty line of a JSONL file as one record, unvalidated (ingest validates)."""
    return send_records(settings, topic, _lines(path))


def latest_records(settings: Settings, topic: str, timeout_s: float = 10.0) -> dict[bytes, bytes | None]:
    """The latest value per key of a (compacted) topic, read from the beginning with no consumer group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **kafka_client_options(settings, "kafka-python"))
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        latest: dict[bytes, bytes | None] = {}
        deadline = datetime.now().timestamp() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps) and datetime.now().timestamp() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                for message in messages:
                    latest[message.key] = message.value
        return latest
    finally:
        consumer.close()
