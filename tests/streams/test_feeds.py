"""The batch feed of the hot topics: batches in arrival order, fetching paused while it is full and
resumed once it has room, nothing taken while flow is stopped, cleared around a rebalance, every
taken record acknowledged once its batch is done, and the partitions it holds reported in flight."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from faust.types import TP, Message
from mode.utils.queues import FlowControlEvent

from streams.feeds import Feed


@dataclass
class _Consumer:
    full: list[TP] = field(default_factory=list)
    dropped: list[TP] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)

    def on_buffer_full(self, tp: TP) -> None:
        self.full.append(tp)

    def on_buffer_drop(self, tp: TP) -> None:
        self.dropped.append(tp)

    def ack(self, message: Message) -> bool:
        message.acked = True
        self.acked.append(message.offset)
        return True


@dataclass
class _App:
    consumer: _Consumer = field(default_factory=_Consumer)
    flow_control: FlowControlEvent = field(default_factory=lambda: FlowControlEvent(initially_suspended=False))


def _message(offset: int, partition: int = 0, topic: str = "in") -> Message:
    return Message(topic, partition, offset, 0.0, 0, None, b"k", b"v", None, tp=TP(topic, partition))


def test_batches_come_in_arrival_order_and_are_acknowledged_when_done() -> None:
    async def run() -> None:
        app = _App()
        feed = Feed(app, ["in"], maxsize=100)
        for offset in range(10):
            feed.put(_message(offset))
        first = await feed.take(4, within=0.0)
        second = await feed.take(100, within=0.0)
        assert [m.offset for m in first] == [0, 1, 2, 3]
        assert [m.offset for m in second] == [4, 5, 6, 7, 8, 9]
        assert feed.partitions_in_flight() == {TP("in", 0)}
        feed.done(first)
        feed.done(second)
        assert app.consumer.acked == list(range(10))
        assert feed.partitions_in_flight() == set()

    asyncio.run(run())


def test_a_full_feed_pauses_its_partitions_and_resumes_them_at_half() -> None:
    async def run() -> None:
        app = _App()
        feed = Feed(app, ["in"], maxsize=4)
        for offset in range(6):
            feed.put(_message(offset, partition=offset % 2))
        assert set(app.consumer.full) == {TP("in", 0), TP("in", 1)}
        assert app.consumer.dropped == []
        await feed.take(3, within=0.0)
        assert app.consumer.dropped == []  # 3 still waiting: more than half of 4
        await feed.take(1, within=0.0)
        assert set(app.consumer.dropped) == {TP("in", 0), TP("in", 1)}

    asyncio.run(run())


def test_nothing_is_taken_while_flow_is_stopped_and_a_clear_drops_what_waits() -> None:
    async def run() -> None:
        app = _App()
        feed = Feed(app, ["in"], maxsize=100)
        feed.put(_message(0))
        app.flow_control.suspend()
        taker = asyncio.ensure_future(feed.take(10, within=0.0))
        await asyncio.sleep(0.05)
        assert not taker.done()
        app.flow_control.resume()  # a rebalance ends: queues are cleared, the consumer reads from the commit again
        await asyncio.sleep(0.05)
        assert not taker.done() and len(feed) == 0
        feed.put(_message(0))
        assert [m.offset for m in await asyncio.wait_for(taker, 1.0)] == [0]

    asyncio.run(run())


@pytest.mark.parametrize("within", [0.0, 0.02])
def test_a_first_record_waits_at_most_within_for_company(within: float) -> None:
    async def run() -> None:
        app = _App()
        feed = Feed(app, ["in"], maxsize=100)
        taker = asyncio.ensure_future(feed.take(10, within=within))
        await asyncio.sleep(0)
        feed.put(_message(0))
        feed.put(_message(1))
        batch = await asyncio.wait_for(taker, 1.0)
        assert [m.offset for m in batch] == [0, 1]

    asyncio.run(run())


def test_a_batch_the_broker_failed_is_handled_again_before_it_is_acknowledged() -> None:
    from aiokafka.errors import KafkaConnectionError, RequestTimedOutError

    from streams.agents import _process

    async def run() -> None:
        app = _App()
        feed = Feed(app, ["in"], maxsize=100)
        for offset in range(3):
            feed.put(_message(offset))
        failures = [KafkaConnectionError("down"), RequestTimedOutError()]
        seen: list[tuple[list[int], list[int]]] = []

        async def handle(batch: list[Message]) -> None:
            seen.append(([m.offset for m in batch], list(app.consumer.acked)))
            if failures:
                raise failures.pop(0)

        processor = asyncio.ensure_future(_process(feed, handle, "test"))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if app.consumer.acked:
                break
        processor.cancel()
        assert seen == [([0, 1, 2], [])] * 3  # nothing acknowledged before the third attempt went through
        assert app.consumer.acked == [0, 1, 2]

    asyncio.run(run())


def test_a_batch_that_fails_for_its_own_sake_is_logged_and_acknowledged(caplog: pytest.LogCaptureFixture) -> None:
    from streams.agents import _process

    async def run() -> None:
        app = _App()
        feed = Feed(app, ["in"], maxsize=100)
        feed.put(_message(7))
        attempts = []

        async def handle(batch: list[Message]) -> None:
            attempts.append(len(batch))
            raise ValueError("a defect")

        processor = asyncio.ensure_future(_process(feed, handle, "test"))
        for _ in range(40):
            await asyncio.sleep(0.05)
            if app.consumer.acked:
                break
        processor.cancel()
        assert attempts == [1]
        assert app.consumer.acked == [7]

    asyncio.run(run())
    assert "test failed topic=in partition=0 offset=7 batch=1" in caplog.text


def test_a_rebalance_can_wait_for_the_batches_in_flight() -> None:
    async def run() -> None:
        app = _App()
        feed = Feed(app, ["in"], maxsize=100)
        assert await feed.wait_idle(0.01)
        feed.put(_message(0))
        feed.put(_message(1))
        batch = await feed.take(1, within=0.0)
        assert not await feed.wait_idle(0.01)
        waiter = asyncio.ensure_future(feed.wait_idle(1.0))
        await asyncio.sleep(0)
        feed.done(batch)
        assert await waiter
        abandoned = await feed.take(1, within=0.0)
        assert not await feed.wait_idle(0.01)
        feed.abandon(abandoned)  # a stopped processor: not acknowledged, read again after a restart
        assert await feed.wait_idle(0.01)
        assert app.consumer.acked == [0]

    asyncio.run(run())
