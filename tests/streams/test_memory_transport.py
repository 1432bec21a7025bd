"""The memory:// transport: broker rules, and a small Faust app held to one behaviour on memory:// and Kafka."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import aiohttp
import faust
import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from streams import memory
from streams.memory import (
    ExactlyOnceUnsupported,
    MemoryBroker,
    PartitionOutOfRange,
    TopicPartitionsMismatch,
    UnknownTopic,
    drop_broker,
    get_broker,
    key_partition,
    murmur2,
)
from tests.streams.small_app import (
    PARTITIONS,
    SmallApp,
    build_small_app,
    regroup_key,
    running,
    wait_for,
    wait_ready,
)
from tools.ports import free_port


def kafka_partition(key: bytes, partitions: int = PARTITIONS) -> int:
    """The partition Kafka's default partitioner (kafka-python's murmur2) gives ``key``."""
    return (kafka_murmur2(key) & 0x7FFFFFFF) % partitions


async def send_all(small: SmallApp, records: list[tuple[bytes, bytes]]) -> None:
    for key, value in records:
        await small.source.send(key=key, value=value)


async def committed_offsets(app: faust.App) -> dict[TP, int]:
    """Offsets the broker holds as committed for the app's group (read from the broker, not the app)."""
    if isinstance(app.consumer, memory.Consumer):
        return app.consumer.broker.committed_offsets(app.conf.id)
    from kafka import KafkaAdminClient

    bootstrap = f"{app.conf.broker[0].host}:{app.conf.broker[0].port}"

    def read() -> dict[TP, int]:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="epiflow-tests-offsets")
        try:
            offsets = admin.list_group_offsets({app.conf.id: None})[app.conf.id]
        finally:
            admin.close()
        return {TP(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    return await asyncio.to_thread(read)


# --- the in-process broker ----------------------------------------------------------------------


@given(st.binary(max_size=64))
def test_murmur2_matches_kafka(data: bytes) -> None:
    assert murmur2(data) == kafka_murmur2(data)


@pytest.mark.parametrize("partitions", [1, 3, 8, 100])
def test_key_partition_is_kafkas_default_partitioner(partitions: int) -> None:
    keys = [f"person-{i}".encode() for i in range(200)]
    assert [key_partition(k, partitions) for k in keys] == [kafka_partition(k, partitions) for k in keys]


def test_key_partition_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="got int: 5"):
        key_partition(5, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 0"):
        key_partition(b"k", 0)


def test_create_topic_is_idempotent_and_refuses_another_count() -> None:
    broker = MemoryBroker("t")
    assert broker.create_topic("a", 3) is True
    assert broker.create_topic("a", 3) is False
    with pytest.raises(TopicPartitionsMismatch, match="exists with 3 partitions, cannot create it with 5"):
        broker.create_topic("a", 5)
    assert broker.partition_count("a") == 3


@pytest.mark.parametrize("name", ["", "x" * 250, None])
def test_create_topic_rejects_bad_names(name: Any) -> None:
    with pytest.raises(ValueError, match="topic"):
        MemoryBroker().create_topic(name, 1)


@pytest.mark.parametrize("partitions", [0, -1, 1.5, True])
def test_create_topic_rejects_bad_partition_counts(partitions: Any) -> None:
    with pytest.raises(ValueError, match=f"got {partitions!r}"):
        MemoryBroker().create_topic("a", partitions)


def test_append_assigns_consecutive_offsets_per_partition_and_keeps_fields() -> None:
    broker = MemoryBroker()
    broker.create_topic("t", 2)
    first = broker.append("t", b"k", b"v1", partition=1, headers={"h": b"1"}, timestamp=1_700_000_000.25)
    second = broker.append("t", b"k", b"v2", partition=1)
    other = broker.append("t", None, b"v3", partition=0)
    assert (first.offset, second.offset, other.offset) == (0, 1, 0)
    assert first.topic_partition == TP("t", 1)
    records = broker.records("t", 1)
    assert [r.value for r in records] == [b"v1", b"v2"]
    assert records[0].headers == (("h", b"1"),)
    assert records[0].timestamp == 1_700_000_000_250
    assert broker.end_offsets("t") == {0: 1, 1: 2}
    assert [r.offset for r in broker.records("t", 1, start=1)] == [1]


def test_append_routes_keys_like_kafka_and_spreads_keyless_records() -> None:
    broker = MemoryBroker()
    broker.create_topic("t", 4)
    for i in range(20):
        meta = broker.append("t", f"k{i}".encode(), b"v")
        assert meta.partition == kafka_partition(f"k{i}".encode())
    keyless = {broker.append("t", None, b"v").partition for _ in range(8)}
    assert keyless == {0, 1, 2, 3}


def test_append_auto_creates_missing_topics_with_default_count() -> None:
    broker = MemoryBroker(auto_partitions=2)
    broker.append("new", b"k", b"v")
    assert broker.partition_count("new") == 2


def test_append_rejects_unknown_partitions_and_non_bytes() -> None:
    broker = MemoryBroker()
    broker.create_topic("t", 2)
    with pytest.raises(PartitionOutOfRange, match="partition 2 of topic 't'"):
        broker.append("t", b"k", b"v", partition=2)
    with pytest.raises(TypeError, match="value must be bytes"):
        broker.append("t", b"k", "text")  # type: ignore[arg-type]
    with pytest.raises(UnknownTopic, match="'nope'"):
        broker.records("nope", 0)


def test_commits_are_per_group_and_partition() -> None:
    broker = MemoryBroker()
    broker.create_topic("t", 2)
    broker.commit("g1", {TP("t", 0): 5})
    broker.commit("g1", {TP("t", 1): 2})
    broker.commit("g2", {TP("t", 0): 1})
    assert broker.committed("g1", TP("t", 0)) == 5
    assert broker.committed_offsets("g1") == {TP("t", 0): 5, TP("t", 1): 2}
    assert broker.committed("g2", TP("t", 1)) is None
    with pytest.raises(ValueError, match="got -1"):
        broker.commit("g1", {TP("t", 0): -1})


def test_get_broker_is_one_per_url_and_drop_broker_forgets_it() -> None:
    broker = get_broker("memory://test-registry")
    assert get_broker("memory://test-registry") is broker
    assert get_broker("memory://test-registry-other") is not broker
    assert get_broker("memory://") is get_broker()
    broker.create_topic("t", 1)
    drop_broker("memory://test-registry")
    drop_broker("memory://test-registry-other")
    assert get_broker("memory://test-registry").topics() == []
    drop_broker("memory://test-registry")


def test_broker_url_sets_auto_created_partition_count() -> None:
    broker = get_broker("memory://test-auto?partitions=6")
    try:
        assert broker.ensure_topic("x") == 6
    finally:
        drop_broker("memory://test-auto")
    with pytest.raises(ValueError, match="got 'zero'"):
        get_broker("memory://bad?partitions=zero")
    with pytest.raises(ValueError, match="memory://"):
        get_broker("kafka://localhost:9092")


def test_append_wakes_registered_waiters() -> None:
    broker = MemoryBroker()
    woken: list[TP] = []
    broker.create_topic("t", 2)
    broker.add_waiter(woken.append)
    broker.append("t", b"k", b"v", partition=1)
    broker.remove_waiter(woken.append)
    broker.append("t", b"k", b"v", partition=0)
    assert woken == [TP("t", 1)]


# --- the same small app on memory:// and Kafka --------------------------------------------------


def test_agents_consume_in_order_per_partition(broker_url: str, app_id: str, run_async: Any) -> None:
    small = build_small_app(broker_url, app_id)
    records = [(f"k{i % 6}".encode(), f"k{i % 6}:{i}".encode()) for i in range(60)]

    async def body(small: SmallApp) -> None:
        await send_all(small, records)
        await wait_for(lambda: len(small.seen) >= len(records), what="60 records seen")

    run_async(running(small, body))
    assert len(small.seen) == len(records)
    by_partition: dict[int, list[int]] = defaultdict(list)
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for partition, offset, key, value in small.seen:
        by_partition[partition].append(offset)
        by_key[key].append(value)
        assert partition == kafka_partition(key)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))
    for key, values in by_key.items():
        assert values == [v for k, v in records if k == key]


def test_group_by_repartition_delivers_every_record_once(
    broker_url: str, app_id: str, run_async: Any
) -> None:
    small = build_small_app(broker_url, app_id)
    records = [(f"src{i}".encode(), f"g{i % 5}:{i}".encode()) for i in range(40)]

    async def body(small: SmallApp) -> None:
        await send_all(small, records)
        await wait_for(lambda: len(small.regrouped) >= len(records), what="40 regrouped records")
        await asyncio.sleep(0.5)  # room for a duplicate to show up

    run_async(running(small, body))
    values = [value for _, _, value in small.regrouped]
    assert sorted(values) == sorted(v for _, v in records)
    for partition, key, value in small.regrouped:
        assert key == regroup_key(value)
        assert partition == kafka_partition(key)


def test_table_state_recovers_from_changelog_after_restart(
    broker_url: str, app_id: str, run_async: Any
) -> None:
    records = [(f"p{i % 7}".encode(), f"x:{i}".encode()) for i in range(35)]
    first = build_small_app(broker_url, app_id)

    async def fill(small: SmallApp) -> dict[str, int]:
        await send_all(small, records)
        await wait_for(lambda: sum(small.counts.values()) == len(records), what="35 counted")
        return dict(small.counts.items())

    before = run_async(running(first, fill))
    assert before == {f"p{i}": 5 for i in range(7)}

    second = build_small_app(broker_url, app_id)

    async def read(small: SmallApp) -> dict[str, int]:
        return dict(small.counts.items())

    assert run_async(running(second, read)) == before


def test_restart_resumes_after_committed_offsets(broker_url: str, app_id: str, run_async: Any) -> None:
    first = build_small_app(broker_url, app_id)
    old = [(f"k{i}".encode(), f"old:{i}".encode()) for i in range(12)]
    new = [(f"k{i}".encode(), f"new:{i}".encode()) for i in range(12)]

    async def consume_old(small: SmallApp) -> None:
        await send_all(small, old)
        await wait_for(lambda: len(small.seen) == len(old), what="old records")

    run_async(running(first, consume_old))
    second = build_small_app(broker_url, app_id)

    async def consume_new(small: SmallApp) -> None:
        await send_all(small, new)
        await wait_for(lambda: len(small.seen) >= len(new), what="new records")
        await asyncio.sleep(0.5)

    run_async(running(second, consume_new))
    assert sorted(v for *_, v in second.seen) == sorted(v for _, v in new)


def test_commit_stores_the_next_offset_to_read(broker_url: str, app_id: str, run_async: Any) -> None:
    small = build_small_app(broker_url, app_id)
    records = [(b"same-key", f"v:{i}".encode()) for i in range(9)]
    partition = kafka_partition(b"same-key")

    async def body(small: SmallApp) -> tuple[dict[TP, int], int]:
        await send_all(small, records)
        await wait_for(lambda: len(small.seen) == len(records), what="9 records")
        await commit_through(small.app, small.source_tp(partition), len(records))
        return await committed_offsets(small.app), small.app.consumer.highwater(small.source_tp(partition))

    committed, highwater = run_async(running(small, body))
    source = small.source.get_topic_name()
    assert highwater == len(records)
    assert committed[TP(source, partition)] == len(records)
    assert all(TP(source, p) not in committed for p in range(PARTITIONS) if p != partition)


def test_offsets_highwater_earliest_and_position(broker_url: str, app_id: str, run_async: Any) -> None:
    small = build_small_app(broker_url, app_id)
    records = [(b"one", f"v:{i}".encode()) for i in range(5)]
    tp = small.source_tp(kafka_partition(b"one"))

    async def body(small: SmallApp) -> tuple[Any, ...]:
        await send_all(small, records)
        await wait_for(lambda: len(small.seen) == len(records), what="5 records")
        consumer = small.app.consumer
        return (
            consumer.highwater(tp),
            await consumer.highwaters(tp),
            await consumer.earliest_offsets(tp),
            await consumer.position(tp),
        )

    highwater, highwaters, earliest, position = run_async(running(small, body))
    assert highwater == 5
    assert highwaters == {tp: 5}
    assert earliest == {tp: 0}
    assert position == 5


def test_seek_redelivers_from_the_given_offset(broker_url: str, app_id: str, run_async: Any) -> None:
    small = build_small_app(broker_url, app_id)
    records = [(b"seek-key", f"v:{i}".encode()) for i in range(6)]
    tp = small.source_tp(kafka_partition(b"seek-key"))

    async def body(small: SmallApp) -> None:
        await send_all(small, records)
        await wait_for(lambda: len(small.seen) == 6, what="6 records")
        await small.app.consumer.seek(tp, 3)
        await wait_for(lambda: len(small.seen) == 9, what="offsets 3..5 again")
        await asyncio.sleep(0.3)

    run_async(running(small, body))
    assert [offset for _, offset, _, _ in small.seen] == [0, 1, 2, 3, 4, 5, 3, 4, 5]


async def commit_through(app: faust.App, tp: TP, offset: int, timeout: float = 20.0) -> None:
    """Commit until the broker holds ``offset`` for ``tp``: the agent sees a record before Faust acks it."""
    deadline = time.monotonic() + timeout
    while (await committed_offsets(app)).get(tp) != offset:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {tp} committed at {offset}")
        await app.consumer.commit()
        await asyncio.sleep(0.05)


def test_seek_to_committed_returns_commits_and_moves_back(
    broker_url: str, app_id: str, run_async: Any
) -> None:
    small = build_small_app(broker_url, app_id)
    records = [(b"c-key", f"v:{i}".encode()) for i in range(4)]
    tp = small.source_tp(kafka_partition(b"c-key"))
    never = small.source_tp((tp.partition + 1) % PARTITIONS)

    async def body(small: SmallApp) -> tuple[Any, ...]:
        consumer = small.app.consumer
        await send_all(small, records)
        await wait_for(lambda: len(small.seen) == 4, what="4 records")
        await commit_through(small.app, tp, 4)
        consumer.pause_partitions([tp, never])
        await consumer.seek(tp, 1)
        moved = await consumer.position(tp)
        committed = await consumer.seek_to_committed()
        after = await consumer.position(tp)
        never_position = await consumer.position(never)
        consumer.resume_partitions([tp, never])
        await asyncio.sleep(0.5)
        return moved, committed, after, never_position

    moved, committed, after, never_position = run_async(running(small, body))
    assert moved == 1
    assert committed[tp] == 4
    assert committed.get(never) is None
    assert after == 4
    assert never_position == 0
    assert len(small.seen) == 4


def test_producer_and_consumer_partition_keys_alike(broker_url: str, app_id: str, run_async: Any) -> None:
    small = build_small_app(broker_url, app_id)
    keys = [f"person-{i}".encode() for i in range(50)]

    async def body(small: SmallApp) -> tuple[list[int], list[int | None]]:
        topic = small.source.get_topic_name()
        producer = [small.app.producer.key_partition(topic, k).partition for k in keys]
        consumer = [small.app.consumer.key_partition(topic, k) for k in keys]
        return producer, consumer

    producer, consumer = run_async(running(small, body))
    expected = [kafka_partition(k) for k in keys]
    assert producer == expected
    assert consumer == expected


def test_timer_and_task_run(broker_url: str, app_id: str, run_async: Any) -> None:
    small = build_small_app(broker_url, app_id)

    async def body(small: SmallApp) -> None:
        await asyncio.wait_for(small.task_ran.wait(), 10)
        await wait_for(lambda: len(small.ticks) >= 3, what="3 timer ticks")

    run_async(running(small, body))
    assert small.task_ran.is_set()
    assert len(small.ticks) >= 3


def test_web_view_answers_with_table_contents(broker_url: str, app_id: str, run_async: Any) -> None:
    port = free_port()
    small = build_small_app(broker_url, app_id, web_port=port)
    records = [(f"w{i % 3}".encode(), f"x:{i}".encode()) for i in range(9)]

    async def body(small: SmallApp) -> Any:
        await send_all(small, records)
        await wait_for(lambda: sum(small.counts.values()) == 9, what="9 counted")
        async with aiohttp.ClientSession() as session:
            await wait_for(lambda: small.app.web is not None, what="web server")
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/counts/") as response:
                        return response.status, await response.json()
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        raise AssertionError(f"web view on port {port} never answered")

    status, payload = run_async(running(small, body))
    assert status == 200
    assert payload == {"w0": 3, "w1": 3, "w2": 3}


# --- memory:// only ------------------------------------------------------------------------------


def test_exactly_once_is_refused_at_start(app_id: str, run_async: Any) -> None:
    app = faust.App(
        app_id,
        broker=f"memory://{app_id}",
        store="memory://",
        web_enabled=False,
        processing_guarantee="exactly_once",
    )

    async def start() -> None:
        try:
            await app.start()
        finally:
            await app.stop()

    with pytest.raises(ExactlyOnceUnsupported, match="exactly_once.*memory://.*at-least-once"):
        run_async(start())
    drop_broker(f"memory://{app_id}")


def test_declaring_a_topic_again_with_another_count_crashes_the_app(app_id: str, run_async: Any) -> None:
    url = f"memory://{app_id}"
    get_broker(url).create_topic(f"{app_id}-source", PARTITIONS + 1)
    small = build_small_app(url, app_id)

    async def start() -> BaseException | None:
        await small.app.start()
        try:
            await wait_for(lambda: small.app._crash_reason is not None, timeout=10, what="the app to crash")
            return small.app._crash_reason
        finally:
            await small.app.stop()

    try:
        reason = run_async(start())
        assert isinstance(reason, TopicPartitionsMismatch)
        assert f"exists with {PARTITIONS + 1} partitions, cannot create it with {PARTITIONS}" in str(reason)
        assert get_broker(url).partition_count(f"{app_id}-source") == PARTITIONS + 1
    finally:
        drop_broker(url)


def test_idle_worker_uses_almost_no_cpu(app_id: str, run_async: Any) -> None:
    url = f"memory://{app_id}"
    small = build_small_app(url, app_id, with_timer=False)

    async def body(small: SmallApp) -> float:
        await send_all(small, [(b"k", b"x:1")])
        await wait_for(lambda: len(small.seen) == 1, what="one record")
        await asyncio.sleep(1.5)  # settle: first commit, timers, web none
        wall0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.sleep(5.0)
        return (time.process_time() - cpu0) / (time.monotonic() - wall0)

    try:
        share = run_async(running(small, body))
    finally:
        drop_broker(url)
    assert share < 0.05, f"idle worker used {share:.1%} of a core"


def test_append_from_another_thread_reaches_a_waiting_consumer(app_id: str, run_async: Any) -> None:
    url = f"memory://{app_id}"
    small = build_small_app(url, app_id)
    broker = get_broker(url)

    async def body(small: SmallApp) -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(broker.append, small.source.get_topic_name(), b"k", b"x:1")
        await wait_for(lambda: len(small.seen) == 1, what="record from thread")

    try:
        run_async(running(small, body))
    finally:
        drop_broker(url)
    assert [value for *_, value in small.seen] == [b"x:1"]


def test_topic_added_after_start_is_assigned_and_consumption_goes_on(app_id: str, run_async: Any) -> None:
    url = f"memory://{app_id}"
    small = build_small_app(url, app_id)

    async def body(small: SmallApp) -> tuple[int, int, set[TP]]:
        app = small.app
        generation = app.consumer_generation_id
        late = app.topic(f"{app_id}-late", partitions=2, internal=True)
        app.topics.add(late)
        await wait_for(
            lambda: TP(f"{app_id}-late", 1) in app.consumer.assignment(), timeout=15, what="late topic"
        )
        await wait_ready(app)
        await send_all(small, [(b"after", b"x:after")])
        await wait_for(lambda: len(small.seen) == 1, what="a record after the second rebalance")
        return generation, app.consumer_generation_id, app.assignor.assigned_actives()

    try:
        before, after, actives = run_async(running(small, body))
    finally:
        drop_broker(url)
    assert after == before + 1
    assert {TP(f"{app_id}-late", 0), TP(f"{app_id}-late", 1)} <= actives
    assert [value for *_, value in small.seen] == [b"x:after"]
