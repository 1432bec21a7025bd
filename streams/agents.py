"""Agents: bytes → domain call in `pipeline/` → send or table update. No rule logic here.

ingest ×3 (validate, pseudonymise, fan out, dead-letter), join (person table + verdicts + routing),
cases (open, accept, resolve, escalate), and the control readers for rules and risk regions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson

from geo.sweep import PlaceStore
from pipeline.cases import (
    Case,
    apply_case_event,
    case_for_message,
    case_from_bytes,
    case_to_bytes,
    escalate,
    overdue,
)
from pipeline.errors import RejectedEvent
from pipeline.events import CaseEvent, PersonEvent, TriageMessage
from pipeline.ingest import dead_letter, person_event_records
from pipeline.join import Outcome, step_many
from pipeline.management import notice_messages
from pipeline.requests import next_due, request_message, requests_due
from pipeline.stages import STAGES, stage_message
from pipeline.state import PersonState, new_state, state_from_bytes, state_to_bytes
from pipeline.wire import decode_person_event
from streams.control import control_log_for
from streams.queries import CaseIndex
from streams.runtime import RegionChange, Runtime, utc_now
from streams.tables import raw_table
from streams.topics import Topics
from streams.tracing import Tracing

__all__ = ["Agents", "register_agents"]

log = logging.getLogger(__name__)

REEVALUATE = "epiflow-reevaluate"
#: Records an agent takes per batch, and the longest a partial batch waits (seconds); the join makes one risk lookup per batch.
BATCH_MAX = 256
BATCH_WITHIN = 0.005
#: Tries a failing join or cases batch gets, then each of its records alone, before a record is dead-lettered.
TRIES = 3
#: Longest wait between tries of a batch the broker or the disk failed (seconds); those are tried until they go through.
RETRY_MAX_S = 10.0


def _received_at(message: Any) -> datetime:
    stamp = getattr(message, "timestamp", None)
    return datetime.fromtimestamp(stamp, UTC) if stamp else utc_now()


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
    waiters: dict[str, list[Callable[[PersonEvent, Any], None]]] = field(default_factory=dict)
    control_ready: asyncio.Event = field(default_factory=asyncio.Event)
    regions_loaded: bool = False
    queues_declared: bool = False
    awaiting: dict[bytes, float] = field(default_factory=dict)
    index: CaseIndex = field(default_factory=CaseIndex)
    #: key groups' rosters, members and reminders (`streams.key_groups`)
    key_groups: Any = None
    _escalating: set[bytes] = field(default_factory=set)
    tracing: Tracing | None = None
    #: person key -> when that person's management next changes without an event (the management timer scans it)
    wakes: dict[bytes, float] = field(default_factory=dict)
    #: person key -> (status, action, community, next due, day the status was reached), for the dashboard
    managed: dict[bytes, tuple[str, str, str, float | None, str]] = field(default_factory=dict)
    #: case key -> earliest answer deadline of its unanswered, not yet escalated requests (the escalation timer scans it)
    requests_awaiting: dict[bytes, float] = field(default_factory=dict)
    _escalating_requests: set[str] = field(default_factory=set)

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

    async def ingest_one(self, kind: str, message: Any) -> list[Awaitable[Any]]:
        """One input record → person events, or a dead letter; returns the delivery futures, which the
        caller awaits before the record is acknowledged (a commit must never pass an undelivered output)."""
        rt = self.runtime
        self.counts["inputs"] += 1
        rt.metrics.events_in.labels(topic=kind).inc()
        try:
            people = person_event_records(
                message.value or b"", secret=rt.settings.secret_bytes, now=rt.clock(), lookback=rt.lookback,
                source_topic=message.topic, received_at=_received_at(message),
            )
        except RejectedEvent as exc:
            return [await self.dead_letter(message, exc.reason, exc.detail)]
        except Exception as exc:  # one bad record never stops the agent
            log.exception("ingest failed topic=%s partition=%s offset=%s", message.topic, message.partition, message.offset)
            return [await self.dead_letter(message, "internal_error", type(exc).__name__)]
        deliveries = [await self.send(self.topics.person_events, key.encode(), value) for key, value in people]
        self.counts["forwarded"] += 1
        self.counts["person_events"] += len(people)
        rt.metrics.forwarded_inputs.labels(topic=kind).inc()
        rt.metrics.forwarded.labels(topic=kind).inc(len(people))
        return deliveries

    def _state(self, key: bytes, partition: int) -> PersonState:
        raw = self.persons.get_in(key, partition)
        return state_from_bytes(raw) if raw else new_state(key.decode())

    async def handle_batch(
        self, name: str, events: Sequence[Any], handle: Callable[[Sequence[Any]], Awaitable[None]], counter: str
    ) -> None:
        """Run `handle` on a batch until it goes through; the batch is acknowledged only when this returns.

        A batch that fails is tried again (`TRIES` times); then each of its records alone, in order,
        so the good ones still land; a record that keeps failing is dead-lettered (`internal_error`,
        its topic, partition and offset, the exception's type) and delivered before this returns.
        Failures of the broker, the network or the disk are not the records' fault: those batches
        are tried until they go through.
        """
        error = await self._tried(name, events, handle, traceback=True)
        if error is None:
            return
        failed = [(events[0], error)] if len(events) == 1 else []
        for event in events if len(events) > 1 else ():
            record_error = await self._tried(name, [event], handle, traceback=False)
            if record_error is not None:
                failed.append((event, record_error))
        letters = [await self._dead_letter_failed(name, event, err, counter) for event, err in failed]
        await asyncio.gather(*letters)

    async def _tried(
        self, name: str, events: Sequence[Any], handle: Callable[[Sequence[Any]], Awaitable[None]], traceback: bool
    ) -> Exception | None:
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

    async def _dead_letter_failed(self, name: str, event: Any, error: Exception, counter: str) -> Awaitable[Any]:
        message = event.message
        log.error("%s gave up topic=%s partition=%s offset=%s after %d tries error=%s", name, message.topic,
                  message.partition, message.offset, TRIES, type(error).__name__)
        return await self.dead_letter(message, "internal_error", type(error).__name__, counter=counter)

    async def join_batch(self, events: Sequence[Any]) -> None:
        """Fold a batch of person events into the person table, evaluate everybody once, route changes.

        Raises when any record of the batch cannot be processed (`handle_batch` then isolates it);
        each state is read from and written to its event's partition.
        """
        rt = self.runtime
        if rt.rules is None:
            await self.control_ready.wait()
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
        tracing = self.tracing
        exposures, exposed = tracing.exposures_for(list(grouped), partitions, tracing.incoming(events)) if tracing else ({}, {})
        outcomes = step_many(list(grouped.values()), rt.rules, rt.regions, rt.communities, now, exposures)
        _remember_places(rt, [(o.before, o.after) for o in outcomes if o.events])
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
        written = await self.persons.put_many(changed)
        if tracing is not None:
            written += await tracing.after_batch(
                [(key, o.before, o.after) for key, o in zip(grouped, outcomes, strict=True)], exposed, partitions)
        for key, outcome in zip(grouped, outcomes, strict=True):
            for person_event in outcome.events:
                for waiter in self.waiters.pop(f"{person_event.event_id}/{key.decode()}", ()):
                    waiter(person_event, outcome.verdict)
        # the batch is acknowledged when this returns: its states must be in the changelog by then
        await asyncio.gather(*written)
        self.counts["joined"] += len(events) - reevaluations
        self.counts["reevaluated"] += reevaluations

    async def _send_triage(
        self, key: bytes, message: TriageMessage, events: tuple[PersonEvent, ...], wall: datetime
    ) -> tuple[Awaitable[Any], Awaitable[Any]]:
        """Send the message to its community queue and to the cases topic; returns both deliveries."""
        rt = self.runtime
        body = message.model_dump_json().encode()
        queued = await self.send(await self.topics.triage(message.community), key, body)
        recorded = await self.send(self.topics.cases, message.case_id.encode(), body)
        rt.metrics.verdicts.labels(action=message.action).inc()
        self.counts["flagged"] += 1
        latency = (wall - min(e.ingested_at for e in events)).total_seconds() if events else 0.0
        if events:
            rt.metrics.latency.observe(latency)
        for listener in self.listeners:
            listener(message, latency)
        return queued, recorded

    async def _send_notices(self, key: bytes, outcome: Outcome, now: datetime) -> tuple[Awaitable[Any], ...]:
        """Send `test_overdue` / `released` to the community's queue (a missed test also to the street's); the deliveries."""
        rt = self.runtime
        sent: list[Awaitable[Any]] = []
        for message in notice_messages(outcome.after, outcome.management, outcome.notices, rt.rules.tz, int(now.timestamp())):
            body = message.model_dump_json().encode()
            sent.append(await self.send(await self.topics.triage(message.community), key, body))
            if message.kind == "test_overdue":
                street = rt.communities.street_of(message.community) or "unassigned"
                sent.append(await self.send(await self.topics.street(street), key, body))
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
        community = last.community if last is not None and last.community else "unassigned"
        previous = self.managed.get(key)
        day = previous[4] if previous is not None and previous[0] == seen.status else \
            now.astimezone(self.runtime.settings.zone).date().isoformat()
        self.managed[key] = (seen.status, seen.action or "", community,
                             None if seen.next_due is None else float(seen.next_due), day)

    async def wake_managed(self) -> None:
        """Re-evaluate, through the join, every local person whose management deadline has passed (no event needed)."""
        cut = self.runtime.clock().timestamp()
        due = [key for key, at in self.wakes.items() if at <= cut]
        for key in due:
            self.wakes.pop(key, None)
            await self.topics.person_events.send(key=key, value=b'{"management":true}', headers={REEVALUATE: b"1"})

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
            street = updated.street or "unassigned"
            # delivered before the case records it as escalated, as for triage messages in `join_batch`
            await (await self.send(await self.topics.street(street), updated.person_key.encode(),
                                   _escalation_body(updated, message, event)))
            rt.metrics.cases_overdue.inc()
        if event.kind in STAGES:
            row = next(r for r in updated.stages if r[0] == event.kind)
            staged = stage_message(updated.case_id, updated.person_key, updated.community, updated.action, message, row,
                                   updated.accepted_at, updated.stages)
            await (await self.send(await self.topics.triage(updated.community), updated.person_key.encode(),
                                   staged.model_dump_json().encode()))
            rt.metrics.loop_messages.labels(kind="stage").inc()
        if event.kind in _REQUEST_STEPS:
            row = next(r for r in updated.requests if r[0] == event.request_id)
            told = request_message(updated.case_id, updated.person_key, updated.community, updated.action, message, row,
                                   _REQUEST_STEPS[event.kind])
            body = told.model_dump_json().encode()
            queues = [await self.topics.triage(updated.community)]
            if event.kind == "request_escalated":
                queues.append(await self.topics.street(updated.street or "unassigned"))
            for queue in queues:
                await (await self.send(queue, updated.person_key.encode(), body))
            self._escalating_requests.discard(event.request_id)
            rt.metrics.loop_messages.labels(kind="request").inc()
        rt.metrics.case_events.labels(kind=event.kind).inc()
        return await self._put_case(updated, message, partition)

    async def _put_case(self, case: Case, message: TriageMessage | dict[str, Any], partition: int) -> Awaitable[Any]:
        key = case.case_id.encode()
        delivery = await self.cases.put(key, case_record(case, message), partition)
        self._track(case, key)
        self.index.put(key, case.community, partition)
        return delivery

    def _track(self, case: Case, key: bytes) -> None:
        """Keep the due time of every case still waiting to be accepted (what the escalation timer scans).

        A float under the table's own key per case, not the case: the timer reads a case back once it is due.
        """
        if case.accepted_at is None and case.escalated_at is None and case.is_open and case.action != "clear" \
                and case.due_at is not None:
            self.awaiting[key] = case.due_at.timestamp()
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
                street = case.street or "the district"
                event = CaseEvent(case_id=case.case_id, kind="request_escalated", by="epiflow", at=now, request_id=row[0],
                                  note=f"not answered by {row[5]}; escalated to {street}")
                await self.topics.case_events.send(key=key, value=event.model_dump_json().encode())

    def local_cases(self) -> list[tuple[Case, dict[str, Any]]]:
        """Every case this worker holds, with the latest triage message of its episode."""
        return [read_case(v) for v in list(self.cases.values()) if v]


#: request case events and the step each `request` message tells
_REQUEST_STEPS: dict[str, Any] = {"request": "posted", "answered": "answered", "request_escalated": "escalated"}


def case_record(case: Case, message: TriageMessage | dict[str, Any]) -> bytes:
    """Cases-table value: the case and the latest triage message of its episode (for the queue pages)."""
    return case_to_bytes(case, message)


def read_case(raw: bytes) -> tuple[Case, dict[str, Any]]:
    return case_from_bytes(raw)


def _escalation_body(case: Case, message: dict[str, Any], event: CaseEvent) -> bytes:
    return orjson.dumps({
        **message, "kind": "escalation", "street": case.street, "escalated_at": event.at.isoformat(),
        "due_at": case.due_at.isoformat() if case.due_at else None,
    })


def _transient(error: BaseException) -> bool:
    """Whether `error` is the broker's, the network's or the disk's (a Kafka error marked retriable, an OSError)."""
    return isinstance(error, OSError) or bool(getattr(error, "retriable", False))


async def _acknowledged_once_handled(events: Sequence[Any], handling: Awaitable[None]) -> None:
    """Await `handling` of a batch, holding one reference on each of its messages until it is done.

    `take_events` acknowledges a batch as its generator closes, and Faust closes it when the stream
    stops, even while the agent is still in the middle of the batch (a worker shutting down). With the
    reference held, that acknowledgement leaves each message pending; the reference is let go only
    once the batch was handled, so a batch that was not is never committed and is read again after
    the restart.
    """
    for event in events:
        event.message.incref()
    await handling
    for event in events:
        event.message.decref()


def _is_reevaluation(headers: Any) -> bool:
    if not headers:
        return False
    items = headers.items() if hasattr(headers, "items") else headers
    return any(k == REEVALUATE for k, _ in items)


def _remember_places(rt: Runtime, changes: Sequence[tuple[PersonState, PersonState]]) -> None:
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


def register_agents(app: faust.App, runtime: Runtime, topics: Topics) -> Agents:
    """Declare tables, agents, control tasks and the escalation timer on `app`."""
    settings = runtime.settings
    persons = raw_table(app, "persons", settings.partitions)
    cases = raw_table(app, "cases", settings.partitions)
    agents = Agents(app=app, runtime=runtime, topics=topics, persons=persons, cases=cases)
    agents.tracing = Tracing(agents, raw_table(app, "contacts", settings.partitions), settings.topic("contact-traces"))

    for kind, topic in topics.inputs.items():
        _ingest_agent(app, agents, kind, topic)

    @app.agent(topics.person_events, name="join")
    async def join(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            handling = agents.handle_batch("join", events, agents.join_batch, "join_dead_lettered")
            await _acknowledged_once_handled(events, handling)

    case_channel = app.topic(topics.cases.get_topic_name(), topics.case_events.get_topic_name(), key_type=bytes,
                             value_type=bytes, key_serializer="raw", value_serializer="raw",
                             partitions=settings.partitions, internal=True)

    @app.agent(case_channel, name="cases")
    async def case_agent(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            handling = agents.handle_batch("cases", events, agents.case_batch, "case_dead_lettered")
            await _acknowledged_once_handled(events, handling)

    @app.timer(interval=1.0)
    async def escalation_timer() -> None:
        try:
            await agents.escalate_overdue()
            await agents.escalate_requests()
        except Exception:
            log.exception("escalation timer failed")

    @app.timer(interval=1.0)
    async def management_timer() -> None:
        try:
            await agents.wake_managed()
        except Exception:
            log.exception("management timer failed")

    @app.task
    async def declare_queues() -> None:
        await _declare_queues(agents)

    @app.task
    async def contact_traces() -> None:
        await agents.tracing.follow()

    @app.task
    async def rules_control() -> None:
        await _follow_rules(agents)

    @app.task
    async def regions_control() -> None:
        await _follow_regions(agents)

    from streams.key_groups import register_key_groups

    agents.key_groups = register_key_groups(app, agents)

    @cases.on_recover
    async def rebuild_awaiting() -> None:
        rows = []
        for key, raw in list(cases.items()):
            if raw:
                case = read_case(raw)[0]
                agents._track(case, key)
                rows.append((key, case.community, cases.partition_for_key(key)))
        agents.index.rebuild(rows)

    @persons.on_recover
    async def rebuild_places() -> None:
        # every recovery (each rebalance) rebuilds the store from the table: appending to the old one held each place twice
        states = [state_from_bytes(raw) for raw in list(persons.values()) if raw]
        runtime.places = PlaceStore()
        _remember_places(runtime, [(new_state(s.person_key), s) for s in states])
        for s in states:
            if s.managed is not None and not s.managed.ended:
                agents.wakes[s.person_key.encode()] = 0.0  # looked at again at the next tick of the management timer

    return agents


def _ingest_agent(app: faust.App, agents: Agents, kind: str, topic: Any) -> None:
    async def ingest_agent(stream: Any) -> None:
        if agents.runtime.rules is None:
            await agents.control_ready.wait()
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            await _acknowledged_once_handled(events, _ingest_batch(agents, kind, events))

    app.agent(topic, name=f"ingest-{kind}")(ingest_agent)


async def _ingest_batch(agents: Agents, kind: str, events: Sequence[Any]) -> None:
    deliveries = [d for event in events for d in await agents.ingest_one(kind, event.message)]
    await asyncio.gather(*deliveries)


async def _seed_if_empty(agents: Agents, topic: str, records: list, seed: Callable[[], list[tuple[bytes, bytes]]]) -> list:
    if records:
        return records
    seeded = seed()
    for key, value in seeded:
        await _send_when_ready(agents.app, topic, key, value)
    log.info("seeded control topic=%s records=%d", topic, len(seeded))
    return seeded


async def _send_when_ready(app: faust.App, topic: str, key: bytes, value: bytes, timeout: float = 30.0) -> None:
    """Send and wait; under `faust.Worker` control tasks can run before the producer is up, so retry NotReady."""
    from faust.exceptions import NotReady

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await app.producer.send_and_wait(topic, key, value, None, None, {})
            return
        except NotReady:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _follow_rules(agents: Agents) -> None:
    rt = agents.runtime
    topic = agents.topics.rules
    feed = control_log_for(rt.settings, topic)
    await feed.start()
    records = await _seed_if_empty(agents, topic, await feed.read_to_end(), lambda: [(b"active", _rules_file(rt))])
    for _, value in records:
        rt.apply_rules_document(value, source=f"{topic} (startup)")
    if rt.rules is None:
        log.error("no valid rules on %s; the worker waits for a valid publish", topic)
    _mark_ready(agents)
    try:
        async for _, value in feed.follow():
            rt.apply_rules_document(value, source=topic)
            _mark_ready(agents)
    finally:
        await feed.stop()


def _mark_ready(agents: Agents) -> None:
    """Agents start work once the first valid rules, the full region set and the queue topics are in place."""
    if agents.runtime.rules is not None and agents.regions_loaded and agents.queues_declared:
        agents.control_ready.set()


async def _declare_queues(agents: Agents) -> None:
    """Create every community's and street's triage topic up front (concurrently), not on the hot path."""
    rt = agents.runtime
    communities = list(rt.communities)
    declarations = [agents.topics.triage(c.code) for c in communities] + [agents.topics.triage("unassigned")]
    declarations += [agents.topics.street(street) for street in sorted({c.street for c in communities if c.street})]
    declarations.append(agents.topics.street("unassigned"))
    declarations.append(agents.topics.dead_letters.maybe_declare())
    for start in range(0, len(declarations), 50):
        await asyncio.gather(*declarations[start:start + 50])
    agents.queues_declared = True
    log.info("queue topics declared count=%d", len(declarations))
    _mark_ready(agents)


async def _follow_regions(agents: Agents) -> None:
    rt = agents.runtime
    topic = agents.topics.risk_regions
    feed = control_log_for(rt.settings, topic)
    await feed.start()
    records = await _seed_if_empty(agents, topic, await feed.read_to_end(), lambda: _regions_file(rt))
    rt.load_regions_bulk(records)
    agents.regions_loaded = True
    _mark_ready(agents)
    try:
        async for key, value in feed.follow():
            change = rt.apply_region_record(key, value)
            if change is not None and change.sweep:
                try:
                    await _sweep(agents, change)
                except Exception:
                    log.exception("sweep failed region=%s", change.region_id)
    finally:
        await feed.stop()


async def _sweep(agents: Agents, change: RegionChange) -> None:
    """Flag everyone this worker holds who was in a newly designated or raised region."""
    from geo.sweep import sweep

    rt = agents.runtime
    started = asyncio.get_running_loop().time()
    pre = timedelta(seconds=rt.rules.windows.pre_designation if rt.rules is not None else 0)
    hits = sweep(rt.places, [change.region], pre_designation=pre)
    people = sorted(set(hits["person_key"])) if len(hits) else []
    for person_key in people:
        await agents.topics.person_events.send(
            key=person_key.encode(), value=orjson.dumps({"region_id": change.region_id}), headers={REEVALUATE: b"1"}
        )
    rt.metrics.sweep_seconds.observe(asyncio.get_running_loop().time() - started)
    rt.metrics.sweep_flagged.inc(len(people))
    log.info("sweep region=%s places=%d people=%d", change.region_id, len(rt.places), len(people))


def _rules_file(rt: Runtime) -> bytes:
    return rt.settings.path(rt.settings.rules).read_bytes()


def _regions_file(rt: Runtime) -> list[tuple[bytes, bytes]]:
    from geo.load import load_regions, region_to_feature

    return [
        (r.id.encode(), orjson.dumps(region_to_feature(r)))
        for r in load_regions(rt.settings.path(rt.settings.regions))
    ]

