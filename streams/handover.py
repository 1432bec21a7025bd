"""Partitions handed over cleanly: no batch writes to a partition after its next owner has taken it.

A rebalance revokes every partition of the group. Before the revocation returns, the batches this
worker is handling finish (their outputs, changelog records and acknowledgements), so the next owner
recovers the table with them in it and starts from offsets that hold them. Records fetched before the
rebalance but not yet handled (a batch being gathered) are abandoned: left unacknowledged, for whoever
owns their partition afterwards to read again from the committed offset; a batch does not start while
the group is between a revocation and its new assignment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

__all__ = ["Handover"]

log = logging.getLogger(__name__)


class Handover:
    """A worker's batches in flight, and the gate a rebalance closes on them."""

    def __init__(self, app: faust.App, wait_s: float) -> None:
        self.app = app
        #: longest a revocation waits for the batches in flight (seconds): below the group's session timeout
        self.wait_s = wait_s
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._assigned = asyncio.Event()
        self._assigned.set()
        self.abandoned = 0
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)

    async def admitted(self, events: Sequence[Any]) -> list[Any]:
        """The events of a batch that may be handled now: those fetched under the group's current assignment.

        Waits while the group rebalances. An event fetched before the last rebalance is left
        unacknowledged (one reference kept, so the batch's own acknowledgement cannot complete it) and
        is read again from the committed offset by its partition's owner, this worker or another.
        """
        if not self._assigned.is_set():
            await self._assigned.wait()
        generation = self.app.consumer_generation_id
        current: list[Any] = []
        stale: list[Any] = []
        for event in events:
            (current if event.message.generation_id == generation else stale).append(event)
        if stale:
            for event in stale:
                event.message.incref()
            self.abandoned += len(stale)
            first = stale[0].message
            log.info("abandoned records=%d fetched before the rebalance topic=%s partition=%s offset=%s generation=%s->%s",
                     len(stale), first.topic, first.partition, first.offset, first.generation_id, generation)
        return current

    async def run(self, events: Sequence[Any], handling: Callable[[list[Any]], Awaitable[None]]) -> None:
        """Handle the admitted events of a batch, holding one reference on each of their messages until done.

        `take_events` acknowledges a batch as its generator closes, and Faust closes it when the stream
        stops, even while the agent is still in the middle of the batch (a worker shutting down). With the
        reference held, that acknowledgement leaves each message pending; the reference is let go only
        once the batch was handled, so a batch that was not is never committed and is read again after
        the restart. A revocation waits for the batches under way here.
        """
        current = await self.admitted(events)
        if not current:
            return
        for event in current:
            event.message.incref()
        self._running += 1
        self._idle.clear()
        try:
            await handling(current)
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()
        for event in current:
            event.message.decref()

    async def _on_revoked(self, app: Any, revoked: Any = None, **_: Any) -> None:
        self._assigned.clear()
        if self._idle.is_set():
            return
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._idle.wait(), self.wait_s)
        except TimeoutError:
            log.warning("revocation went on after %.1f s with batches=%d still in flight", self.wait_s, self._running)
            return
        log.info("revocation waited %.3f s for the batches in flight", time.monotonic() - started)

    async def _on_assigned(self, app: Any, assigned: Any = None, **_: Any) -> None:
        self._assigned.set()
