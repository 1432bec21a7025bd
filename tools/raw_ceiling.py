"""The raw aiokafka consume → produce ceiling on a Kafka broker, as a yardstick for Faust workers.

An input topic is pre-filled with N keyed messages; then one aiokafka consumer reads them and
one aiokafka producer forwards each, unchanged, to an output topic. The time from the first
fetch to the last flushed send is what any worker on this broker and machine must stay under.
Run ``python -m tools.raw_ceiling`` against the running test broker; it prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass

from tools.kafka_clients import client_options

__all__ = ["CeilingResult", "measure_raw_ceiling"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CeilingResult:
    """One measurement; ``records_per_s`` is records / seconds of the consume → produce loop."""

    records: int
    seconds: float
    records_per_s: float
    kafka_version: str
    value_bytes: int
    partitions: int
    linger_ms: int
    max_batch_size: int
    max_poll_records: int
    prefill_seconds: float
    bootstrap: str


def _payload(index: int, value_bytes: int) -> bytes:
    head = f'{{"seq":{index},"pad":"'.encode()
    tail = b'"}'
    return head + b"x" * max(0, value_bytes - len(head) - len(tail)) + tail


def _key(index: int, keys: int) -> bytes:
    return f"person-{index % keys:06d}".encode()


async def _prefill(bootstrap: str, topic: str, records: int, value_bytes: int, keys: int) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **client_options(bootstrap, "aiokafka"),
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks=1,
        request_timeout_ms=30_000,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for index in range(records):
            await producer.send(topic, key=_key(index, keys), value=_payload(index, value_bytes))
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _forward(
    bootstrap: str,
    source: str,
    sink: str,
    records: int,
    partitions: int,
    linger_ms: int,
    max_batch_size: int,
    max_poll_records: int,
    stall_timeout_s: float = 30.0,
) -> float:
    """Consume ``records`` from ``source`` and send each to ``sink``; seconds until all are flushed."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(
        **client_options(bootstrap, "aiokafka"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        **client_options(bootstrap, "aiokafka"), linger_ms=linger_ms, max_batch_size=max_batch_size, acks=1
    )
    await consumer.start()
    await producer.start()
    try:
        assigned = [TopicPartition(source, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        forwarded = 0
        started = last_progress = time.perf_counter()
        while forwarded < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=max_poll_records)
            now = time.perf_counter()
            if batches:
                last_progress = now
            elif now - last_progress > stall_timeout_s:
                raise RuntimeError(f"no records for {stall_timeout_s:.0f} s after {forwarded} of {records}")
            for batch in batches.values():
                for record in batch:
                    await producer.send(sink, key=record.key, value=record.value)
                forwarded += len(batch)
        await producer.flush()
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()


def _end_offsets_total(bootstrap: str, topic: str, partitions: int) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client_options(bootstrap, "kafka-python"))
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        consumer.close()


def measure_raw_ceiling(
    bootstrap: str,
    records: int = 300_000,
    value_bytes: int = 500,
    partitions: int = 1,
    keys: int = 10_000,
    linger_ms: int = 5,
    max_batch_size: int = 256 * 1024,
    max_poll_records: int = 2_000,
    kafka_version: str = "unknown",
) -> CeilingResult:
    """Pre-fill a fresh topic, then time a raw aiokafka consume → produce loop over it.

    Both topics are created with a random suffix and deleted afterwards; the output topic's
    end offsets are checked so a run that lost records raises instead of reporting a figure.
    """
    for name, value, least in (
        ("records", records, 1),
        ("value_bytes", value_bytes, 16),
        ("partitions", partitions, 1),
        ("keys", keys, 1),
        ("max_batch_size", max_batch_size, 1024),
        ("max_poll_records", max_poll_records, 1),
    ):
        if value < least:
            raise ValueError(f"{name}={value!r} must be at least {least}")
    if linger_ms < 0:
        raise ValueError(f"linger_ms={linger_ms!r} must be zero or more")

    from kafka import KafkaAdminClient

    suffix = uuid.uuid4().hex[:10]
    source, sink = f"bench.raw-in.{suffix}", f"bench.raw-out.{suffix}"
    admin = KafkaAdminClient(**client_options(bootstrap, "kafka-python"), client_id="raw-ceiling")
    spec = {"num_partitions": partitions, "replication_factor": 1}
    admin.create_topics({source: spec, sink: spec}, timeout_ms=10_000, wait_for_metadata=True)
    try:
        prefill_s = asyncio.run(_prefill(bootstrap, source, records, value_bytes, keys))
        log.info("pre-filled %d records in %.2f s", records, prefill_s)
        seconds = asyncio.run(
            _forward(
                bootstrap, source, sink, records, partitions, linger_ms, max_batch_size, max_poll_records
            )
        )
        produced = _end_offsets_total(bootstrap, sink, partitions)
        if produced != records:
            raise RuntimeError(f"output topic holds {produced} records, expected {records}")
    finally:
        admin.delete_topics([source, sink], timeout_ms=10_000, raise_errors=False)
        admin.close()
    return CeilingResult(
        records=records,
        seconds=round(seconds, 3),
        records_per_s=round(records / seconds, 1),
        kafka_version=kafka_version,
        value_bytes=value_bytes,
        partitions=partitions,
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        max_poll_records=max_poll_records,
        prefill_seconds=round(prefill_s, 3),
        bootstrap=bootstrap,
    )


def main(argv: list[str] | None = None) -> int:
    from tools.kafka_broker import BrokerError, kafka_version, shared_broker

    parser = argparse.ArgumentParser(prog="python -m tools.raw_ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--value-bytes", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--max-batch-size", type=int, default=256 * 1024)
    parser.add_argument("--max-poll-records", type=int, default=2_000)
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("EPIFLOW_TEST_BROKER", ""),
        help="host:port of the broker (default: EPIFLOW_TEST_BROKER, else the test broker)",
    )
    parser.add_argument(
        "--start", action="store_true", help="start the test broker if it is not running, stop it after"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    options = dict(
        records=args.records,
        value_bytes=args.value_bytes,
        partitions=args.partitions,
        linger_ms=args.linger_ms,
        max_batch_size=args.max_batch_size,
        max_poll_records=args.max_poll_records,
    )
    try:
        if args.bootstrap:
            result = measure_raw_ceiling(args.bootstrap, **options)
        else:
            with shared_broker(start=args.start) as bootstrap:
                result = measure_raw_ceiling(bootstrap, kafka_version=kafka_version(), **options)
    except (BrokerError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
