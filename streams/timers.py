"""Timers that outlive a failing tick: the escalation, management and reminder timers of a worker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import faust

__all__ = ["every"]

log = logging.getLogger(__name__)


def every(app: faust.App, interval: float, name: str, tick: Callable[[], Awaitable[None]]) -> None:
    """Call `tick` every `interval` seconds on `app`; a tick that fails is logged (`<name> timer failed`), the next one runs."""

    async def timer() -> None:
        try:
            await tick()
        except Exception:
            log.exception("%s timer failed", name)

    timer.__name__ = timer.__qualname__ = f"{name}_timer"
    app.timer(interval=interval, name=f"{name}_timer")(timer)
