"""An input record is acknowledged (and so may be committed) only once what ingest made of it has reached
the broker: a worker killed in between must read the record again rather than lose its person events or
dead letter. The producer's deliveries are held back here to make that window as wide as we like."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from faust.types import TP

from streams.memory import get_broker
from tests.streams.harness import cleanup, deployment_settings, running_worker, wait_until
from tests.streams.test_control_and_cases import _community, _declaration, _id


def _passed(consumer: Any, tp: TP, offset: int) -> bool:
    """Whether the consumer has acknowledged or committed `offset` of `tp`."""
    committed = consumer._committed_offset.get(tp)
    return offset in consumer._acked.get(tp, []) or (committed is not None and committed >= offset)


def test_inputs_are_acknowledged_only_after_their_outputs_are_delivered(run_async: Any) -> None:
    settings = deployment_settings("memory")
    held_topics = {settings.topic("person-events"), settings.topic("dead-letters")}

    async def scenario() -> tuple[list[bool], list[bool], int]:
        async with running_worker(settings) as worker:
            gate = asyncio.get_running_loop().create_future()
            real_send = worker.app.producer.send
            held = 0

            async def send_after_gate(topic: str, key: Any, value: Any, *args: Any) -> Any:
                nonlocal held
                delivery = await real_send(topic, key, value, *args)
                if topic not in held_topics:
                    return delivery
                held += 1

                async def delivered_after_gate() -> Any:
                    await gate
                    return await delivery

                return asyncio.ensure_future(delivered_after_gate())

            worker.app.producer.send = send_after_gate
            _, _, lon, lat = _community(settings)
            now = datetime.now(UTC)
            broker = get_broker(settings.broker)
            records = [
                broker.append(settings.topic("declarations"), None,
                              _declaration("d-held", _id(7), now, (lon, lat), (101.5, 25.0), now - timedelta(days=2))),
                broker.append(settings.topic("declarations"), None, b"{not json"),
            ]
            await wait_until(lambda: worker.agents.counts["inputs"] == 2, 20)
            await asyncio.sleep(1.0)
            consumer = worker.app.consumer
            tps = [TP(r.topic, r.partition) for r in records]
            before = [_passed(consumer, tp, r.offset) for tp, r in zip(tps, records, strict=True)]
            gate.set_result(None)
            await wait_until(lambda: all(_passed(consumer, tp, r.offset) for tp, r in zip(tps, records, strict=True)), 20)
            after = [_passed(consumer, tp, r.offset) for tp, r in zip(tps, records, strict=True)]
            return before, after, held

    try:
        before, after, held = run_async(scenario())
    finally:
        cleanup(settings)
    assert held == 2, "one person event and one dead letter should have been held"
    assert before == [False, False], "an input was acknowledged before its output reached the broker"
    assert after == [True, True]
