"""The kafka:// consumer's commit bookkeeping: a commit the broker refused is not remembered as made.

Faust's own consumer records the offset whatever the broker answered; after a rebalance that returns
the partition to the same worker, the re-read records then sit below that offset, are never acked,
and the group's committed offset stays behind for good. No broker is needed: the commit call itself
is replaced, everything around it is Faust's.
"""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from faust.types import TP

from pipeline.settings import load_settings
from streams.app import build_app
from streams.kafka import Consumer

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
