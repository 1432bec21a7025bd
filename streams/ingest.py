"""Ingest, one agent per input kind: validate, pseudonymise, fan out to person events, or dead-letter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust

from pipeline.errors import RejectedEvent
from pipeline.ingest import person_event_records
from streams import batches
from streams.runtime import utc_now

if TYPE_CHECKING:
    from streams.agents import Agents

__all__ = ["ingest_one", "register_ingest"]

log = logging.getLogger(__name__)


def _received_at(message: Any) -> datetime:
    stamp = getattr(message, "timestamp", None)
    return datetime.fromtimestamp(stamp, UTC) if stamp else utc_now()


async def ingest_one(agents: Agents, kind: str, message: Any) -> list[Awaitable[Any]]:
    """One input record → person events, or a dead letter; returns the delivery futures, which the
    caller awaits before the record is acknowledged (a commit must never pass an undelivered output)."""
    rt = agents.runtime
    agents.counts["inputs"] += 1
    rt.metrics.events_in.labels(topic=kind).inc()
    try:
        people = person_event_records(
            message.value or b"", secret=rt.settings.secret_bytes, now=rt.clock(), lookback=rt.lookback,
            source_topic=message.topic, received_at=_received_at(message),
        )
    except RejectedEvent as exc:
        return [await agents.dead_letter(message, exc.reason, exc.detail)]
    except Exception as exc:  # one bad record never stops the agent
        log.exception("ingest failed topic=%s partition=%s offset=%s", message.topic, message.partition, message.offset)
        return [await agents.dead_letter(message, "internal_error", type(exc).__name__)]
    deliveries = [await agents.send(agents.topics.person_events, key.encode(), value) for key, value in people]
    agents.counts["forwarded"] += 1
    agents.counts["person_events"] += len(people)
    rt.metrics.forwarded_inputs.labels(topic=kind).inc()
    rt.metrics.forwarded.labels(topic=kind).inc(len(people))
    return deliveries


def register_ingest(app: faust.App, agents: Agents, kind: str, topic: Any) -> None:
    """Declare the ingest agent of one input kind; it starts once the rules are active."""
    async def ingest_agent(stream: Any) -> None:
        if agents.runtime.rules is None:
            await agents.control_ready.wait()
        async for events in stream.take_events(batches.BATCH_MAX, within=batches.BATCH_WITHIN):
            await agents.handover.run(events, lambda batch: _ingest_batch(agents, kind, batch))

    app.agent(topic, name=f"ingest-{kind}")(ingest_agent)


async def _ingest_batch(agents: Agents, kind: str, events: Sequence[Any]) -> None:
    deliveries = [d for event in events for d in await ingest_one(agents, kind, event.message)]
    await asyncio.gather(*deliveries)
