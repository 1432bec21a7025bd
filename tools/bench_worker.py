"""Worker capacity on the real Kafka broker: sustained person-events/s, latency at fractions of it, memory.

``python -m tools.bench_worker run [--workers N] [--people P] [--fractions 0.25,0.5,1] [--seconds S]
[--store memory://|rocksdb://] [--restart]`` pre-fills the input topics with a simulation anchored at now, starts N `epiflow worker` subprocesses
in one consumer group and times how fast they drain the backlog (from `/api/status` counts); then
sends fresh simulated inputs at fractions of that rate and measures ingest→triage latency from the
broker timestamps of input records and of the triage records that name them. RSS growth per 100,000
tracked people comes from the same run, with the disk the store uses; with ``--restart`` the workers are then
stopped and started again on the same data directory, timed until their tables are recovered. ``python -m tools.bench_worker naive [--records N]`` is the
one-message-at-a-time baseline: kafka-python poll of one record → `pipeline.ingest` + `pipeline.join.step`
→ produce + flush per record. Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pipeline.inputs import TOPICS
from tools.kafka_clients import client_options
from tools.ports import free_port

__all__ = ["measure_naive", "measure_workers"]

log = logging.getLogger(__name__)

INPUT_KINDS = TOPICS
_STATUS_INTERVAL_S = 0.25


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _simulate(seed: int, people: int, at: datetime, folder: Path) -> list[tuple[str, bytes]]:
    """Simulated (kind, raw) records anchored at `at`; the shifted risk regions go to `folder`."""
    from pipeline.simulate import _default_geography, _regions_geojson, simulate_stream

    geo = _default_geography(at)
    (folder / "risk_regions.geojson").write_bytes(_regions_geojson(geo.regions))
    return list(simulate_stream(seed, people, at, geo))


def _expected(records: Sequence[tuple[str, bytes]], secret: bytes, at: datetime) -> tuple[int, set[str]]:
    """(person events the records fan out to, distinct person keys) — what the workers must end with."""
    from pipeline.errors import RejectedEvent
    from pipeline.ingest import ingest

    person_events = 0
    keys: set[str] = set()
    for _, raw in records:
        try:
            people = ingest(raw, secret=secret, now=at, lookback=timedelta(days=14))
        except RejectedEvent:
            continue
        person_events += len(people)
        keys.update(p.person_key for p in people)
    return person_events, keys


def _event_id(raw: bytes) -> str | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc.get("event_id") if isinstance(doc, dict) else None


def _create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(**client_options(bootstrap, "kafka-python"), client_id="bench-worker")
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names], timeout_ms=20_000)
    finally:
        admin.close()


def _delete_prefix(bootstrap: str, prefix: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**client_options(bootstrap, "kafka-python"), client_id="bench-worker")
    try:
        ours = [t for t in admin.list_topics() if t.startswith(prefix + ".") or t.startswith(prefix + "-")]
        if ours:
            admin.delete_topics(ours, timeout_ms=30_000)
    except Exception as error:  # best effort; the prefix is unique to this run
        log.warning("could not delete topics of %s: %s", prefix, error)
    finally:
        admin.close()


async def _prefill(bootstrap: str, prefix: str, records: Sequence[tuple[str, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**client_options(bootstrap, "aiokafka"), linger_ms=20, max_batch_size=512 * 1024, acks=1)
    await producer.start()
    started = time.perf_counter()
    try:
        for kind, raw in records:
            await producer.send(f"{prefix}.{kind}", value=raw)
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _paced(bootstrap: str, prefix: str, records: Sequence[tuple[str, bytes]], rate: float) -> tuple[dict[str, int], float]:
    """Send `records` at `rate` per second (10 ms ticks); returns event_id → send time (ms) and the seconds taken."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**client_options(bootstrap, "aiokafka"), linger_ms=2, max_batch_size=256 * 1024, acks=1)
    await producer.start()
    sent_at: dict[str, int] = {}
    try:
        started = time.perf_counter()
        index = 0
        while index < len(records):
            due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
            while index < due:
                kind, raw = records[index]
                stamp = int(time.time() * 1000)
                await producer.send(f"{prefix}.{kind}", value=raw, timestamp_ms=stamp)
                event_id = _event_id(raw)
                if event_id:
                    sent_at.setdefault(event_id, stamp)
                index += 1
            await asyncio.sleep(0.01)
        await producer.flush()
        return sent_at, time.perf_counter() - started
    finally:
        await producer.stop()


def _triage_records(bootstrap: str, prefix: str) -> list[tuple[int, dict[str, Any]]]:
    """(broker timestamp ms, message) of every record on the community and unassigned triage topics."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client_options(bootstrap, "kafka-python"), enable_auto_commit=False, group_id=None)
    try:
        topics = [t for t in consumer.topics() if t.startswith(f"{prefix}.triage.") and ".triage.street." not in t]
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                out.extend((m.timestamp, orjson.loads(m.value)) for m in batch)
        return out
    finally:
        consumer.close()


def _total(workers: Sequence[Any], patience_s: float = 60.0) -> dict[str, int]:
    """Summed counts of every worker; a busy worker may miss a poll, so wait for it while it is alive."""
    total: dict[str, int] = {}
    for worker in workers:
        deadline = time.monotonic() + patience_s
        status = worker.status(timeout=5.0)
        while status is None:
            if not worker.alive or time.monotonic() > deadline:
                raise RuntimeError(f"worker pid {worker.pid} stopped answering /api/status "
                                   f"({'exited ' + str(worker.returncode) if not worker.alive else 'alive'}); "
                                   f"log tail:\n{worker.log_tail()}")
            time.sleep(0.5)
            status = worker.status(timeout=5.0)
        for name, value in status["counts"].items():
            total[name] = total.get(name, 0) + int(value)
    return total


def _drain(workers: Sequence[Any], inputs: int, person_events: int, timeout: float,
           stall_s: float = 120.0) -> list[tuple[float, dict[str, int]]]:
    """Poll the workers' counts until every input is accounted for and every person event joined.

    Raises when the counts stop moving for `stall_s` seconds, or after `timeout` seconds in all.
    """
    samples: list[tuple[float, dict[str, int]]] = []
    deadline = time.monotonic() + timeout
    moved_at, last = time.monotonic(), None
    while True:
        counts = _total(workers)
        now = time.monotonic()
        samples.append((now, counts))
        if counts.get("inputs", 0) >= inputs and counts.get("joined", 0) >= person_events:
            return samples
        if counts != last:
            moved_at, last = now, counts
        elif now - moved_at > stall_s:
            raise RuntimeError(f"no progress for {stall_s:.0f} s: {counts} (expected {inputs} inputs, "
                               f"{person_events} person events joined); log tail:\n{workers[0].log_tail(8)}")
        if now > deadline:
            raise RuntimeError(f"not drained after {timeout:.0f} s: {counts} (expected {inputs} inputs, {person_events} person events)")
        time.sleep(_STATUS_INTERVAL_S)


def _sustained(samples: list[tuple[float, dict[str, int]]], total: int, key: str = "joined") -> dict[str, float]:
    """Rate of `key` between 10 % and 90 % of `total` (start-up and tail left out), and over the whole drain."""
    def first_at(share: float) -> tuple[float, int]:
        for t, counts in samples:
            if counts.get(key, 0) >= share * total:
                return t, counts.get(key, 0)
        return samples[-1][0], samples[-1][1].get(key, 0)

    t10, n10 = first_at(0.10)
    t90, n90 = first_at(0.90)
    t_start = next((t for t, c in samples if c.get("inputs", 0) > 0), samples[0][0])
    whole = samples[-1][0] - t_start
    return {
        "per_s": round((n90 - n10) / (t90 - t10), 1) if t90 > t10 else 0.0,
        "window_s": round(t90 - t10, 2),
        "drain_s": round(whole, 2),
        "drain_per_s": round(total / whole, 1) if whole > 0 else 0.0,
    }


def _latency_phase(bootstrap: str, prefix: str, workers: Sequence[Any], records: list[tuple[str, bytes]],
                   rate: float, secret: bytes) -> dict[str, Any]:
    """Send `records` at `rate` inputs/s, wait until they are joined; the send times for the latency join."""
    expected_pe, _ = _expected(records, secret, datetime.now(UTC))
    before = _total(workers)
    cpu_before = [_cpu(w.pid) for w in workers]
    buckets_before = _latency_buckets(workers)
    sent_at, seconds = asyncio.run(_paced(bootstrap, prefix, records, rate))
    send_done = time.monotonic()
    samples = _drain(workers, before["inputs"] + len(records), before["joined"] + expected_pe, timeout=300)
    cpu_after = [_cpu(w.pid) for w in workers]
    buckets_after = _latency_buckets(workers)
    return {
        "target_inputs_per_s": round(rate, 1),
        "achieved_inputs_per_s": round(len(records) / seconds, 1),
        "inputs": len(records),
        "person_events": expected_pe,
        "person_events_per_s": round(expected_pe / seconds, 1),
        "send_s": round(seconds, 2),
        "caught_up_after_send_s": round(samples[-1][0] - send_done, 2),
        "histogram_p50_le_ms": _bucket_quantile(buckets_before, buckets_after, 0.50),
        "histogram_p99_le_ms": _bucket_quantile(buckets_before, buckets_after, 0.99),
        "worker_cpu_share": round(sum(a - b for a, b in zip(cpu_after, cpu_before, strict=True)) / (samples[-1][0] - send_done + seconds), 3),
        "_sent_at": sent_at,
    }


def _start(env: dict[str, str], folder: Path, name: str) -> Any:
    """Start one `epiflow worker` subprocess (tools.workers) and wait until its rules are loaded."""
    from tools.workers import start_worker

    port = free_port()
    data = {"EPIFLOW_DATA_DIR": str(Path(env["EPIFLOW_DATA_DIR"]) / name)}  # one RocksDB dir per worker
    worker = start_worker({**env, **data, "EPIFLOW_WEB_PORT": str(port)}, port, log_dir=folder, name=name)
    try:
        worker.wait_ready(timeout=120)
    except Exception:
        worker.terminate(timeout=10)
        raise
    return worker


def _latency_buckets(workers: Sequence[Any]) -> dict[float, float]:
    """Cumulative `epiflow_ingest_to_triage_seconds` bucket counts summed over the workers' `/metrics`."""
    import urllib.request

    buckets: dict[float, float] = {}
    for worker in workers:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        for line in text.splitlines():
            if line.startswith("epiflow_ingest_to_triage_seconds_bucket{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                bound = float("inf") if le == "+Inf" else float(le)
                buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def _bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """Upper bucket bound (ms) holding the q-quantile of what was observed between two scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return None if bound == float("inf") else round(bound * 1000, 1)
    return None


def _cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _rss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def measure_workers(
    bootstrap: str,
    *,
    workers: int = 1,
    people: int = 60_000,
    partitions: int = 4,
    fractions: Sequence[float] = (0.25, 0.5, 1.0),
    latency_seconds: float = 20.0,
    seed: int = 7,
    kafka_version: str = "unknown",
    store: str = "memory://",
    restart: bool = False,
    ceiling: bool = True,
) -> dict[str, Any]:
    """Backlog throughput of `workers` workers, then latency at `fractions` of it, RSS per tracked person and
    the store's disk; with `restart`, the time a restarted worker takes to recover its tables."""
    if workers < 1:
        raise ValueError(f"workers={workers!r} must be at least 1")
    if people < 100:
        raise ValueError(f"people={people!r} must be at least 100")
    if any(not 0 < f <= 2 for f in fractions):
        raise ValueError(f"fractions={list(fractions)!r} must each be in (0, 2]")
    if not store.startswith(("memory://", "rocksdb://")):
        raise ValueError(f"store={store!r} must be 'memory://' or 'rocksdb://'")
    if latency_seconds <= 0 and fractions:
        raise ValueError(f"latency_seconds={latency_seconds!r} must be positive")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    secret = secrets.token_hex(32)
    at = datetime.now(UTC).replace(microsecond=0)
    folder = Path(tempfile.mkdtemp(prefix="epiflow-bench-worker-"))
    started = time.perf_counter()
    records = _simulate(seed, people, at, folder)
    person_events, keys = _expected(records, secret.encode(), at)
    log.info("simulated %d inputs → %d person events, %d people in %.1f s", len(records), person_events, len(keys),
             time.perf_counter() - started)
    env = {
        "EPIFLOW_BROKER": f"kafka://{bootstrap}",
        "EPIFLOW_TOPIC_PREFIX": prefix,
        "EPIFLOW_SECRET": secret,
        "EPIFLOW_PARTITIONS": str(partitions),
        "EPIFLOW_REGIONS": str(folder / "risk_regions.geojson"),
        "EPIFLOW_DATA_DIR": str(folder / "data"),
        "EPIFLOW_STORE": store,
    }
    _create_topics(bootstrap, [f"{prefix}.{k}" for k in INPUT_KINDS], partitions)
    running: list[Any] = []
    try:
        for n in range(workers):
            running.append(_start(env, folder, f"worker{n}"))
        time.sleep(3.0)  # let the group settle before the backlog appears
        rss_idle = [_rss(w.pid) for w in running]
        cpu_before = [_cpu(w.pid) for w in running]
        prefill_s = asyncio.run(_prefill(bootstrap, prefix, records))
        samples = _drain(running, len(records), person_events, timeout=2400)
        cpu_after = [_cpu(w.pid) for w in running]
        rss_loaded = [_rss(w.pid) for w in running]
        final = samples[-1][1]
        sustained = _sustained(samples, person_events)
        disk = _disk_bytes(folder / "data")
        result: dict[str, Any] = {
            "workers": workers,
            "store": store,
            "partitions": partitions,
            "people_simulated": people,
            "tracked_people": len(keys),
            "inputs": len(records),
            "person_events": person_events,
            "counts": final,
            "accounting_holds": final["inputs"] == final["forwarded"] + final["dead_lettered"],
            "prefill_s": round(prefill_s, 2),
            "sustained_person_events_per_s": sustained["per_s"],
            "sustained_window_s": sustained["window_s"],
            "drain_s": sustained["drain_s"],
            "drain_person_events_per_s": sustained["drain_per_s"],
            "inputs_per_s": _sustained(samples, len(records), key="inputs")["per_s"],
            "worker_cpu_s": round(sum(a - b for a, b in zip(cpu_after, cpu_before, strict=True)), 2),
            "rss_idle_mb": [round(r / 2**20, 1) for r in rss_idle],
            "rss_loaded_mb": [round(r / 2**20, 1) for r in rss_loaded],
            "rss_growth_per_100k_people_mb": round((sum(rss_loaded) - sum(rss_idle)) / 2**20 / len(keys) * 100_000, 1),
            "rss_growth_per_person_bytes": round((sum(rss_loaded) - sum(rss_idle)) / len(keys)),
            "joined_all": final["joined"] == person_events,
            "store_disk_mb": round(disk / 2**20, 1),
            "kafka_version": kafka_version,
            "bootstrap": bootstrap,
            "topic_prefix": prefix,
        }
        if ceiling:
            from tools.equivalent_ceiling import measure_equivalent

            result.update(measure_equivalent(bootstrap, prefix, records, secret.encode(), at, partitions))
            top = result["equivalent_ceiling_person_events_per_s"]
            result["sustained_to_ceiling"] = round(sustained["per_s"] / top, 3) if top else None
        if fractions and sustained["per_s"] > 0:
            ratio = person_events / len(records)
            phases = []
            for i, fraction in enumerate(fractions):
                rate = fraction * sustained["per_s"] / ratio
                batch = _simulate(seed + 1 + i, max(100, int(rate * latency_seconds / 1.62)), datetime.now(UTC), folder)
                batch = batch[: int(rate * latency_seconds)] or batch
                phase = _latency_phase(bootstrap, prefix, running, batch, rate, secret.encode())
                phase["fraction"] = fraction
                phases.append(phase)
            time.sleep(1.0)
            triage = _triage_records(bootstrap, prefix)
            for phase in phases:
                sent_at = phase.pop("_sent_at")
                # a triage message names the event that triggered it; latency = its broker time − that input's
                lat = [ts - sent_at[e] for ts, m in triage for e in m.get("source_event_ids", ()) if e in sent_at]
                phase.update(
                    triage_messages=len(lat),
                    latency_p50_ms=_percentile(lat, 0.50),
                    latency_p99_ms=_percentile(lat, 0.99),
                    latency_max_ms=max(lat) if lat else None,
                )
            result["latency"] = phases
        if restart:
            result["restart"] = _restart(running, env, folder)
        shutil.rmtree(folder, ignore_errors=True)  # kept (worker logs) only when the run failed
        return result
    finally:
        for worker in running:
            worker.terminate(timeout=30)
        _delete_prefix(bootstrap, prefix)


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def _restart(running: list[Any], env: dict[str, str], folder: Path) -> dict[str, Any]:
    """Stop every worker (SIGTERM), start as many again on the same data directory, and time until each
    reports its tables recovered (the person table's changelog read back, the place store rebuilt from it)."""
    places = sum(w.status(timeout=10)["places"] for w in running)
    for worker in running:
        worker.terminate(timeout=60)
    disk = _disk_bytes(folder / "data")
    started = time.monotonic()
    running[:] = [_start(env, folder, f"worker{n}") for n in range(len(running))]
    for worker in running:
        worker.wait_for(lambda s: bool(s.get("recovered")), timeout=3600, what="tables recovered")
    seconds = time.monotonic() - started
    return {
        "recovery_s": round(seconds, 1),
        "store_disk_mb_after_stop": round(disk / 2**20, 1),
        "places_before": places,
        "places_after": sum(w.status(timeout=10)["places"] for w in running),
        "rss_recovered_mb": [round(_rss(w.pid) / 2**20, 1) for w in running],
    }


def _naive_state_loop(bootstrap: str, topic: str, sink: str, count: int, secret: bytes, folder: Path, at: datetime) -> dict[str, Any]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from pipeline.errors import RejectedEvent
    from pipeline.evaluate import load_indexes
    from pipeline.ingest import ingest
    from pipeline.join import step
    from pipeline.rules import load_rules
    from pipeline.settings import load_settings
    from pipeline.state import new_state

    settings = load_settings()
    rules = load_rules(settings.path(settings.rules))
    regions, communities = load_indexes(folder / "risk_regions.geojson", settings.path(settings.communities))
    lookback = timedelta(seconds=rules.windows.lookback)
    states: dict[str, Any] = {}
    consumer = KafkaConsumer(**client_options(bootstrap, "kafka-python"), enable_auto_commit=False, group_id=None, max_poll_records=1)
    producer = KafkaProducer(**client_options(bootstrap, "kafka-python"), linger_ms=0, acks=1)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    done = person_events = messages = 0
    started = None
    try:
        while done < count:
            for batch in consumer.poll(timeout_ms=1000, max_records=1).values():
                for record in batch:
                    if started is None:
                        started = time.perf_counter()
                    now = datetime.now(UTC)
                    try:
                        people = ingest(record.value, secret=secret, now=now, lookback=lookback,
                                        received_at=datetime.fromtimestamp(record.timestamp / 1000, UTC))
                    except RejectedEvent:
                        people = []
                    for event in people:
                        producer.send(f"{sink}.person-events", key=event.person_key.encode(), value=event.model_dump_json().encode())
                        state = states.get(event.person_key) or new_state(event.person_key)
                        new, _, message = step(state, event, rules, regions, communities, now)
                        states[event.person_key] = new
                        person_events += 1
                        if message is not None:
                            producer.send(f"{sink}.triage", key=event.person_key.encode(), value=message.model_dump_json().encode())
                            messages += 1
                    producer.flush()
                    done += 1
        seconds = time.perf_counter() - (started or time.perf_counter())
    finally:
        consumer.close()
        producer.close()
    return {"inputs": done, "person_events": person_events, "triage_messages": messages, "seconds": round(seconds, 3),
            "inputs_per_s": round(done / seconds, 1), "person_events_per_s": round(person_events / seconds, 1)}


def measure_naive(bootstrap: str, *, records: int = 3000, seed: int = 5, kafka_version: str = "unknown") -> dict[str, Any]:
    """One record at a time: poll one, ingest, join step per person, send each triage message, flush, repeat."""
    if records < 10:
        raise ValueError(f"records={records!r} must be at least 10")
    prefix = f"bench-naive-{uuid.uuid4().hex[:8]}"
    at = datetime.now(UTC).replace(microsecond=0)
    folder = Path(tempfile.mkdtemp(prefix="epiflow-bench-naive-"))
    batch = _simulate(seed, max(10, int(records / 1.62) + 10), at, folder)[:records]
    source, sink = f"{prefix}.in", prefix
    _create_topics(bootstrap, [source, f"{sink}.person-events", f"{sink}.triage"], 1)
    try:
        asyncio.run(_prefill_one(bootstrap, source, [raw for _, raw in batch]))
        result = _naive_state_loop(bootstrap, source, sink, len(batch), secrets.token_bytes(32), folder, at)
    finally:
        _delete_prefix(bootstrap, prefix)
        shutil.rmtree(folder, ignore_errors=True)
    return {**result, "kafka_version": kafka_version, "bootstrap": bootstrap}


async def _prefill_one(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**client_options(bootstrap, "aiokafka"), linger_ms=20, max_batch_size=512 * 1024, acks=1)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value=value)
        await producer.flush()
    finally:
        await producer.stop()


def _fractions(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()] if text.strip() else []


def _broker() -> Iterator[tuple[str, str]]:
    from tools.kafka_broker import kafka_version, shared_broker

    with shared_broker(start=True) as bootstrap:
        yield bootstrap, kafka_version()


def main(argv: list[str] | None = None) -> int:
    import contextlib

    parser = argparse.ArgumentParser(prog="python -m tools.bench_worker", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="throughput, latency and memory of N workers")
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--people", type=int, default=60_000)
    run.add_argument("--partitions", type=int, default=4)
    run.add_argument("--fractions", default="0.25,0.5,1.0", help="comma-separated fractions of the sustained rate ('' = none)")
    run.add_argument("--seconds", type=float, default=20.0, help="length of each latency phase")
    run.add_argument("--seed", type=int, default=7)
    run.add_argument("--store", default="memory://", help="table store of the workers: memory:// or rocksdb://")
    run.add_argument("--restart", action="store_true", help="then restart the workers and time table recovery")
    run.add_argument("--no-ceiling", action="store_true", help="skip the equivalent-work ceiling (tools.equivalent_ceiling)")
    naive = sub.add_parser("naive", help="one-message-at-a-time baseline")
    naive.add_argument("--records", type=int, default=3000)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up (workers, topics) on SIGTERM
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    with contextlib.contextmanager(_broker)() as (bootstrap, version):
        if args.mode == "run":
            result = measure_workers(bootstrap, workers=args.workers, people=args.people, partitions=args.partitions,
                                     fractions=_fractions(args.fractions), latency_seconds=args.seconds, seed=args.seed,
                                     kafka_version=version, store=args.store, restart=args.restart,
                                     ceiling=not args.no_ceiling)
        else:
            result = measure_naive(bootstrap, records=args.records, kafka_version=version)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
