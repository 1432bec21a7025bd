"""The case agent's work: open cases from triage messages, apply case events, escalate the overdue.

Decisions are `pipeline.cases`'; this module reads and writes the cases table, sends the street's
escalation and the stage messages, and keeps what the escalation timer scans.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.cases import (
    Case,
    apply_case_event,
    awaits_acceptance,
    case_for_message,
    case_from_bytes,
    case_to_bytes,
    escalate,
    escalation_body,
    overdue,
    street_queue,
)
from pipeline.events import CaseEvent, TriageMessage
from pipeline.requests import REQUEST_STEPS, escalate_request, next_due, request_message, requests_due
from pipeline.stages import STAGES, stage_message
from streams.queries import CaseIndex
from streams.runtime import Runtime
from streams.topics import Topics

__all__ = ["CaseAgent", "case_record", "read_case"]

log = logging.getLogger(__name__)

#: hands a record to the producer; returns the delivery future (`Agents.send`)
Send = Callable[[Any, bytes | None, bytes], Awaitable[Awaitable[Any]]]


@dataclass
class CaseAgent:
    """The cases table and what the escalation timer scans: the due time of every case awaiting acceptance."""

    runtime: Runtime
    topics: Topics
    cases: Any
    index: CaseIndex
    send: Send
    awaiting: dict[bytes, float] = field(default_factory=dict)
    _escalating: set[bytes] = field(default_factory=set)
    #: case key -> earliest answer deadline of its unanswered, not yet escalated requests (the escalation timer scans it)
    requests_awaiting: dict[bytes, float] = field(default_factory=dict)
    _escalating_requests: set[str] = field(default_factory=set)

    async def case_batch(self, events: Sequence[Any]) -> None:
        """Apply a batch of triage messages and case events to the cases table, in order.

        Raises when any record cannot be applied (`handle_batch` then isolates it); acknowledged when
        this returns, so the cases it wrote must be in the changelog by then.
        """
        written = [await self.case_one(e.message.topic, e.key, e.value, e.message.partition) for e in events]
        await asyncio.gather(*(w for w in written if w is not None))

    async def case_one(self, topic: str, key: bytes, value: bytes, partition: int) -> Awaitable[Any] | None:
        """Open a case from a triage message, or apply an accept / resolve / escalate event to it;
        returns the delivery of the case's changelog record when it was written.

        Both source topics are keyed by case id and co-partitioned with the table: `partition` (the
        record's) is the case's partition.
        """
        rt = self.runtime
        if topic == self.topics.cases.get_topic_name():
            message = TriageMessage.model_validate_json(value)
            raw = self.cases.get_in(key, partition)
            case = read_case(raw)[0] if raw is not None else None
            updated = case_for_message(case, message, rt.communities.street_of(message.community))
            if updated is None or updated == case:
                return None
            if case is None:
                rt.metrics.cases_opened.labels(action=message.action).inc()
            return await self._put_case(updated, message, partition)
        event = CaseEvent.model_validate_json(value)
        raw = self.cases.get_in(event.case_id.encode(), partition)
        if raw is None:
            log.warning("case event for unknown case kind=%s", event.kind)
            return None
        case, message = read_case(raw)
        updated = apply_case_event(case, event)
        if updated == case:
            return None
        if event.kind == "escalated":
            # delivered before the case records it as escalated, as for triage messages in `join_batch`
            await (await self.send(await self.topics.street(street_queue(updated.street)), updated.person_key.encode(),
                                   escalation_body(updated, message, event)))
            rt.metrics.cases_overdue.inc()
        if event.kind in STAGES:
            row = next(r for r in updated.stages if r[0] == event.kind)
            staged = stage_message(updated.case_id, updated.person_key, updated.community, updated.action, message, row,
                                   updated.accepted_at, updated.stages)
            await (await self.send(await self.topics.triage(updated.community), updated.person_key.encode(),
                                   staged.model_dump_json().encode()))
            rt.metrics.loop_messages.labels(kind="stage").inc()
        if event.kind in REQUEST_STEPS:
            row = next(r for r in updated.requests if r[0] == event.request_id)
            told = request_message(updated.case_id, updated.person_key, updated.community, updated.action, message, row,
                                   REQUEST_STEPS[event.kind])
            body = told.model_dump_json().encode()
            queues = [await self.topics.triage(updated.community)]
            if event.kind == "request_escalated":
                queues.append(await self.topics.street(street_queue(updated.street)))
            for queue in queues:
                await (await self.send(queue, updated.person_key.encode(), body))
            self._escalating_requests.discard(event.request_id)
            rt.metrics.loop_messages.labels(kind="request").inc()
        rt.metrics.case_events.labels(kind=event.kind).inc()
        return await self._put_case(updated, message, partition)

    async def _put_case(self, case: Case, message: TriageMessage | dict[str, Any], partition: int) -> Awaitable[Any]:
        key = case.case_id.encode()
        delivery = await self.cases.put(key, case_record(case, message), partition)
        self.track(case, key)
        self.index.put(key, case.community, partition)
        return delivery

    def track(self, case: Case, key: bytes) -> None:
        """Keep the due time of every case still waiting to be accepted (what the escalation timer scans).

        A float under the table's own key per case, not the case: the timer reads a case back once it is due.
        """
        if awaits_acceptance(case):
            self.awaiting[key] = case.due_at.timestamp()  # type: ignore[union-attr]
        else:
            self.awaiting.pop(key, None)
            self._escalating.discard(key)
        due = next_due(case.requests)
        if due is None:
            self.requests_awaiting.pop(key, None)
        else:
            self.requests_awaiting[key] = due

    async def escalate_overdue(self) -> None:
        """Send an `escalated` case event for every local case not accepted by its due time."""
        now = self.runtime.clock()
        cut = now.timestamp()
        due = [key for key, at in self.awaiting.items() if at <= cut and key not in self._escalating]
        raws = [self.cases.get_in(key, self.cases.partition_for_key(key)) for key in due]
        for case in overdue([read_case(raw)[0] for raw in raws if raw], now):
            key = case.case_id.encode()
            self._escalating.add(key)
            _, event = escalate(case, now)
            await self.topics.case_events.send(key=key, value=event.model_dump_json().encode())

    async def escalate_requests(self) -> None:
        """Send a `request_escalated` case event for every local request not answered by its deadline."""
        now = self.runtime.clock()
        cut = now.timestamp()
        for key in [k for k, at in self.requests_awaiting.items() if at <= cut]:
            raw = self.cases.get_in(key, self.cases.partition_for_key(key))
            if not raw:
                self.requests_awaiting.pop(key, None)
                continue
            case = read_case(raw)[0]
            for row in requests_due(case.requests, now):
                if row[0] in self._escalating_requests:
                    continue
                self._escalating_requests.add(row[0])
                event = escalate_request(case.case_id, case.street, row, now)
                await self.topics.case_events.send(key=key, value=event.model_dump_json().encode())

    async def escalate_due(self) -> None:
        """The escalation timer's tick: overdue cases, then requests past their answer deadline."""
        await self.escalate_overdue()
        await self.escalate_requests()

    def rebuild(self) -> None:
        """After the table's recovery: what awaits acceptance, and the community index, from every case held."""
        rows = []
        for key, raw in list(self.cases.items()):
            if raw:
                case = read_case(raw)[0]
                self.track(case, key)
                rows.append((key, case.community, self.cases.partition_for_key(key)))
        self.index.rebuild(rows)

    def local_cases(self) -> list[tuple[Case, dict[str, Any]]]:
        """Every case this worker holds, with the latest triage message of its episode."""
        return [read_case(v) for v in list(self.cases.values()) if v]


def case_record(case: Case, message: TriageMessage | dict[str, Any]) -> bytes:
    """Cases-table value: the case and the latest triage message of its episode (for the queue pages)."""
    return case_to_bytes(case, message)


def read_case(raw: bytes) -> tuple[Case, dict[str, Any]]:
    return case_from_bytes(raw)
