"""A memory:// worker started on its own event loop in a thread, shared by the examples of one test module.

Starting a worker per hypothesis example would cost more than the examples; records are appended on the
worker's loop (where the broker wakes its consumers) and the test thread polls for the outcome.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.settings import Settings
from streams.memory import get_broker
from streams.worker import Worker, create_worker
from tests.streams.harness import cleanup, deployment_settings


@dataclass
class ThreadedWorker:
    """A started worker on its own loop, and how many input records were pushed into it."""

    settings: Settings
    worker: Worker
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    sent: int = 0

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def append(self, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
        """Append (key, value) records to a full topic name, on the worker's loop."""
        broker = get_broker(self.settings.broker)

        async def append() -> None:
            for key, value in records:
                broker.append(topic, key, value)

        self.run(append())

    def push(self, inputs: list[tuple[str, bytes]], keys: list[bytes | None] | None = None) -> None:
        """Send (kind, value) records to their input topics and count them in `sent`."""
        keys = keys or [None] * len(inputs)
        for (kind, value), key in zip(inputs, keys, strict=True):
            self.append(self.settings.topic(kind), [(key, value)])
        self.sent += len(inputs)

    def records(self, topic: str) -> list[Any]:
        broker = get_broker(self.settings.broker)
        return broker.all_records(topic) if broker.has_topic(topic) else []

    @property
    def counts(self) -> dict[str, int]:
        return self.worker.agents.counts

    def wait(self, predicate: Callable[[], bool], timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()


@contextmanager
def threaded_worker(clock: Callable[[], datetime] | None = None, **overrides: Any) -> Iterator[ThreadedWorker]:
    """A started memory:// worker with its own topic prefix; stopped and its broker dropped on exit."""
    settings = deployment_settings("memory", **overrides)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Worker:
        worker = create_worker(settings, app_id=f"{settings.topic_prefix}-worker", web_enabled=False)
        if clock is not None:
            worker.runtime.clock = clock
        await worker.app.start()
        await asyncio.wait_for(worker.agents.control_ready.wait(), 60)
        return worker

    worker = asyncio.run_coroutine_threadsafe(start(), loop).result(90)
    running = ThreadedWorker(settings, worker, loop, thread)
    try:
        yield running
    finally:
        running.run(worker.app.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        cleanup(settings)
