"""Rebalances hand partitions over cleanly: a batch in flight finishes before the revocation returns, and records
fetched before a rebalance are left unacknowledged for their partition's owner to read again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import faust
import pytest

from pipeline.settings import Settings
from streams import batches as batches_module
from streams.handover import Handover
from tests.streams.harness import cleanup, deployment_settings, running_worker, wait_until
from tests.streams.test_failing_records import _hold_deliveries, _push_declarations


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setattr(batches_module, "BATCH_WITHIN", 0.5)  # the three declarations come as one batch
    settings = deployment_settings("memory")
    yield settings
    cleanup(settings)


def test_a_rebalance_waits_for_the_join_batch_in_flight_before_the_partitions_are_assigned_again(
    deployment: Settings, run_async: Any
) -> None:
    """The join batch waits for its triage deliveries when a rebalance starts: the new assignment comes only
    after the batch wrote its states and let its records be acknowledged (before, the batch went on writing
    to partitions that the group had meanwhile handed out again)."""
    _push_declarations(deployment, [60, 61, 62], nat="positive")

    async def scenario() -> dict[str, Any]:
        async with running_worker(deployment) as worker:
            app = worker.app
            gate, _ = _hold_deliveries(worker, lambda topic: ".triage." in topic)
            assert await wait_until(lambda: worker.agents.counts["flagged"] == 3, 20), worker.agents.counts
            seen: dict[str, Any] = {}

            async def on_assigned(sender: Any, assigned: Any = None, **_: Any) -> None:
                seen.setdefault("joined_at_assignment", worker.agents.counts["joined"])

            app.on_partitions_assigned.connect(on_assigned)
            generation = app.consumer_generation_id
            consumer = app.consumer
            await consumer.subscribe({tp.topic for tp in consumer.assignment()})
            await asyncio.sleep(1.0)
            seen["generation_while_held"] = app.consumer_generation_id
            gate.set_result(None)
            assert await wait_until(lambda: app.consumer_generation_id > generation, 20)
            assert await wait_until(lambda: "joined_at_assignment" in seen, 20)
            return {"generation": generation, **seen, "counts": dict(worker.agents.counts)}

    result = run_async(scenario())
    assert result["generation_while_held"] == result["generation"], "the group was assigned again under a batch in flight"
    assert result["joined_at_assignment"] == 3
    assert result["counts"]["joined"] == 3 and result["counts"]["join_dead_lettered"] == 0


@dataclass
class _Message:
    generation_id: int
    offset: int
    topic: str = "t"
    partition: int = 0
    refcount: int = 0
    acked: bool = False

    def incref(self) -> None:
        self.refcount += 1

    def decref(self) -> None:
        self.refcount -= 1
        if self.refcount == 0:
            self.acked = True


@dataclass
class _Event:
    message: _Message


def test_records_fetched_before_a_rebalance_are_abandoned_unacknowledged(run_async: Any) -> None:
    """Only the records of the current generation are handled; the older ones keep a reference, so the stream's
    own acknowledgement (one decref each) cannot mark them done, and their partition's owner reads them again."""
    app = faust.App("handover-test")
    handover = Handover(app, wait_s=1.0)
    app.consumer_generation_id = 3
    events = [_Event(_Message(generation_id=g, offset=n)) for n, g in enumerate([2, 3, 2, 3])]
    for event in events:
        event.message.incref()  # the stream's reference, let go as `take_events` acknowledges the batch
    handled: list[int] = []

    async def handle(batch: list[_Event]) -> None:
        handled.extend(e.message.offset for e in batch)

    async def scenario() -> None:
        await handover.run(events, handle)
        for event in events:
            event.message.decref()

    run_async(scenario())
    assert handled == [1, 3]
    assert [e.message.acked for e in events] == [False, True, False, True]
    assert handover.abandoned == 2


def test_a_batch_does_not_start_between_a_revocation_and_the_next_assignment(run_async: Any) -> None:
    app = faust.App("handover-gate-test")
    handover = Handover(app, wait_s=1.0)
    app.consumer_generation_id = 1
    events = [_Event(_Message(generation_id=2, offset=0))]
    handled: list[int] = []

    async def handle(batch: list[_Event]) -> None:
        handled.extend(e.message.offset for e in batch)

    async def scenario() -> tuple[list[int], list[int]]:
        await app.on_partitions_revoked.send(set())
        started = asyncio.ensure_future(handover.run(events, handle))
        await asyncio.sleep(0.2)
        before = list(handled)
        app.consumer_generation_id = 2
        await app.on_partitions_assigned.send(set())
        await asyncio.wait_for(started, 5)
        return before, list(handled)

    before, after = run_async(scenario())
    assert before == [] and after == [0]
