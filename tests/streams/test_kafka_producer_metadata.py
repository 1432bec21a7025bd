"""The producer keeps the metadata of every topic it sends to (real broker).

Plain aiokafka loses a topic from its metadata when a later send goes to a topic created after its
last all-topics refresh; a batch queued for the lost topic then has no leader and the sender spins
on metadata refreshes until the batch expires. The first test shows the defect on plain aiokafka,
so the second one, on our producer, tests something real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from streams.kafka import Producer, TopicTrackingProducer, Transport

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


async def _metadata_after_a_later_topic(producer_type: type[AIOKafkaProducer], bootstrap: str,
                                        make_topic: Callable[..., str]) -> set[int] | None:
    """Send to an existing topic, then to one created afterwards; the partitions still known for the first."""
    early = make_topic("meta-early", partitions=2)
    producer = producer_type(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.client.force_metadata_update()  # what Faust does after creating a topic
        await producer.send_and_wait(early, b"first")
        late = make_topic("meta-late", partitions=2)
        await producer.send_and_wait(late, b"second")
        await producer.client.force_metadata_update()
        return producer.client.cluster.partitions_for_topic(early)
    finally:
        await producer.stop()


def test_plain_aiokafka_forgets_a_topic_it_sent_to(kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]) -> None:
    known = asyncio.run(_metadata_after_a_later_topic(AIOKafkaProducer, kafka_bootstrap, kafka_topic_factory))
    assert known is None


def test_our_producer_keeps_every_topic_it_sent_to(kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]) -> None:
    known = asyncio.run(_metadata_after_a_later_topic(TopicTrackingProducer, kafka_bootstrap, kafka_topic_factory))
    assert known == {0, 1}


def test_the_kafka_transport_uses_our_producer() -> None:
    assert Transport.Producer is Producer
    assert Producer._producer_type.fget(None) is TopicTrackingProducer  # type: ignore[attr-defined]
