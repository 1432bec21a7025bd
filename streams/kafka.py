"""The `kafka://` transport: Faust's aiokafka driver with its offset bookkeeping made to hold across rebalances.

Faust commits a partition's offset only up to the first record that was never acked. Around a
rebalance (a worker killed, restarted, or too slow to heartbeat) records can go missing inside
Faust's pipeline: fetched under the old assignment and stamped with the new generation, cleared from
a queue, or skipped by the stream. The group's offset then stops below them for good although the
worker is idle. Three corrections:

- Records of a fetch that saw the group's generation change are read again from their partition's
  committed offset, instead of passing off as current (changelogs being recovered are left alone).
- A commit the broker refused (the group had rebalanced meanwhile) is not remembered as made, so
  the records read again afterwards are acked and committed again.
- A partition whose committed offset has not moved for `STUCK_AFTER_S` while records above it
  exist and none of its records is being processed is read again from its committed offset.
  Re-reading is safe: person state is idempotent by event id and triage only sends on a change.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

__all__ = ["STUCK_AFTER_S", "Consumer", "Transport"]

log = logging.getLogger(__name__)

#: How long a partition may sit with its offset below records nobody is processing before it is re-read.
STUCK_AFTER_S = 5.0


class Consumer(faust_aiokafka.Consumer):
    """aiokafka consumer whose committed offsets keep moving across rebalances (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._broker_offsets: dict[TP, int | None] = {}
        self._unmoved: dict[TP, tuple[tuple[int, int | None, int], float]] = {}
        self._checked_at = 0.0
        #: every record handed to Faust and still referenced somewhere (queued, buffered, being processed)
        self._delivered: weakref.WeakSet[Message] = weakref.WeakSet()

    async def perform_seek(self) -> None:
        """Seek to the committed offsets and remember them as what the broker holds."""
        await super().perform_seek()
        self._broker_offsets.update(self._committed_offset)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's fetch loop, except that records of a fetch that saw the generation change are re-read."""
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
        stale: dict[TP, int] = {}
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active:
                break
            if tp in stale or (self.app.consumer_generation_id != generation_id and self._rereadable(tp)):
                stale.setdefault(tp, self._committed_offset[tp])
                continue
            if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                message = self._to_message(tp, record)
                self._delivered.add(message)
                yield tp, message
        if stale:
            log.info("fetch started in generation %s, the group is now in %s: re-reading %s",
                     generation_id, self.app.consumer_generation_id, stale)
            await self.seek_wait(stale)

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


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the consumer above."""

    Consumer = Consumer
