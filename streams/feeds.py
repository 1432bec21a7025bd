"""Feeds: the hot topics' records handed to one processor in whole batches, below Faust's per-event streams.

A Faust stream costs a task, a queue hand-off, an event object and several sensor calls per record;
on the input and person-event topics that was most of a worker's time. A `Feed` keeps Faust's
consumer, offsets, acks and flow control (records are taken only while flow is on, dropped when a
rebalance clears the queues, acked one by one once their batch is done), and drops the rest: the
fetch loop appends each record to a list and the processor takes up to a batch at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from faust.types import TP, Message

__all__ = ["Feed", "FeedDrainMixin"]

log = logging.getLogger(__name__)


class Feed:
    """Buffered records of some topics; pauses fetching a partition while `maxsize` records are waiting."""

    def __init__(self, app: Any, topics: Iterable[str], *, maxsize: int = 8192) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.maxsize = maxsize
        self._buffer: deque[Message] = deque()
        self._ready = asyncio.Event()
        self._paused: set[TP] = set()
        #: batches taken and not yet done, by id; `_idle` is set while there are none
        self._taken: dict[int, Sequence[Message]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        app.flow_control.manage_queue(self)

    def __len__(self) -> int:
        return len(self._buffer)

    def put(self, message: Message) -> None:
        """Append a fetched record (called from the fetch loop; never waits). A fed record has one reader,
        so no reference count is kept: `done` acknowledges it to the consumer directly."""
        self._buffer.append(message)
        if not self._ready.is_set():
            self._ready.set()
        if len(self._buffer) >= self.maxsize:
            tp = TP(message.topic, message.partition)  # Faust's own TP type: the consumer asserts it
            if tp not in self._paused:
                self._paused.add(tp)
                self.app.consumer.on_buffer_full(tp)

    async def take(self, limit: int, within: float) -> list[Message]:
        """The next batch of at most `limit` records; a first record arriving on an empty feed waits up to
        `within` seconds for company. Records are taken only while flow is on (not mid-rebalance)."""
        buffer = self._buffer
        while True:
            if not buffer:
                self._ready.clear()
                await self._ready.wait()
                if within and len(buffer) < limit:
                    await asyncio.sleep(within)
            await self.app.flow_control.acquire()
            if buffer:
                break
        batch = [buffer.popleft() for _ in range(min(limit, len(buffer)))]
        self._taken[id(batch)] = batch
        self._idle.clear()
        monitor = getattr(self.app, "monitor", None)
        if monitor is not None:  # Faust's slow-stream check reads when each partition's stream last took a record
            now = time.monotonic()
            for tp in {message.tp for message in batch}:
                monitor.stream_inbound_time[tp] = now
        if self._paused and len(buffer) <= self.maxsize // 2:
            self._resume()
        return batch

    def done(self, batch: Sequence[Message]) -> None:
        """Acknowledge a processed batch: its offsets may now be committed."""
        self.abandon(batch)
        ack = self.app.consumer.ack
        for message in batch:
            ack(message)

    def abandon(self, batch: Sequence[Message]) -> None:
        """Let go of a batch without acknowledging it (its processor was stopped): it is read again after a restart."""
        self._taken.pop(id(batch), None)
        if not self._taken:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no taken batch is in progress (at most `timeout` seconds); whether it is idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def partitions_in_flight(self) -> set[TP]:
        """Partitions with a record waiting here or taken and not yet done (the consumer's stuck-partition check)."""
        in_flight = {message.tp for message in self._buffer}
        for batch in list(self._taken.values()):
            in_flight.update(message.tp for message in batch if not message.acked)
        return in_flight

    def clear(self) -> None:
        """Drop what is waiting (flow control calls this around a rebalance; the consumer reads it again)."""
        if self._buffer:
            log.info("feed cleared topics=%s records=%d", ",".join(sorted(self.topics)), len(self._buffer))
        self._buffer.clear()
        self._resume()

    def _resume(self) -> None:
        consumer = self.app.consumer
        for tp in self._paused:
            consumer.on_buffer_drop(tp)
        self._paused.clear()


class FeedDrainMixin:
    """Faust's fetch loop (`Consumer._drain_messages`), handing records of a fed topic straight to its `Feed`.

    Faust's loop awaits `wait_first(callback(message), suspend_flow.wait())` per record: a task and a
    wait per record. A fed record takes a list append; every other record goes Faust's way.
    """

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised by every worker test
        consumer: Any = self
        feeds: dict[str, Feed] = {topic: feed for feed in getattr(consumer.app, "feeds", ()) for topic in feed.topics}
        callback = consumer.callback
        getmany = consumer.getmany
        consumer_should_stop = consumer._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = consumer._read_offset.__getitem__
        set_read_offset = consumer._read_offset.__setitem__
        commit_every = consumer._commit_every
        acks_enabled_for = consumer.app.topics.acks_enabled_for
        feed_for = feeds.get
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                records = getmany(timeout=1.0)
                await asyncio.sleep(0)
                if consumer.should_stop:
                    continue
                async for tp, message in records:
                    since_yield += 1
                    if since_yield > 100:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue
                    if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                        await consumer._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and consumer._n_acked >= commit_every:
                        consumer._n_acked = 0
                        await consumer.commit()
                    feed = feed_for(tp.topic)
                    if feed is not None:
                        feed.put(message)
                    else:
                        await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
                    set_read_offset(tp, offset)
        except consumer.consumer_stopped_errors:
            if consumer.transport.app.should_stop:
                log.info("broker stopped consumer, shutting down")
                return
            raise
        except asyncio.CancelledError:
            if consumer.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            log.exception("fetch loop failed: %r", exc)
            raise
