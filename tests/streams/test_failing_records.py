"""A join or cases record whose processing keeps raising: its batch is tried again, then its records one
by one, so the good ones still land; the bad one is dead-lettered as `internal_error` with its topic,
partition, offset and the exception's type; and no record of the batch is acknowledged before that dead
letter reached the broker. A batch the worker stops in the middle of is not acknowledged either. On
memory://, on both table stores; the failure is injected into the domain call the agent makes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from faust.types import TP

from pipeline.settings import Settings
from streams import batches as batches_module
from streams import cases as cases_module
from streams import join as join_module
from streams.memory import get_broker
from streams.views import status
from streams.worker import Worker
from tests.streams.harness import cleanup, deployment_settings, running_worker, wait_until
from tests.streams.test_control_and_cases import _community, _declaration, _id
from tests.streams.test_delivery_before_ack import _passed

POISON = 7


@pytest.fixture
def deployment(store: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    # a wide batch window, so the records put on the topics before the worker starts come as one batch
    monkeypatch.setattr(batches_module, "BATCH_WITHIN", 0.5)
    settings = deployment_settings("memory", store=store)
    yield settings
    cleanup(settings)


def _push_declarations(settings: Settings, serials: list[int], nat: str) -> None:
    """Declarations of people arriving in a community from a high-risk place, on the input topic before the worker starts."""
    broker = get_broker(settings.broker)
    broker.create_topic(settings.topic("declarations"), settings.partitions)
    _, _, lon, lat = _community(settings)
    now = datetime.now(UTC)
    for serial in serials:
        broker.append(settings.topic("declarations"), None, _declaration(
            f"d-{serial}", _id(serial), now, (lon, lat), (lon, lat), now - timedelta(days=1), nat=nat))


def _hold_deliveries(worker: Worker, held_topic: Callable[[str], bool]) -> tuple[asyncio.Future, list[bytes]]:
    """Hold back the delivery of every record sent to a topic `held_topic` accepts until the returned future is
    set; the list fills with their values."""
    gate = asyncio.get_running_loop().create_future()
    held: list[bytes] = []
    real_send = worker.app.producer.send

    async def send(topic: str, key: Any, value: Any, *args: Any) -> Any:
        delivery = await real_send(topic, key, value, *args)
        if not held_topic(topic):
            return delivery
        held.append(value)

        async def after_gate() -> Any:
            await gate
            return await delivery

        return asyncio.ensure_future(after_gate())

    worker.app.producer.send = send
    return gate, held


def _hold_dead_letters(worker: Worker) -> tuple[asyncio.Future, list[bytes]]:
    """Hold back the delivery of every dead letter until the returned future is set; the list fills with their values."""
    dead_letters = worker.settings.topic("dead-letters")
    return _hold_deliveries(worker, lambda topic: topic == dead_letters)


def test_a_person_event_that_keeps_failing_is_retried_then_dead_lettered(
    deployment: Settings, monkeypatch: pytest.MonkeyPatch, run_async: Any
) -> None:
    serials = [30, 31, 32, POISON, 33, 34]
    tried: list[list[str]] = []
    real = join_module.step_many

    def step_many(batch: Any, *args: Any) -> Any:
        ids = [e.event_id for _, events in batch for e in events]
        tried.append(ids)
        if f"d-{POISON}" in ids:
            raise RuntimeError("injected failure")
        return real(batch, *args)

    monkeypatch.setattr(join_module, "step_many", step_many)
    _push_declarations(deployment, serials, nat="negative")
    topic = deployment.topic("person-events")

    async def scenario() -> dict[str, Any]:
        async with running_worker(deployment) as worker:
            gate, held = _hold_dead_letters(worker)
            counts = worker.agents.counts
            assert await wait_until(lambda: counts["person_events"] == len(serials) and held, 20), counts
            await asyncio.sleep(0.5)
            records = get_broker(deployment.broker).all_records(topic)
            consumer = worker.app.consumer
            before = [_passed(consumer, TP(topic, r.partition), r.offset) for r in records]
            landed = sum(worker.agents.persons.get_in(r.key, r.partition) is not None for r in records)
            gate.set_result(None)
            assert await wait_until(lambda: all(_passed(consumer, TP(topic, r.partition), r.offset) for r in records), 20)
            return {"before": before, "landed": landed, "records": records, "counts": status(worker.agents)["counts"]}

    result = run_async(scenario())
    records = result["records"]
    poisoned = [r for r in records if orjson.loads(r.value)["event_id"] == f"d-{POISON}"]
    assert len(records) == len(serials) and len(poisoned) == 1
    whole = [ids for ids in tried if f"d-{POISON}" in ids and len(ids) > 1]
    alone = [ids for ids in tried if ids == [f"d-{POISON}"]]
    assert len(whole) == batches_module.TRIES, f"the batch should be tried {batches_module.TRIES} times: {tried}"
    assert len(alone) == batches_module.TRIES, f"the record alone should be tried {batches_module.TRIES} times: {tried}"
    assert result["before"] == [False] * len(records), "a record was acknowledged before its batch was handled"
    assert result["landed"] == len(serials) - 1, "the good records of the batch should be in the person table"

    letters = [orjson.loads(r.value) for r in get_broker(deployment.broker).all_records(deployment.topic("dead-letters"))]
    assert [(x["reason"], x["source_topic"], x["partition"], x["offset"], x["detail"]) for x in letters] == [
        ("internal_error", topic, poisoned[0].partition, poisoned[0].offset, "RuntimeError")]
    counts = result["counts"]
    assert (counts["joined"], counts["join_dead_lettered"], counts["dead_lettered"]) == (len(serials) - 1, 1, 0)
    assert counts["person_events"] == counts["joined"] + counts["join_dead_lettered"]
    assert counts["inputs"] == counts["forwarded"] + counts["dead_lettered"]


def test_a_triage_message_that_keeps_failing_in_the_cases_agent_is_retried_then_dead_lettered(
    deployment: Settings, monkeypatch: pytest.MonkeyPatch, run_async: Any
) -> None:
    serials = [50, POISON, 51]
    tried: list[str] = []
    real = cases_module.case_for_message

    def case_for_message(case: Any, message: Any, street: Any) -> Any:
        tried.append(message.masked_id)
        if message.masked_id.endswith(_id(POISON)[-4:]):
            raise RuntimeError("injected failure")
        return real(case, message, street)

    monkeypatch.setattr(cases_module, "case_for_message", case_for_message)
    _push_declarations(deployment, serials, nat="positive")
    topic = deployment.topic("cases")

    async def scenario() -> dict[str, Any]:
        async with running_worker(deployment) as worker:
            gate, held = _hold_dead_letters(worker)
            assert await wait_until(lambda: bool(held), 20), worker.agents.counts
            await asyncio.sleep(0.5)
            records = get_broker(deployment.broker).all_records(topic)
            consumer = worker.app.consumer
            before = [_passed(consumer, TP(topic, r.partition), r.offset) for r in records]
            opened = len(worker.agents.case_agent.local_cases())
            gate.set_result(None)
            assert await wait_until(lambda: all(_passed(consumer, TP(topic, r.partition), r.offset) for r in records), 20)
            return {"before": before, "opened": opened, "records": records, "counts": status(worker.agents)["counts"]}

    result = run_async(scenario())
    records = result["records"]
    poisoned = [r for r in records if orjson.loads(r.value)["masked_id"].endswith(_id(POISON)[-4:])]
    assert len(records) == len(serials) and len(poisoned) == 1
    assert tried.count(orjson.loads(poisoned[0].value)["masked_id"]) == 2 * batches_module.TRIES, tried
    assert result["before"] == [False] * len(records), "a record was acknowledged before its batch was handled"
    assert result["opened"] == len(serials) - 1, "the good triage messages of the batch should have opened cases"

    letters = [orjson.loads(r.value) for r in get_broker(deployment.broker).all_records(deployment.topic("dead-letters"))]
    assert [(x["reason"], x["source_topic"], x["partition"], x["offset"], x["detail"]) for x in letters] == [
        ("internal_error", topic, poisoned[0].partition, poisoned[0].offset, "RuntimeError")]
    counts = result["counts"]
    assert (counts["case_dead_lettered"], counts["join_dead_lettered"], counts["dead_lettered"]) == (1, 0, 0)


def test_a_batch_the_worker_stops_in_the_middle_of_is_read_again_after_the_restart(
    deployment: Settings, run_async: Any
) -> None:
    """A worker stopped while a join batch waits for its triage deliveries: the batch is not acknowledged
    (Faust would acknowledge it as the batch's generator closes), so the next worker joins it."""
    _push_declarations(deployment, [90, 91, 92], nat="positive")
    topic = deployment.topic("person-events")
    group = f"{deployment.topic_prefix}-worker"

    async def stopped_mid_batch() -> int:
        async with running_worker(deployment) as worker:
            _hold_deliveries(worker, lambda topic: ".triage." in topic)  # never let go
            assert await wait_until(lambda: worker.agents.counts["flagged"] == 3, 20), worker.agents.counts
            await asyncio.sleep(1.5)  # past a commit interval
            return worker.agents.counts["joined"]

    async def restarted() -> dict[str, int]:
        async with running_worker(deployment) as worker:
            assert await wait_until(lambda: worker.agents.counts["joined"] == 3, 20), worker.agents.counts
            return dict(worker.agents.counts)

    joined_before_stop = run_async(stopped_mid_batch())
    broker = get_broker(deployment.broker)
    records = broker.all_records(topic)
    committed = {r.partition: broker.committed(group, TP(topic, r.partition)) or 0 for r in records}
    assert joined_before_stop == 0
    assert all(committed[r.partition] <= r.offset for r in records), f"committed {committed} past a batch never handled"
    counts = run_async(restarted())
    assert counts["joined"] == 3 and counts["join_dead_lettered"] == 0
