"""The `kafka://` transport: Faust's aiokafka driver with its commit bookkeeping made to hold across rebalances.

Faust records an offset as committed even when the broker refused the commit because the group had
rebalanced meanwhile. When that happens after the partition came back to the same worker, Faust's
memory says "committed up to N" while the broker still has an older offset: the re-read records are
then never acked (they sit below N), nothing newer arrives, and the group's offset stays behind for
good although every record was processed. Here a refused commit restores what the broker is known to
hold (the offset read at the last assignment, or our last commit that went through), so the re-read
records are acked and committed again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

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
