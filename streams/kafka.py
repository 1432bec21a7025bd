"""The `kafka://` transport: Faust's aiokafka driver with its offset bookkeeping made to hold across rebalances.

Faust commits a partition's offset only up to the first record that was never acked. Around a
rebalance (a worker killed, restarted, or too slow to heartbeat) records can go missing inside
Faust's pipeline: fetched under the old assignment and stamped with the new generation, cleared from
a queue, or skipped by the stream. The group's offset then stops below them for good although the
worker is idle. Four corrections:

- Offsets skipped between two delivered records are not counted as processed (Faust does that for
  transaction markers, which our topics do not have): the partition is read again from its committed
  offset. Recovery seeks every partition while the first batch is still being handed out, so the
  rest of that batch jumps ahead of the sought offset; Faust then committed past records it never saw.
  Nor does a commit pass a committed record that was never acked (Faust lets exactly one through).
- Records of a fetch that saw the group's generation change are read again from their partition's
  committed offset, instead of passing off as current (changelogs being recovered are left alone);
  records left undelivered for any other reason (flow stopped, partition paused) are read again
  from the first of them.
- A commit the broker refused (the group had rebalanced meanwhile) is not remembered as made, so
  the records read again afterwards are acked and committed again.
- A partition whose committed offset has not moved for `STUCK_AFTER_S` while records above it
  exist and none of its records is being processed is read again from its committed offset.
  Re-reading is safe: person state is idempotent by event id and triage only sends on a change.

And two for the producer: it keeps every topic it created or sent to in its metadata requests, and
it never creates a topic by sending to it (see `TopicTrackingProducer`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

__all__ = ["STUCK_AFTER_S", "Consumer", "Producer", "TopicNotDeclared", "TopicTrackingProducer", "Transport"]

log = logging.getLogger(__name__)

#: How long a partition may sit with its offset below records nobody is processing before it is re-read.
STUCK_AFTER_S = 5.0
#: How long a send waits for a topic created elsewhere (another client's declaration) to show in metadata.
TOPIC_WAIT_S = 10.0


class Consumer(faust_aiokafka.Consumer):
    """aiokafka consumer whose committed offsets keep moving across rebalances (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._broker_offsets: dict[TP, int | None] = {}
        self._unmoved: dict[TP, tuple[tuple[int, int | None, int], float]] = {}
        self._checked_at = 0.0
        #: every record handed to Faust and still referenced somewhere (queued, buffered, being processed)
        self._delivered: weakref.WeakSet[Message] = weakref.WeakSet()
        #: partitions where a delivered record skipped over offsets never delivered: first skipped offset
        self._gaps: dict[TP, int] = {}

    async def perform_seek(self) -> None:
        """Seek to the committed offsets and remember them as what the broker holds."""
        await super().perform_seek()
        self._broker_offsets.update(self._committed_offset)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's fetch loop, except that no fetched record is dropped without its partition being set back to it."""
        if self._gaps:
            await self._reread_gaps()
        await self._reread_stuck_partitions()
        generation_id = self.app.consumer_generation_id
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:
                await self.perform_seek()  # what Faust does here: read again from the committed offsets
            except Exception as exc:  # the next rebalance seeks again
                log.warning("seek to committed offsets failed: %r", exc)
            return
        undelivered: dict[TP, tuple[int, str]] = {}
        for tp, record in self.scheduler.iterate(records):
            if tp in undelivered:
                continue
            if not self.flow_active:
                undelivered[tp] = (record.offset, "flow stopped")
            elif self.app.consumer_generation_id != generation_id and self._rereadable(tp):
                undelivered[tp] = (record.offset, "generation changed")
            elif not (active_partitions is None or tp in active_partitions or tp in self._buffered_partitions):
                undelivered[tp] = (record.offset, "partition inactive")
            else:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                message = self._to_message(tp, record)
                self._delivered.add(message)
                yield tp, message
        if undelivered:
            await self._read_again(undelivered, generation_id)

    async def _read_again(self, undelivered: Mapping[TP, tuple[int, str]], generation_id: int) -> None:
        """Set each partition back to its first undelivered record: the aiokafka position is already past it, and
        Faust counts offsets it never saw as done once a later one arrives. After a generation change the
        records delivered before it may be dropped by the streams, so those partitions go back to their commit."""
        targets: dict[TP, int] = {}
        for tp, (offset, reason) in undelivered.items():
            target = self._committed_offset.get(tp) if reason == "generation changed" else offset
            if target is not None:
                targets[tp] = target
            log.info("fetched records not delivered topic=%s partition=%s from=%s reason=%s generation=%s->%s "
                     "reading again from=%s", tp.topic, tp.partition, offset, reason, generation_id,
                     self.app.consumer_generation_id, target)
        await self._seek_assigned(targets)

    async def _seek_assigned(self, targets: Mapping[TP, int]) -> None:
        """Seek those partitions still assigned; one lost meanwhile is left to its next owner, who starts from the commit."""
        assigned = self.assignment()
        targets = {tp: offset for tp, offset in targets.items() if tp in assigned}
        if not targets:
            return
        try:
            await self.seek_wait(targets)
        except Exception as exc:
            log.warning("seek back failed %s: %r", targets, exc)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust counts offsets skipped between two delivered records as processed (meant for transaction
        markers). Our acked topics have none: a gap means records were fetched and never delivered (a
        batch handed out across a seek, a cleared queue), so the partition is read again instead."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            await super()._add_gap(tp, offset_from, offset_to)
            return
        log.warning("offset gap topic=%s partition=%s offsets=%s..%s never delivered: reading again from the committed offset",
                    tp.topic, tp.partition, offset_from, offset_to - 1)
        self._gaps.setdefault(tp, offset_from)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's next offset to commit, but never while the committed record itself was not acked
        (Faust lets one missing record through: it compares the lowest acked offset with `committed + 1`)."""
        acked = self._acked.get(tp)
        committed = self._committed_offset.get(tp)
        if acked and committed is not None and min(acked) > committed:
            return None
        return super()._new_offset(tp)

    async def _reread_gaps(self) -> None:
        """Seek the partitions where a gap was seen back to their committed offset, or to the gap before the
        first commit (duplicates are harmless)."""
        gaps, self._gaps = self._gaps, {}
        await self._seek_assigned({tp: first if self._committed_offset.get(tp) is None else self._committed_offset[tp]
                                   for tp, first in gaps.items()})

    def _rereadable(self, tp: TP) -> bool:
        """Records we ack and commit, with a committed offset to go back to (changelogs under recovery are not)."""
        return self.app.topics.acks_enabled_for(tp.topic) and self._committed_offset.get(tp) is not None

    async def _reread_stuck_partitions(self) -> None:
        """Seek partitions whose offset cannot move although nothing of theirs is in flight (at most once a second)."""
        now = time.monotonic()
        if not self.flow_active or now - self._checked_at < 1.0:
            return
        self._checked_at = now
        stuck = self.stuck_partitions(now)
        if stuck:
            for tp, offset in stuck.items():
                log.warning("re-reading topic=%s partition=%s from offset=%s: its committed offset has not moved for "
                            "%.0f s with records above it and none in flight", tp.topic, tp.partition, offset, STUCK_AFTER_S)
                self._unmoved.pop(tp, None)
            await self.seek_wait(stuck)

    def stuck_partitions(self, now: float) -> dict[TP, int]:
        """Assigned, acked partitions whose committed offset is below the end, unchanged for `STUCK_AFTER_S`, idle."""
        in_flight = {message.tp for message in list(self._delivered) if not message.acked}
        stuck: dict[TP, int] = {}
        for tp in self.assignment():
            committed = self._committed_offset.get(tp)
            end = self.highwater(tp) if self.app.topics.acks_enabled_for(tp.topic) else None  # log end: last + 1
            acked = self._acked.get(tp) or ()
            if (committed is None or end is None or committed >= end or tp in in_flight
                    or tp in self._paused_partitions or (acked and min(acked) <= committed)):
                self._unmoved.pop(tp, None)
                continue
            seen = (committed, self._read_offset.get(tp), len(acked))
            since = self._unmoved.get(tp)
            if since is None or since[0] != seen:
                self._unmoved[tp] = (seen, now)
            elif now - since[1] >= STUCK_AFTER_S:
                stuck[tp] = committed
        return stuck

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._broker_offsets.pop(tp, None)
            self._unmoved.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        did_commit = await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
        if did_commit:
            self._broker_offsets.update({tp: offset for tp, offset in offsets.items() if tp in self._broker_offsets})
            return True
        for tp, offset in offsets.items():
            if self._committed_offset.get(tp) == offset:
                held = self._broker_offsets.get(tp)
                log.warning("commit refused topic=%s partition=%s offset=%s; broker holds %s, records above it are committed again",
                            tp.topic, tp.partition, offset, held)
                self._committed_offset[tp] = held
        return False


def track_topic(client: Any, topic: str) -> None:
    """Have `client` ask for `topic` in every metadata refresh from now on (no refresh is forced)."""
    client._topics.add(topic)


class TopicNotDeclared(KafkaError):
    """A send to a topic that does not exist: only a declaration may create it."""


class TopicTrackingProducer(AIOKafkaProducer):
    """aiokafka producer that keeps every topic it sends to in its metadata requests, and refuses a
    send to a topic that does not exist yet.

    aiokafka asks for all topics while its tracked set is empty and tracks a topic only when a send
    finds it missing from metadata. A send to a topic created after the last all-topics refresh then
    narrows every later refresh to that one topic: the others drop out of metadata, and a batch
    already queued for one of them has no leader, so the sender refreshes metadata in a tight loop
    until the batch expires (20 minutes under Faust) while the agent waits for that delivery.

    A metadata request naming a missing topic makes a broker with `auto.create.topics.enable` create
    it with its default partition count, which breaks co-partitioning; so a topic is named in one
    only once it was declared here or an all-topics request (which creates nothing) lists it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._existing: set[str] = set()

    def declared(self, topic: str) -> None:
        """`topic` was created (or found) by a declaration: sends to it need no check."""
        self._existing.add(topic)

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        if topic not in self._existing:
            await self._require_existing(topic)
        track_topic(self.client, topic)
        return await super().send(topic, *args, **kwargs)

    async def _require_existing(self, topic: str) -> None:
        """Return once an all-topics metadata request lists `topic`; a topic just declared by another
        client (the control readers' admin client) can take a moment to show there."""
        deadline = time.monotonic() + TOPIC_WAIT_S
        while self.client.cluster.partitions_for_topic(topic) is None:
            cluster = await self.client.fetch_all_metadata()
            if topic in cluster.topics(exclude_internal_topics=False):
                break
            if time.monotonic() >= deadline:
                raise TopicNotDeclared(
                    f"topic {topic!r} does not exist: declare it first (a send creates no topic, "
                    "so none gets the broker's default partition count)"
                )
            await asyncio.sleep(0.2)
        self._existing.add(topic)


class Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer on `TopicTrackingProducer`; a topic it created is tracked from then on.

    Only once it exists: a metadata request may auto-create the topics it names (with the broker's
    default partition count) where the broker allows that."""

    @property
    def _producer_type(self) -> type[AIOKafkaProducer]:
        return TopicTrackingProducer

    async def create_topic(self, topic: str, *args: Any, **kwargs: Any) -> None:
        await super().create_topic(topic, *args, **kwargs)
        if self._producer is not None:
            track_topic(self._producer.client, topic)
            self._producer.declared(topic)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the consumer and producer above."""

    Consumer = Consumer
    Producer = Producer
