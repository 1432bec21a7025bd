"""Who waits for a person's verdict: a scan reply, until the join agent has processed the scanned event.

The join agent calls `processed` for each event it folded; `wait` is what the HTTP API sees of the join,
instead of the whole `Agents`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.events import PersonEvent

__all__ = ["VerdictWaiters"]

Waiter = Callable[[PersonEvent, Any], None]


@dataclass
class VerdictWaiters:
    """Waiters by event id and person key; a waiter is called once, with the event and the verdict after it."""

    slots: dict[str, list[Waiter]] = field(default_factory=dict)

    async def wait(self, person_key: str, event_id: str, timeout: float) -> Any:
        """The verdict after `event_id` of `person_key`; `TimeoutError` when it was not processed within `timeout` s."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(event: PersonEvent, verdict: Any) -> None:
            if not future.done():
                future.set_result(verdict)

        slot = f"{event_id}/{person_key}"
        self.slots.setdefault(slot, []).append(done)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            waiting = self.slots.get(slot)
            if waiting is not None and done in waiting:
                waiting.remove(done)
                if not waiting:
                    self.slots.pop(slot, None)

    def processed(self, person_key: str, events: Iterable[PersonEvent], verdict: Any) -> None:
        """The join folded `events` of `person_key` into a state whose verdict is `verdict`."""
        for event in events:
            for waiter in self.slots.pop(f"{event.event_id}/{person_key}", ()):
                waiter(event, verdict)
