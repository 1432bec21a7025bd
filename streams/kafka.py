"""The `kafka://` transport: Faust's aiokafka driver with its offset bookkeeping made to hold across rebalances.

Two corrections, both about a rebalance that happens while records are on their way:

Records fetched before a rebalance can reach the worker after it; Faust stamps them with the *new*
generation, so they pass as current. Their offsets then disagree with the position the new
assignment seeked to: Faust either counts the records in between as a gap that needs no processing
(they are committed unprocessed, so lost) or drops the re-read ones as already seen (the group's
offset then never moves past them). Here a fetch belongs to the generation that was current when
it started, and is discarded whole when that generation is gone; the records are fetched again
from the committed position.

Faust also records an offset as committed even when the broker refused the commit because the group had
rebalanced meanwhile. When that happens after the partition came back to the same worker, Faust's
memory says "committed up to N" while the broker still has an older offset: the re-read records are
then never acked (they sit below N), nothing newer arrives, and the group's offset stays behind for
good although every record was processed. Here a refused commit restores what the broker is known to
hold (the offset read at the last assignment, or our last commit that went through), so the re-read
records are acked and committed again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

__all__ = ["Consumer", "Transport"]

log = logging.getLogger(__name__)


class Consumer(faust_aiokafka.Consumer):
    """aiokafka consumer whose idea of the committed offset only moves when the broker took the commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._broker_offsets: dict[TP, int | None] = {}

    async def perform_seek(self) -> None:
        """Seek to the committed offsets and remember them as what the broker holds."""
        await super().perform_seek()
        self._broker_offsets.update(self._committed_offset)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's fetch loop, except that a fetch which saw the generation change is discarded and re-read."""
        generation_id = self.app.consumer_generation_id
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            await self._seek_to_committed("fetch returned while flow was stopped")
            return
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active:
                break
            if self.app.consumer_generation_id != generation_id:
                await self._seek_to_committed(f"fetch started in generation {generation_id}, "
                                              f"the group is now in {self.app.consumer_generation_id}")
                return
            if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, self._to_message(tp, record)

    async def _seek_to_committed(self, why: str) -> None:
        """Drop what was fetched and read again from the committed offsets (re-reading is idempotent)."""
        log.info("re-reading from committed offsets: %s", why)
        try:
            await self.perform_seek()
        except Exception as exc:  # the next rebalance seeks again
            log.warning("seek to committed offsets failed: %r", exc)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._broker_offsets.pop(tp, None)
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
