"""How an agent's batch is run: tried until it goes through, failing records isolated and dead-lettered
(acknowledgement and rebalances: `streams.handover`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["BATCH_MAX", "BATCH_WITHIN", "TRIES", "RETRY_MAX_S", "handle_batch"]

log = logging.getLogger(__name__)

#: Records an agent takes per batch, and the longest a partial batch waits (seconds); the join makes one risk lookup per batch.
BATCH_MAX = 256
BATCH_WITHIN = 0.005
#: Tries a failing join or cases batch gets, then each of its records alone, before a record is dead-lettered.
TRIES = 3
#: Longest wait between tries of a batch the broker or the disk failed (seconds); those are tried until they go through.
RETRY_MAX_S = 10.0

#: `dead_letter(message, reason, detail, counter)` → the letter's delivery future
DeadLetter = Callable[..., Awaitable[Awaitable[Any]]]


async def handle_batch(name: str, events: Sequence[Any], handle: Callable[[Sequence[Any]], Awaitable[None]],
                       dead_letter: DeadLetter, counter: str) -> None:
    """Run `handle` on a batch until it goes through; the batch is acknowledged only when this returns.

    A batch that fails is tried again (`TRIES` times); then each of its records alone, in order,
    so the good ones still land; a record that keeps failing is dead-lettered (`internal_error`,
    its topic, partition and offset, the exception's type) and delivered before this returns.
    Failures of the broker, the network or the disk are not the records' fault: those batches
    are tried until they go through.
    """
    error = await _tried(name, events, handle, traceback=True)
    if error is None:
        return
    failed = [(events[0], error)] if len(events) == 1 else []
    for event in events if len(events) > 1 else ():
        record_error = await _tried(name, [event], handle, traceback=False)
        if record_error is not None:
            failed.append((event, record_error))
    letters = []
    for event, err in failed:
        message = event.message
        log.error("%s gave up topic=%s partition=%s offset=%s after %d tries error=%s", name, message.topic,
                  message.partition, message.offset, TRIES, type(err).__name__)
        letters.append(await dead_letter(message, "internal_error", type(err).__name__, counter=counter))
    await asyncio.gather(*letters)


async def _tried(name: str, events: Sequence[Any], handle: Callable[[Sequence[Any]], Awaitable[None]],
                 traceback: bool) -> Exception | None:
    """Run `handle` up to `TRIES` times (broker trouble does not count); the last error, or None once it went through."""
    failures = 0
    delay = 0.05
    first = events[0].message
    while True:
        try:
            await handle(events)
            return None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise
            error: Exception = TimeoutError("a delivery was cancelled")  # the producer restarted under us
        except Exception as exc:
            error = exc
        if _transient(error):
            log.warning("%s batch=%d not delivered topic=%s partition=%s offset=%s (%s); trying it again in %.2f s",
                        name, len(events), first.topic, first.partition, first.offset, type(error).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        failures += 1
        if failures == 1:
            log.error("%s failed topic=%s partition=%s offset=%s batch=%d error=%s", name, first.topic, first.partition,
                      first.offset, len(events), type(error).__name__, exc_info=error if traceback else None)
        if failures >= TRIES:
            return error
        await asyncio.sleep(0.01 * failures)


def _transient(error: BaseException) -> bool:
    """Whether `error` is the broker's, the network's or the disk's (a Kafka error marked retriable, an OSError)."""
    return isinstance(error, OSError) or bool(getattr(error, "retriable", False))
