"""Records/s through a one-agent Faust pipeline on memory:// and, in the same run, on Kafka.

The agent reads raw 500-byte values and sends each on to an output topic. Input is written
before the app starts; the clock runs from the first record the agent sees to the last.
Prints one JSON object. ``python -m tools.bench_transport [--kafka HOST:PORT | --start-kafka] [--records N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from typing import Any

import faust

from streams.memory import drop_broker, get_broker
from tools.kafka_clients import client_options

VALUE_BYTES = 500
DEFAULT_RECORDS = 20_000


def _build_app(
    broker: str, app_id: str, source_name: str, sink_name: str, expected: int
) -> tuple[faust.App, dict]:
    app = faust.App(
        app_id,
        broker=broker,
        store="memory://",
        web_enabled=False,
        topic_partitions=1,
        topic_replication_factor=1,
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        datadir=tempfile.mkdtemp(prefix="epiflow-bench-"),
    )
    source = app.topic(source_name, key_serializer="raw", value_serializer="raw", partitions=1)
    sink = app.topic(sink_name, key_serializer="raw", value_serializer="raw", partitions=1)
    progress: dict[str, Any] = {"count": 0, "first": None, "last": None, "done": asyncio.Event()}

    @app.agent(source, name="forward")
    async def forward(stream: Any) -> None:
        async for value in stream:
            if progress["first"] is None:
                progress["first"] = time.perf_counter()
            await sink.send(value=value)
            progress["count"] += 1
            if progress["count"] >= expected:
                progress["last"] = time.perf_counter()
                progress["done"].set()

    return app, progress


async def _run_pipeline(
    broker: str, app_id: str, source: str, sink: str, records: int, timeout: float
) -> dict:
    app, progress = _build_app(broker, app_id, source, sink, records)
    cpu_start = time.process_time()
    await app.start()
    try:
        await asyncio.wait_for(progress["done"].wait(), timeout)
        await app.producer.flush()
    finally:
        await app.stop()
    seconds = progress["last"] - progress["first"]
    return {
        "records": records,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds) if seconds > 0 else None,
        "process_cpu_s": round(time.process_time() - cpu_start, 3),
    }


def bench_memory(records: int, timeout: float) -> dict:
    """Fill an in-process broker, run the pipeline on it, check every record reached the sink."""
    run = uuid.uuid4().hex[:8]
    url = f"memory://bench-{run}"
    broker = get_broker(url)
    source, sink = f"bench-{run}-in", f"bench-{run}-out"
    broker.create_topic(source, 1)
    broker.create_topic(sink, 1)
    value = os.urandom(VALUE_BYTES)
    for _ in range(records):
        broker.append(source, None, value, partition=0)
    try:
        result = asyncio.run(_run_pipeline(url, f"bench-{run}", source, sink, records, timeout))
        result["sink_records"] = broker.end_offset(sink, 0)
    finally:
        drop_broker(url)
    return result


def bench_kafka(bootstrap: str, records: int, timeout: float) -> dict:
    """Fill a fresh topic on the broker with kafka-python, run the pipeline, delete the topics."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    run = uuid.uuid4().hex[:8]
    source, sink = f"bench-{run}-in", f"bench-{run}-out"
    admin = KafkaAdminClient(**client_options(bootstrap, "kafka-python"), client_id="epiflow-bench")
    try:
        admin.create_topics([NewTopic(source, 1, 1), NewTopic(sink, 1, 1)])
        producer = KafkaProducer(**client_options(bootstrap, "kafka-python"), linger_ms=20, batch_size=256 * 1024)
        value = os.urandom(VALUE_BYTES)
        for _ in range(records):
            producer.send(source, value=value, partition=0)
        producer.flush()
        producer.close()
        return asyncio.run(
            _run_pipeline(f"kafka://{bootstrap}", f"bench-{run}", source, sink, records, timeout)
        )
    finally:
        admin.delete_topics([source, sink])
        admin.close()


def _default_kafka() -> tuple[str | None, str | None]:
    """The project's test broker if it is running (never started here), else a reason."""
    try:
        from tools.kafka_broker import broker_running, broker_settings
    except ImportError as error:  # the broker tooling is optional for this benchmark
        return None, f"tools.kafka_broker unavailable: {error}"
    if broker_running():
        return broker_settings().bootstrap, None
    return None, "no --kafka given and the test broker is not running (python -m tools.kafka_broker up)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kafka", metavar="HOST:PORT", help="Kafka bootstrap (default: the test broker if up)"
    )
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="records per transport")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per transport")
    parser.add_argument("--no-kafka", action="store_true", help="measure memory:// only")
    parser.add_argument(
        "--start-kafka",
        action="store_true",
        help="start the test broker for this run if it is not up (stopped again after, unless others hold it)",
    )
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error(f"--records must be >= 1, got {args.records}")
    logging.basicConfig(level=logging.ERROR)

    result: dict[str, Any] = {
        "benchmark": "one agent: read raw value, send on to an output topic",
        "value_bytes": VALUE_BYTES,
        "partitions": 1,
        "python": platform.python_version(),
        "faust": faust.__version__,
        "cpus": os.cpu_count(),
    }
    result["memory"] = bench_memory(args.records, args.timeout)
    with contextlib.ExitStack() as stack:
        if args.no_kafka:
            bootstrap, skipped = None, "--no-kafka"
        elif args.kafka:
            bootstrap, skipped = args.kafka, None
        elif args.start_kafka:
            from tools.kafka_broker import shared_broker

            bootstrap, skipped = stack.enter_context(shared_broker()), None
        else:
            bootstrap, skipped = _default_kafka()
        _add_kafka(result, bootstrap, skipped, args.records, args.timeout)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


def _add_kafka(
    result: dict[str, Any], bootstrap: str | None, skipped: str | None, records: int, timeout: float
) -> None:
    if not bootstrap:
        result["kafka"] = None
        result["kafka_skipped"] = skipped
        return
    result["kafka"] = bench_kafka(bootstrap, records, timeout)
    result["kafka"]["bootstrap"] = bootstrap
    memory_rate, kafka_rate = result["memory"]["records_per_s"], result["kafka"]["records_per_s"]
    if memory_rate and kafka_rate:
        result["memory_over_kafka"] = round(memory_rate / kafka_rate, 2)


if __name__ == "__main__":
    sys.exit(main())
