"""The join: a batch of person events folded into the person table, everybody evaluated once, changes routed.

Verdicts go to the community's queue and the cases topic before the new states reach the changelog; the
management timer's wake-ups and the dashboard's management figures are kept here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.cases import street_queue
from pipeline.events import PersonEvent, TriageMessage
from pipeline.join import Outcome, step_many
from pipeline.management import notice_messages, reaches_street
from pipeline.state import PersonState, new_state, state_from_bytes, state_to_bytes
from pipeline.triage import UNASSIGNED
from pipeline.wire import decode_person_event
from streams.control import REEVALUATE
from streams.runtime import Runtime, utc_now

if TYPE_CHECKING:
    from streams.agents import Agents

__all__ = ["Join", "remember_places"]


@dataclass
class Join:
    """The join agent's work and what it keeps between batches."""

    agents: Agents
    #: person key -> when that person's management next changes without an event (the management timer scans it)
    wakes: dict[bytes, float] = field(default_factory=dict)
    #: person key -> (status, action, community, next due, day the status was reached), for the dashboard
    managed: dict[bytes, tuple[str, str, str, float | None, str]] = field(default_factory=dict)

    def _state(self, key: bytes, partition: int) -> PersonState:
        raw = self.agents.persons.get_in(key, partition)
        return state_from_bytes(raw) if raw else new_state(key.decode())

    async def join_batch(self, events: Sequence[Any]) -> None:
        """Fold a batch of person events into the person table, evaluate everybody once, route changes.

        Raises when any record of the batch cannot be processed (`handle_batch` then isolates it);
        each state is read from and written to its event's partition.
        """
        rt = self.agents.runtime
        if rt.rules is None:
            await self.agents.control_ready.wait()
        now = rt.clock()
        grouped: dict[bytes, tuple[PersonState, list[PersonEvent]]] = {}
        partitions: dict[bytes, int] = {}
        reevaluations = 0
        for event in events:
            key = event.key
            entry = grouped.get(key)
            if entry is None:
                partitions[key] = event.message.partition
                entry = grouped[key] = (self._state(key, event.message.partition), [])
            if _is_reevaluation(event.headers):
                reevaluations += 1
            else:
                entry[1].append(decode_person_event(event.value) or PersonEvent.model_validate_json(event.value))
        tracing = self.agents.tracing
        exposures, exposed = tracing.exposures_for(list(grouped), partitions, tracing.incoming(events)) if tracing else ({}, {})
        outcomes = step_many(list(grouped.values()), rt.rules, rt.regions, rt.communities, now, exposures)
        remember_places(rt, [(o.before, o.after) for o in outcomes if o.events])
        wall = utc_now()
        deliveries = [await self._send_triage(key, o.message, o.events, wall)
                      for key, o in zip(grouped, outcomes, strict=True) if o.message is not None]
        deliveries += [await self._send_notices(key, o, now) for key, o in zip(grouped, outcomes, strict=True) if o.notices]
        for key, o in zip(grouped, outcomes, strict=True):
            self._track_management(key, o, now)
        if deliveries:
            # the state remembers the verdict as sent: it must not reach the changelog before the
            # message reaches its queue, or a crash in between loses the message for good
            await asyncio.gather(*(d for pair in deliveries for d in pair))
        changed = [(key, state_to_bytes(o.after), partitions[key])
                   for key, o in zip(grouped, outcomes, strict=True) if o.after is not o.before]
        written = await self.agents.persons.put_many(changed)
        if tracing is not None:
            written += await tracing.after_batch(
                [(key, o.before, o.after) for key, o in zip(grouped, outcomes, strict=True)], exposed, partitions)
        for key, outcome in zip(grouped, outcomes, strict=True):
            self.agents.verdicts.processed(key.decode(), outcome.events, outcome.verdict)
        # the batch is acknowledged when this returns: its states must be in the changelog by then
        await asyncio.gather(*written)
        self.agents.counts["joined"] += len(events) - reevaluations
        self.agents.counts["reevaluated"] += reevaluations

    async def _send_triage(
        self, key: bytes, message: TriageMessage, events: tuple[PersonEvent, ...], wall: datetime
    ) -> tuple[Awaitable[Any], Awaitable[Any]]:
        """Send the message to its community queue and to the cases topic; returns both deliveries."""
        rt = self.agents.runtime
        body = message.model_dump_json().encode()
        queued = await self.agents.send(await self.agents.topics.triage(message.community), key, body)
        recorded = await self.agents.send(self.agents.topics.cases, message.case_id.encode(), body)
        rt.metrics.verdicts.labels(action=message.action).inc()
        self.agents.counts["flagged"] += 1
        latency = (wall - min(e.ingested_at for e in events)).total_seconds() if events else 0.0
        if events:
            rt.metrics.latency.observe(latency)
        for listener in self.agents.listeners:
            listener(message, latency)
        return queued, recorded

    async def _send_notices(self, key: bytes, outcome: Outcome, now: datetime) -> tuple[Awaitable[Any], ...]:
        """Send `test_overdue` / `released` to the community's queue (a missed test also to the street's); the deliveries."""
        rt = self.agents.runtime
        sent: list[Awaitable[Any]] = []
        for message in notice_messages(outcome.after, outcome.management, outcome.notices, rt.rules.tz, int(now.timestamp())):
            body = message.model_dump_json().encode()
            sent.append(await self.agents.send(await self.agents.topics.triage(message.community), key, body))
            if reaches_street(message):
                street = street_queue(rt.communities.street_of(message.community))
                sent.append(await self.agents.send(await self.agents.topics.street(street), key, body))
            rt.metrics.loop_messages.labels(kind=message.kind).inc()
        return tuple(sent)

    def _track_management(self, key: bytes, outcome: Outcome, now: datetime) -> None:
        """Keep when each managed person next needs a look, and their status for the dashboard."""
        seen = outcome.management
        if seen.status == "none":
            self.wakes.pop(key, None)
            self.managed.pop(key, None)
            return
        if seen.wake is None:
            self.wakes.pop(key, None)
        else:
            self.wakes[key] = float(seen.wake)
        last = outcome.after.last
        community = last.community if last is not None and last.community else UNASSIGNED
        previous = self.managed.get(key)
        day = previous[4] if previous is not None and previous[0] == seen.status else \
            now.astimezone(self.agents.runtime.settings.zone).date().isoformat()
        self.managed[key] = (seen.status, seen.action or "", community,
                             None if seen.next_due is None else float(seen.next_due), day)

    async def wake_managed(self) -> None:
        """Re-evaluate, through the join, every local person whose management deadline has passed (no event needed)."""
        cut = self.agents.runtime.clock().timestamp()
        due = [key for key, at in self.wakes.items() if at <= cut]
        for key in due:
            self.wakes.pop(key, None)
            await self.agents.topics.person_events.send(key=key, value=b'{"management":true}', headers={REEVALUATE: b"1"})


def _is_reevaluation(headers: Any) -> bool:
    if not headers:
        return False
    items = headers.items() if hasattr(headers, "items") else headers
    return any(k == REEVALUATE for k, _ in items)


def remember_places(rt: Runtime, changes: Sequence[tuple[PersonState, PersonState]]) -> None:
    """Keep the sweep's place store in step with the person table: new places only, one append per batch."""
    keys: list[str] = []
    fresh = []
    for old, new in changes:
        if new is old:
            continue
        known = {(p.event_id, p.seq) for p in old.places}
        added = [p for p in new.places if (p.event_id, p.seq) not in known]
        keys += [new.person_key] * len(added)
        fresh += added
    if fresh:
        rt.places.add(keys, [p.lon for p in fresh], [p.lat for p in fresh], [p.t_from for p in fresh], [p.t_to for p in fresh])
        rt.metrics.sweep_places.set(len(rt.places))
