"""kafka-python producers for the tools: publish rules and regions (validated first), push recorded events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import SettingsError
from pipeline.settings import Settings

__all__ = ["kafka_client_options", "latest_records", "produce_lines", "send_records"]


def bootstrap_of(settings: Settings) -> str:
    """host:port list of a kafka:// broker URL; refuses memory:// (nothing outside the process can reach it)."""
    if not settings.broker.startswith("kafka://"):
        raise SettingsError(
            f"broker was {settings.broker!r}: publishing needs a kafka:// broker (EPIFLOW_BROKER or --broker); "
            "the embedded memory:// broker lives inside one worker process"
        )
    return settings.broker.removeprefix("kafka://").replace(";", ",")


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Bootstrap and SASL/SSL options for kafka-python clients, from the same settings Faust uses."""
    options: dict[str, Any] = {"bootstrap_servers": bootstrap_of(settings).split(",")}
    protocol = settings.kafka_security_protocol.upper()
    if protocol != "PLAINTEXT":
        options["security_protocol"] = protocol
        if settings.kafka_ssl_cafile:
            options["ssl_cafile"] = str(settings.kafka_ssl_cafile)
        if protocol.startswith("SASL"):
            options.update(
                sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
                sasl_plain_username=settings.kafka_sasl_username,
                sasl_plain_password=settings.kafka_sasl_password,
            )
    return options


def send_records(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Send (key, value) pairs and wait until the broker has them all; returns the count."""
    from kafka import KafkaProducer

    producer = KafkaProducer(linger_ms=5, acks="all", **kafka_client_options(settings))
    count = 0
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
            count += 1
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
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

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **kafka_client_options(settings))
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
