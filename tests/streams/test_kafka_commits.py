"""The kafka:// consumer's offset bookkeeping (`streams/kafka.py`), without a broker.

A commit the broker refused is not remembered as made (Faust's own consumer records the offset
whatever the broker answered, and the group's offset then stays behind for good), and a partition
whose offset cannot move although none of its records is being processed is found and re-read.
Offsets skipped between delivered records are read again rather than counted as processed, and
no commit passes a committed record that was never acked.
The broker calls are replaced; everything around them is Faust's.
"""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from faust.types import TP, Message

from pipeline.settings import load_settings
from streams.app import build_app
from streams.kafka import STUCK_AFTER_S, Consumer

pytestmark = pytest.mark.timeout(60)

PARTITION = TP("t.declarations", 2)


def _consumer(broker_answer: bool) -> Consumer:
    settings = load_settings(broker="kafka://127.0.0.1:1", insecure_demo_secret=True)
    app = build_app(settings, web_enabled=False)
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    consumer.assignment = lambda: {PARTITION}  # type: ignore[method-assign]
    consumer._commit = mock.AsyncMock(return_value=broker_answer)  # type: ignore[method-assign]
    app.producer.flush = mock.AsyncMock()  # type: ignore[method-assign]
    consumer._committed_offset[PARTITION] = 135
    consumer._broker_offsets[PARTITION] = 135
    return consumer


def _ack(consumer: Consumer, offsets: range) -> None:
    consumer._acked[PARTITION].extend(offsets)
    consumer._acked_index[PARTITION].update(offsets)


def test_a_refused_commit_leaves_the_broker_offset_as_committed_and_reread_records_commit_again() -> None:
    consumer = _consumer(broker_answer=False)
    _ack(consumer, range(135, 605))
    assert asyncio.run(consumer.commit()) is False
    assert consumer._committed_offset[PARTITION] == 135
    consumer._commit.return_value = True
    _ack(consumer, range(135, 605))  # the same records, read again after the rebalance
    assert asyncio.run(consumer.commit()) is True
    consumer._commit.assert_awaited_with({PARTITION: 605})
    assert consumer._committed_offset[PARTITION] == 605
    assert consumer._broker_offsets[PARTITION] == 605


def test_an_accepted_commit_moves_both_offsets() -> None:
    consumer = _consumer(broker_answer=True)
    _ack(consumer, range(135, 200))
    assert asyncio.run(consumer.commit()) is True
    assert consumer._committed_offset[PARTITION] == 200
    assert consumer._broker_offsets[PARTITION] == 200


def _idle_partition(consumer: Consumer, end: int = 741) -> None:
    """Committed 135, records 135..136 never acked, 137..end-1 acked, nothing being processed."""
    consumer.highwater = lambda tp: end  # type: ignore[method-assign]
    consumer.app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
    consumer._read_offset[PARTITION] = end - 1
    _ack(consumer, range(137, end))


def test_a_partition_idle_below_records_nobody_processes_is_found_after_the_delay() -> None:
    consumer = _consumer(broker_answer=True)
    _idle_partition(consumer)
    assert consumer.stuck_partitions(100.0) == {}
    assert consumer.stuck_partitions(100.0 + STUCK_AFTER_S - 0.1) == {}
    assert consumer.stuck_partitions(100.0 + STUCK_AFTER_S) == {PARTITION: 135}


def test_a_partition_with_a_record_in_flight_or_caught_up_or_moving_is_not_stuck() -> None:
    consumer = _consumer(broker_answer=True)
    _idle_partition(consumer)
    queued = Message(PARTITION.topic, PARTITION.partition, 135, 0.0, 0, {}, None, b"{}", None, tp=PARTITION)
    consumer._delivered.add(queued)
    consumer.stuck_partitions(100.0)
    assert consumer.stuck_partitions(200.0) == {}
    queued.acked = True
    consumer.stuck_partitions(300.0)
    _ack(consumer, [741])  # moving: the timer starts again
    assert consumer.stuck_partitions(300.0 + STUCK_AFTER_S) == {}

    caught_up = _consumer(broker_answer=True)
    _idle_partition(caught_up, end=135)
    caught_up.stuck_partitions(100.0)
    assert caught_up.stuck_partitions(200.0) == {}


def test_a_gap_between_delivered_records_is_read_again_not_counted_as_processed() -> None:
    consumer = _consumer(broker_answer=True)
    consumer.app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
    consumer.seek_wait = mock.AsyncMock()  # type: ignore[method-assign]
    asyncio.run(consumer._add_gap(PARTITION, 136, 240))  # 136..239 fetched, never delivered; 240 delivered
    _ack(consumer, [135, 240, 241])
    assert asyncio.run(consumer.commit()) is True
    consumer._commit.assert_awaited_with({PARTITION: 136})  # not 242: 136..239 were never processed
    asyncio.run(consumer._reread_gaps())
    consumer.seek_wait.assert_awaited_once_with({PARTITION: 136})
    assert consumer._gaps == {}


def test_no_commit_passes_an_unacked_committed_record() -> None:
    consumer = _consumer(broker_answer=True)
    _ack(consumer, range(136, 200))  # 135, the committed (next) record, was never acked
    assert asyncio.run(consumer.commit()) is False
    consumer._commit.assert_not_awaited()
    assert consumer._committed_offset[PARTITION] == 135
