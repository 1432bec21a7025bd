"""The agents' wiring: tables, the ingest agents (`streams.ingest`), the join (`streams.join`), the case agent
(`streams.cases`), the control followers (`streams.control`), tracing and the timers. No rule logic here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust

from geo.sweep import PlaceStore
from pipeline.events import TriageMessage
from pipeline.ingest import dead_letter
from pipeline.state import new_state, state_from_bytes
from pipeline.triage import UNASSIGNED
from streams import batches
from streams.batches import handle_batch
from streams.cases import CaseAgent
from streams.control import follow_regions, follow_rules, mark_ready
from streams.handover import Handover
from streams.ingest import register_ingest
from streams.join import Join, remember_places
from streams.queries import CaseIndex
from streams.runtime import Runtime, utc_now
from streams.tables import raw_table
from streams.timers import every
from streams.topics import Topics
from streams.tracing import Tracing
from streams.verdicts import VerdictWaiters

__all__ = ["Agents", "register_agents"]

log = logging.getLogger(__name__)

#: Longest a revocation waits for the batches in flight (seconds), well inside the group's session timeout.
HANDOVER_WAIT_S = 15.0


@dataclass
class Agents:
    """Handles on what the agents share, for views, the demo and tests."""

    app: faust.App
    runtime: Runtime
    topics: Topics
    persons: Any
    cases: Any
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "inputs": 0, "forwarded": 0, "dead_lettered": 0, "person_events": 0, "joined": 0, "join_dead_lettered": 0,
            "reevaluated": 0, "case_dead_lettered": 0, "flagged": 0,
        }
    )
    listeners: list[Callable[[TriageMessage, float], None]] = field(default_factory=list)
    #: scan replies waiting for the join (the API's handle on it)
    verdicts: VerdictWaiters = field(default_factory=VerdictWaiters)
    #: the access gate the API and the pages share (`streams.api.gate_of`)
    access_gate: Any = None
    control_ready: asyncio.Event = field(default_factory=asyncio.Event)
    regions_loaded: bool = False
    queues_declared: bool = False
    index: CaseIndex = field(default_factory=CaseIndex)
    #: key groups' rosters, members and reminders (`streams.key_groups`)
    key_groups: Any = None
    tracing: Tracing | None = None
    #: the cases table's agent (`streams.cases`), which shares `index` with the queue pages
    case_agent: CaseAgent = field(init=False)
    #: the join's work and its management wake-ups (`streams.join`)
    join: Join = field(init=False)
    #: the batches in flight, which a revocation waits for (`streams.handover`)
    handover: Handover = field(init=False)

    def __post_init__(self) -> None:
        self.case_agent = CaseAgent(self.runtime, self.topics, self.cases, self.index, self.send)
        self.join = Join(self)
        self.handover = Handover(self.app, wait_s=HANDOVER_WAIT_S)

    @property
    def managed(self) -> dict[bytes, tuple[str, str, str, float | None, str]]:
        """Managed person key -> (status, action, community, next due, day of the status), for the dashboard."""
        return self.join.managed

    async def send(self, topic: Any, key: bytes | None, value: bytes) -> Awaitable[Any]:
        """Hand a record to the producer directly (the hot paths skip Faust's per-message channel
        machinery); returns the future that resolves once the broker has it."""
        return await self.app.producer.send(topic.get_topic_name(), key, value, None, None, None)

    async def dead_letter(self, message: Any, reason: str, detail: str, counter: str = "dead_lettered") -> Awaitable[Any]:
        """Send a dead letter and count it under `counter`; returns its delivery future.

        Ingest's letters count as `dead_lettered` (inputs = forwarded + dead_lettered), the join's as
        `join_dead_lettered` (person_events = joined + join_dead_lettered), the cases agent's as
        `case_dead_lettered`.
        """
        letter = dead_letter(message.value, reason, detail, source_topic=message.topic, partition=message.partition,
                             offset=message.offset, at=utc_now())
        delivery = await self.send(self.topics.dead_letters, message.key, letter.model_dump_json().encode())
        self.counts[counter] += 1
        self.runtime.metrics.dead_letters.labels(topic=message.topic, reason=reason).inc()
        log.warning("dead letter topic=%s partition=%s offset=%s reason=%s", message.topic, message.partition, message.offset, reason)
        return delivery

    async def handle_batch(
        self, name: str, events: Sequence[Any], handle: Callable[[Sequence[Any]], Awaitable[None]], counter: str
    ) -> None:
        """Run `handle` on a batch until it goes through (`streams.batches.handle_batch`), dead-lettering what keeps failing."""
        await handle_batch(name, events, handle, self.dead_letter, counter)


def register_agents(app: faust.App, runtime: Runtime, topics: Topics) -> Agents:
    """Declare tables, agents, control tasks and the escalation timer on `app`."""
    settings = runtime.settings
    persons = raw_table(app, "persons", settings.partitions)
    cases = raw_table(app, "cases", settings.partitions)
    agents = Agents(app=app, runtime=runtime, topics=topics, persons=persons, cases=cases)
    agents.tracing = Tracing(agents, raw_table(app, "contacts", settings.partitions), settings.topic("contact-traces"))

    for kind, topic in topics.inputs.items():
        register_ingest(app, agents, kind, topic)

    @app.agent(topics.person_events, name="join")
    async def join(stream: Any) -> None:
        async for events in stream.take_events(batches.BATCH_MAX, within=batches.BATCH_WITHIN):
            await agents.handover.run(
                events, lambda batch: agents.handle_batch("join", batch, agents.join.join_batch, "join_dead_lettered"))

    case_channel = app.topic(topics.cases.get_topic_name(), topics.case_events.get_topic_name(), key_type=bytes,
                             value_type=bytes, key_serializer="raw", value_serializer="raw",
                             partitions=settings.partitions, internal=True)

    @app.agent(case_channel, name="cases")
    async def case_agent(stream: Any) -> None:
        async for events in stream.take_events(batches.BATCH_MAX, within=batches.BATCH_WITHIN):
            await agents.handover.run(
                events, lambda batch: agents.handle_batch("cases", batch, agents.case_agent.case_batch, "case_dead_lettered"))

    every(app, 1.0, "escalation", agents.case_agent.escalate_due)
    every(app, 1.0, "management", agents.join.wake_managed)

    @app.task
    async def declare_queues() -> None:
        await _declare_queues(agents)

    @app.task
    async def contact_traces() -> None:
        await agents.tracing.follow()

    @app.task
    async def rules_control() -> None:
        await follow_rules(agents)

    @app.task
    async def regions_control() -> None:
        await follow_regions(agents)

    from streams.key_groups import register_key_groups

    agents.key_groups = register_key_groups(app, agents)

    @cases.on_recover
    async def rebuild_awaiting() -> None:
        agents.case_agent.rebuild()

    @persons.on_recover
    async def rebuild_places() -> None:
        # every recovery (each rebalance) rebuilds the store from the table: appending to the old one held each place twice
        states = [state_from_bytes(raw) for raw in list(persons.values()) if raw]
        runtime.places = PlaceStore()
        remember_places(runtime, [(new_state(s.person_key), s) for s in states])
        for s in states:
            if s.managed is not None and not s.managed.ended:
                agents.join.wakes[s.person_key.encode()] = 0.0  # looked at again at the next tick of the management timer

    return agents


async def _declare_queues(agents: Agents) -> None:
    """Create every community's and street's triage topic up front (concurrently), not on the hot path."""
    rt = agents.runtime
    communities = list(rt.communities)
    declarations = [agents.topics.triage(c.code) for c in communities] + [agents.topics.triage(UNASSIGNED)]
    declarations += [agents.topics.street(street) for street in sorted({c.street for c in communities if c.street})]
    declarations.append(agents.topics.street(UNASSIGNED))
    declarations.append(agents.topics.dead_letters.maybe_declare())
    for start in range(0, len(declarations), 50):
        await asyncio.gather(*declarations[start:start + 50])
    agents.queues_declared = True
    log.info("queue topics declared count=%d", len(declarations))
    mark_ready(agents)
