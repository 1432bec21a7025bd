"""The equivalent-work ceiling: a raw aiokafka loop doing a worker's Kafka operations per person event, no domain work.

`tools.bench_worker run` calls `measure_equivalent` right after its workers drained the backlog. The
operations are counted from what the worker wrote in that run (`count_operations`: records per topic of
its prefix), and the loop repeats them on a fresh prefix, with the same input records, partitions,
record values (the worker's own, cycled), batching and delivery-before-commit order:

- ingest: consume each input record, produce its person events (from `pipeline.ingest`, computed
  before the clock starts), wait for their delivery;
- join: consume each person-event record; produce the triage messages and the cases-topic records at the
  worker's rate per person event, wait, then the person table's changelog records, wait;
- cases: consume each cases record, produce the cases changelog records at the worker's rate, wait;
- commit the consumed offsets once a second (as the worker), after the batch's deliveries.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pipeline.inputs import TOPICS as INPUT_TOPICS
from tools.kafka_clients import client_options

__all__ = ["Operations", "count_operations", "measure_equivalent"]

#: what the worker's app uses (streams/app.py, streams/agents.py)
_LINGER_MS = 5
_MAX_BATCH_BYTES = 256 * 1024
_BATCH_MAX = 256
_COMMIT_EVERY_S = 1.0
_SAMPLE = 2000


@dataclass(frozen=True)
class Operations:
    """Records the worker wrote per topic in one run, and samples of their values to produce again."""

    person_event_records: int
    triage_records: int
    triage_topics: int
    cases_records: int
    persons_changelog: int
    cases_changelog: int
    other_records: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[tuple[bytes | None, bytes]]] = field(default_factory=dict, repr=False)

    def per_person_event(self, inputs: int, person_events: int) -> dict[str, float]:
        """Client operations per person event (consumes and produces), as the worker did them."""
        pe = max(1, person_events)
        return {
            "input_consume": round(inputs / pe, 3),
            "person_event_produce": round(person_events / pe, 3),
            "person_event_consume": round(self.person_event_records / pe, 3),
            "persons_changelog_produce": round(self.persons_changelog / pe, 3),
            "triage_produce": round(self.triage_records / pe, 3),
            "cases_produce": round(self.cases_records / pe, 3),
            "cases_consume": round(self.cases_records / pe, 3),
            "cases_changelog_produce": round(self.cases_changelog / pe, 3),
        }


def _sample(consumer: Any, tps: Sequence[Any], limit: int) -> list[tuple[bytes | None, bytes]]:
    """Up to `limit` (key, value) records from the start of `tps`."""
    if not tps:
        return []
    consumer.assign(list(tps))
    consumer.seek_to_beginning(*tps)
    out: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + 30
    while len(out) < limit and time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=500, max_records=limit)
        if not polled:
            break
        for batch in polled.values():
            out.extend((m.key, m.value) for m in batch if m.value is not None)
    return out[:limit]


def count_operations(bootstrap: str, prefix: str) -> Operations:
    """Records per topic the worker of `prefix` wrote (log end offsets), with samples of the hot topics' values."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client_options(bootstrap, "kafka-python"), enable_auto_commit=False, group_id=None)
    try:
        topics = [t for t in consumer.topics() if t.startswith(prefix + ".") or t.startswith(prefix + "-")]
        tps = {t: [TopicPartition(t, p) for p in (consumer.partitions_for_topic(t) or ())] for t in topics}
        ends = consumer.end_offsets([tp for parts in tps.values() for tp in parts])
        count = {t: sum(ends[tp] for tp in parts) for t, parts in tps.items()}
        triage = [t for t in topics if t.startswith(f"{prefix}.triage.") and count[t]]
        names = {
            "person_events": f"{prefix}.person-events",
            "cases": f"{prefix}.cases",
            "persons_changelog": f"{prefix}-worker-persons-changelog",
            "cases_changelog": f"{prefix}-worker-cases-changelog",
        }
        samples = {k: _sample(consumer, tps.get(t, []), _SAMPLE) for k, t in names.items() if k != "person_events"}
        samples["triage"] = _sample(consumer, [tp for t in triage for tp in tps[t]], _SAMPLE)
        known = set(names.values()) | set(triage)
        return Operations(
            person_event_records=count.get(names["person_events"], 0),
            triage_records=sum(count[t] for t in triage),
            triage_topics=len(triage),
            cases_records=count.get(names["cases"], 0),
            persons_changelog=count.get(names["persons_changelog"], 0),
            cases_changelog=count.get(names["cases_changelog"], 0),
            other_records={t: n for t, n in count.items() if t not in known and n and not t.endswith(
                tuple(f".{topic}" for topic in INPUT_TOPICS))},
            samples=samples,
        )
    finally:
        consumer.close()


class _Rate:
    """Deterministic fractional repetition: `take()` says how many operations one more record asks for."""

    def __init__(self, per_record: float) -> None:
        self.per_record = per_record
        self.owed = 0.0

    def take(self) -> int:
        self.owed += self.per_record
        whole = int(self.owed)
        self.owed -= whole
        return whole


def _cycle(values: list[tuple[bytes | None, bytes]], fallback: bytes) -> Iterator[tuple[bytes | None, bytes]]:
    return itertools.cycle(values or [(None, fallback)])


async def _loop(bootstrap: str, prefix: str, inputs: Sequence[tuple[str, bytes]], fan_out: dict[bytes, list[tuple[bytes, bytes]]],
                ops: Operations, person_events: int, partitions: int, timeout_s: float) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    from tools.bench_worker import INPUT_KINDS

    pe_topic, cases_topic = f"{prefix}.person-events", f"{prefix}.cases"
    persons_cl, cases_cl = f"{prefix}-persons-changelog", f"{prefix}-cases-changelog"
    triage_topics = [f"{prefix}.triage.c{n:03d}" for n in range(max(1, ops.triage_topics))]
    input_topics = [f"{prefix}.{k}" for k in INPUT_KINDS]
    pe = max(1, ops.person_event_records)
    triage_rate, cases_rate = _Rate(ops.triage_records / pe), _Rate(ops.cases_records / pe)
    changelog_rate = _Rate(ops.persons_changelog / pe)
    cases_cl_rate = _Rate(ops.cases_changelog / max(1, ops.cases_records))
    triage_values = _cycle(ops.samples.get("triage", []), b"{}" * 400)
    case_values = _cycle(ops.samples.get("cases", []), b"{}" * 400)
    state_values = _cycle(ops.samples.get("persons_changelog", []), b"{}" * 500)
    case_state_values = _cycle(ops.samples.get("cases_changelog", []), b"{}" * 600)
    topic_of = itertools.cycle(triage_topics)

    producer = AIOKafkaProducer(**client_options(bootstrap, "aiokafka"), linger_ms=_LINGER_MS,
                                max_batch_size=_MAX_BATCH_BYTES, acks="all")
    await producer.start()
    try:
        started = time.perf_counter()
        for kind, raw in inputs:
            await producer.send(f"{prefix}.{kind}", value=raw)
        await producer.flush()
        prefill_s = time.perf_counter() - started
        consumer = AIOKafkaConsumer(*input_topics, pe_topic, cases_topic, **client_options(bootstrap, "aiokafka"),
                                    group_id=f"{prefix}-group", enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=1500)
        await consumer.start()
        try:
            counts = {"inputs": 0, "person_events": 0, "cases": 0, "produced": 0}
            want_pe = len([v for _, raw in inputs for v in fan_out.get(raw, ())])
            offsets: dict[Any, int] = {}
            committed_at = started = None
            done_at = 0.0
            deadline = time.monotonic() + timeout_s
            while counts["inputs"] < len(inputs) or counts["person_events"] < want_pe or counts["cases"] < ops.cases_records * want_pe // pe:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"equivalent loop not done after {timeout_s:.0f} s: {counts}")
                batches = await consumer.getmany(timeout_ms=200, max_records=_BATCH_MAX)
                if not batches:
                    if counts["inputs"] == len(inputs) and started is not None and time.perf_counter() - done_at > 5:
                        break  # the cases share is a rate, so the last few may never come
                    continue
                if started is None:
                    started = committed_at = time.perf_counter()
                await asyncio.gather(*(
                    _stage(producer, tp, records, counts, fan_out, pe_topic, cases_topic, persons_cl, cases_cl, topic_of,
                           triage_rate, cases_rate, changelog_rate, cases_cl_rate, triage_values, case_values,
                           state_values, case_state_values, partitions)
                    for tp, records in batches.items()))
                for tp, records in batches.items():
                    offsets[TopicPartition(tp.topic, tp.partition)] = records[-1].offset + 1
                done_at = time.perf_counter()
                if time.perf_counter() - committed_at >= _COMMIT_EVERY_S:
                    await consumer.commit(offsets)
                    committed_at = time.perf_counter()
            if offsets:
                await consumer.commit(offsets)
            seconds = done_at - started if started is not None else 0.0
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    return {"seconds": round(seconds, 3), "prefill_s": round(prefill_s, 2), **counts}


async def _stage(producer: Any, tp: Any, records: Sequence[Any], counts: dict[str, int], fan_out: dict[bytes, list[tuple[bytes, bytes]]],
                 pe_topic: str, cases_topic: str, persons_cl: str, cases_cl: str, topic_of: Iterator[str], triage_rate: _Rate,
                 cases_rate: _Rate, changelog_rate: _Rate, cases_cl_rate: _Rate, triage_values: Iterator, case_values: Iterator,
                 state_values: Iterator, case_state_values: Iterator, partitions: int) -> None:
    """One partition's batch, as the worker's agent for that topic handles it: produce, wait, (produce, wait)."""
    first: list[Any] = []
    then: list[tuple[str, bytes, bytes, int]] = []
    if tp.topic == pe_topic:
        for record in records:
            for _ in range(triage_rate.take()):
                _, value = next(triage_values)
                first.append(await producer.send(next(topic_of), key=record.key, value=value))
            for _ in range(cases_rate.take()):
                key, value = next(case_values)
                first.append(await producer.send(cases_topic, key=key, value=value))
            then += [(persons_cl, record.key, next(state_values)[1], record.partition) for _ in range(changelog_rate.take())]
        counts["person_events"] += len(records)
    elif tp.topic == cases_topic:
        then += [(cases_cl, record.key or b"", next(case_state_values)[1], record.partition)
                 for record in records for _ in range(cases_cl_rate.take())]
        counts["cases"] += len(records)
    else:
        for record in records:
            for key, value in fan_out.get(record.value, ()):
                first.append(await producer.send(pe_topic, key=key, value=value))
        counts["inputs"] += len(records)
    if first:
        await asyncio.gather(*first)
    second = [await producer.send(topic, key=key, value=value, partition=p % partitions) for topic, key, value, p in then]
    if second:
        await asyncio.gather(*second)
    counts["produced"] += len(first) + len(second)


def _create(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(**client_options(bootstrap, "kafka-python"), client_id="equivalent-ceiling")
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names], timeout_ms=30_000)
    finally:
        admin.close()


def measure_equivalent(bootstrap: str, worker_prefix: str, inputs: Sequence[tuple[str, bytes]], secret: bytes, at: datetime,
                       partitions: int, timeout_s: float = 900.0) -> dict[str, Any]:
    """The worker's Kafka operations for `inputs`, done by a raw aiokafka loop; person events per second and the counts."""
    from pipeline.errors import RejectedEvent
    from pipeline.ingest import person_event_records
    from tools.bench_worker import INPUT_KINDS, _delete_prefix

    ops = count_operations(bootstrap, worker_prefix)
    fan_out: dict[bytes, list[tuple[bytes, bytes]]] = {}
    person_events = 0
    for _, raw in inputs:
        try:
            people = person_event_records(raw, secret=secret, now=at, lookback=timedelta(days=14), source_topic="bench",
                                          received_at=at)
        except RejectedEvent:
            people = []
        fan_out[raw] = [(key.encode(), value) for key, value in people]
        person_events += len(people)
    prefix = f"ceiling-{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.{k}" for k in INPUT_KINDS] + [f"{prefix}.person-events", f"{prefix}.cases",
                                                      f"{prefix}-persons-changelog", f"{prefix}-cases-changelog"]
    topics += [f"{prefix}.triage.c{n:03d}" for n in range(max(1, ops.triage_topics))]
    try:
        _create(bootstrap, topics, partitions)
        figures = asyncio.run(_loop(bootstrap, prefix, inputs, fan_out, ops, person_events, partitions, timeout_s))
    finally:
        _delete_prefix(bootstrap, prefix)
    seconds = figures["seconds"]
    return {
        "equivalent_ceiling_person_events_per_s": round(person_events / seconds, 1) if seconds > 0 else 0.0,
        "equivalent_ceiling_s": seconds,
        "equivalent_operations_per_person_event": ops.per_person_event(len(inputs), person_events),
        "equivalent_operations": {k: v for k, v in asdict(ops).items() if k != "samples"},
        "equivalent_loop": figures,
    }
