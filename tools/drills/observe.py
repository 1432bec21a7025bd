"""Reading a deployment's topics back: every record up to the end offsets, triage messages by person."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tools.drills.deployment import Deployment, DrillFailed
from tools.kafka_clients import client_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None
    key: bytes | None = None


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every record of a topic, from the beginning to the end offsets at the time of the call."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client_options(bootstrap, "kafka-python"), enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise DrillFailed(f"reading {topic} did not reach its end offsets within {timeout:.0f} s")
            for messages in consumer.poll(timeout_ms=300).values():
                out.extend(Message(m.topic, m.partition, m.offset, m.timestamp, m.value, m.key) for m in messages)
        return out
    finally:
        consumer.close()


def list_topics(bootstrap: str, prefix: str) -> list[str]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**client_options(bootstrap, "kafka-python"))
    try:
        return sorted(t for t in consumer.topics() if t.startswith(prefix))
    finally:
        consumer.close()


def triage_records(deployment: Deployment) -> list[Message]:
    """Every record on the community and `unassigned` triage topics (street queues excluded)."""
    out: list[Message] = []
    for topic in list_topics(deployment.bootstrap, deployment.topic("triage.")):
        if topic.startswith(deployment.topic("triage.street.")):
            continue
        out.extend(read_topic(deployment.bootstrap, topic))
    return out
