"""Key groups on the stream: the key-groups control topic, the roster ingest, the members table, reminders.

Roster rows arrive on `<prefix>.rosters` (from `epiflow groups load` or the enterprise API); each is
validated and pseudonymised by `pipeline.rosters` or dead-lettered with its file, line and reason;
enrolments go to `<prefix>.roster-members`, keyed by person key (co-partitioned with the person
table), and into the members table. Last negative samples are read from the person table, which the
NAT results already fill; a timer sends one `test_reminder` per overdue period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import faust
import orjson
from prometheus_client import Counter, Gauge

from pipeline.compliance import (
    group_status,
    last_negative,
    next_check,
    reminder_due,
    reminder_message,
    status_json,
    street_status,
)
from pipeline.errors import PipelineError, RejectedEvent
from pipeline.key_groups import KeyGroups, parse_key_groups
from pipeline.rosters import RosterEntry, entry_from_json, entry_to_json, roster_entry
from pipeline.state import state_from_bytes
from streams.control import control_log_for
from streams.tables import raw_table
from streams.timers import every
from streams.topics import topic_part

if TYPE_CHECKING:
    from streams.agents import Agents

__all__ = ["KeyGroupsWorker", "enterprise_topic_name", "register_key_groups"]

log = logging.getLogger(__name__)

#: Seconds between two looks for members whose reminder period has begun.
REMINDER_INTERVAL = 1.0
BATCH_MAX = 256
BATCH_WITHIN = 0.01


def enterprise_topic_name(prefix: str, enterprise: str) -> str:
    """`<prefix>.enterprise.<enterprise>`: the queue of a key enterprise that posted a roster."""
    return f"{prefix}.enterprise.{topic_part(enterprise)}"


@dataclass
class Member:
    """What the members table holds per person: their enrolments (one per group) and the reminders sent."""

    entries: dict[str, RosterEntry]
    reminded: dict[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"entries": [orjson.loads(entry_to_json(e)) for e in self.entries.values()],
                             "reminded": self.reminded})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Member:
        doc = orjson.loads(raw)
        entries = [entry_from_json(orjson.dumps(e)) for e in doc["entries"]]
        return cls({e.group: e for e in entries}, dict(doc.get("reminded", {})))


@dataclass
class KeyGroupsWorker:
    """This worker's key groups: the active document, the members table, reminder bookkeeping."""

    agents: Agents
    members: Any
    rosters_topic: Any
    members_topic: Any
    groups: KeyGroups | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    next_due: dict[bytes, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {
        "roster_rows": 0, "enrolled": 0, "reminders": 0})
    reminders_by_group: dict[str, int] = field(default_factory=dict)
    _queues: dict[str, Any] = field(default_factory=dict)

    def apply_document(self, raw: bytes | None, source: str) -> bool:
        """Switch to a published key-groups document, or keep the last good one and record why."""
        rt = self.agents.runtime
        if raw is None:
            rt._refuse("key_groups", "empty", f"{source}: an empty record does not replace the active key groups")
            return False
        try:
            groups = parse_key_groups(raw.decode("utf-8"), source=source)
        except (PipelineError, UnicodeDecodeError) as exc:
            rt._refuse("key_groups", "invalid", str(exc))
            return False
        self.groups = groups
        self.next_due = dict.fromkeys(self.next_due, 0.0)
        _metrics(rt.metrics).version.clear()
        _metrics(rt.metrics).version.labels(version=groups.version).set(1)
        log.info("key groups active version=%s source=%s groups=%d", groups.version, source, len(groups.groups))
        self.ready.set()
        return True

    async def ingest_rows(self, events: Sequence[Any]) -> None:
        """Roster rows → enrolments on the members topic, or dead letters naming file, line and reason."""
        if self.groups is None:
            await self.ready.wait()
        agents = self.agents
        secret = agents.runtime.settings.secret_bytes
        deliveries = []
        for event in events:
            message = event.message
            self.counts["roster_rows"] += 1
            try:
                entry = roster_entry(message.value or b"", secret=secret, groups=self.groups,  # type: ignore[arg-type]
                                     communities=agents.runtime.communities)
            except RejectedEvent as exc:
                deliveries.append(await agents.dead_letter(message, exc.reason, exc.detail, "roster_dead_lettered"))
                continue
            except Exception as exc:  # one bad row never stops the agent
                log.exception("roster ingest failed topic=%s partition=%s offset=%s", message.topic, message.partition,
                              message.offset)
                deliveries.append(await agents.dead_letter(message, "internal_error", type(exc).__name__,
                                                           "roster_dead_lettered"))
                continue
            deliveries.append(await agents.send(self.members_topic, entry.person_key.encode(), entry_to_json(entry)))
        await asyncio.gather(*deliveries)

    async def enrol(self, events: Sequence[Any]) -> None:
        """Fold enrolments into the members table (a person's row per group is replaced by the newer one)."""
        changed: dict[bytes, tuple[Member, int]] = {}
        for event in events:
            key = event.key
            entry = entry_from_json(event.value)
            if key not in changed:
                raw = self.members.get_in(key, event.message.partition)
                changed[key] = (Member.from_bytes(raw) if raw else Member({}), event.message.partition)
            member = changed[key][0]
            known = member.entries.get(entry.group)
            # loading a roster again keeps the first enrolment time, so the overdue periods (and the one
            # reminder each) do not move; contact details and community follow the newer row
            member.entries[entry.group] = entry if known is None else replace(entry, enrolled_at=known.enrolled_at)
            self.counts["enrolled"] += 1
        written = await self.members.put_many([(k, m.to_bytes(), p) for k, (m, p) in changed.items()])
        await asyncio.gather(*written)
        for key in changed:
            self.next_due[key] = 0.0

    def _last_negative(self, key: bytes, now: datetime) -> datetime | None:
        persons = self.agents.persons
        raw = persons.get_in(key, persons.partition_for_key(key))
        return last_negative(state_from_bytes(raw).nats, now) if raw else None

    async def remind(self) -> None:
        """Send a `test_reminder` for every local member whose overdue period began and was not reminded yet."""
        groups = self.groups
        if groups is None:
            return
        now = self.agents.runtime.clock()
        cut = now.timestamp()
        for key in [k for k, at in self.next_due.items() if at <= cut]:
            partition = self.members.partition_for_key(key)
            raw = self.members.get_in(key, partition)
            if not raw:
                self.next_due.pop(key, None)
                continue
            member = Member.from_bytes(raw)
            last = self._last_negative(key, now)
            sent = False
            upcoming = []
            for entry in member.entries.values():
                group = groups.get(entry.group)
                if group is None:
                    continue
                enrolled = datetime.fromisoformat(entry.enrolled_at) if entry.enrolled_at else now
                upcoming.append(next_check(last, enrolled, group, now).timestamp())
                due = reminder_due(last, enrolled, group, now)
                if due is None or member.reminded.get(group.id) == due.period_start.isoformat():
                    continue
                body = orjson.dumps(reminder_message(entry, group, due, now))
                deliveries = [await self.agents.send(await self.agents.topics.triage(entry.community), key, body)]
                if entry.enterprise:
                    deliveries.append(await self.agents.send(await self._enterprise(entry.enterprise), key, body))
                await asyncio.gather(*deliveries)
                member.reminded[group.id] = due.period_start.isoformat()
                self.counts["reminders"] += 1
                self.reminders_by_group[group.id] = self.reminders_by_group.get(group.id, 0) + 1
                _metrics(self.agents.runtime.metrics).reminders.labels(group=group.id).inc()
                sent = True
            if sent:
                await (await self.members.put(key, member.to_bytes(), partition))
            self.next_due[key] = min(upcoming) if upcoming else float("inf")

    async def _enterprise(self, enterprise: str) -> Any:
        name = enterprise_topic_name(self.agents.runtime.settings.topic_prefix, enterprise)
        topic = self._queues.get(name)
        if topic is None:
            topic = self._queues[name] = _raw(self.agents.app, name, self.agents.runtime.settings.partitions)
            await topic.maybe_declare()
        return topic

    def local_entries(self) -> list[tuple[bytes, RosterEntry]]:
        return [(key, entry) for key, raw in list(self.members.items()) if raw
                for entry in Member.from_bytes(raw).entries.values()]

    def figures(self) -> dict[str, Any]:
        """Compliance per group and per street at the worker's now, reminders sent: what the dashboard shows."""
        groups = self.groups
        if groups is None:
            return {"version": None, "groups": [], "streets": [], "reminders_sent": 0}
        rt = self.agents.runtime
        now = rt.clock()
        pairs = self.local_entries()
        last = {key.decode(): self._last_negative(key, now) for key in {k for k, _ in pairs}}
        entries = [e for _, e in pairs]
        streets = street_status(groups, entries, last, now, rt.communities.street_of)
        return {
            "version": groups.version, "at": now.isoformat(), **status_json(group_status(groups, entries, last, now)),
            "streets": [{"group": s.group, "street": s.street, "enrolled": s.enrolled, "on_time": s.on_time,
                         "rate": s.rate} for s in streets],
            "reminders_sent": self.counts["reminders"], "reminders_by_group": dict(sorted(self.reminders_by_group.items())),
            "counts": {**self.counts, "roster_dead_lettered": self.agents.counts["roster_dead_lettered"]},
        }


@dataclass(frozen=True)
class _Metrics:
    reminders: Counter
    version: Gauge


_METRICS: dict[int, _Metrics] = {}


def _metrics(metrics: Any) -> _Metrics:
    """The key-group metrics on the worker's registry (made once per registry)."""
    found = _METRICS.get(id(metrics.registry))
    if found is None:
        r = metrics.registry
        found = _METRICS[id(r)] = _Metrics(
            Counter("epiflow_test_reminders", "test_reminder messages sent, per key group", ["group"], registry=r),
            Gauge("epiflow_key_groups_version_info", "Active key-groups version (label)", ["version"], registry=r),
        )
    return found


def _raw(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions, internal=True)


def register_key_groups(app: faust.App, agents: Agents) -> KeyGroupsWorker:
    """Declare the roster and members agents, the members table, the control follower and the reminder timer."""
    from streams.control import seed_if_empty

    settings = agents.runtime.settings
    kg = KeyGroupsWorker(
        agents=agents, members=raw_table(app, "key-group-members", settings.partitions),
        rosters_topic=_raw(app, settings.topic("rosters"), settings.partitions),
        members_topic=_raw(app, settings.topic("roster-members"), settings.partitions),
    )
    agents.counts.setdefault("roster_dead_lettered", 0)
    _metrics(agents.runtime.metrics)

    @app.agent(kg.rosters_topic, name="ingest-rosters")
    async def ingest_rosters(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            await agents.handover.run(events, kg.ingest_rows)

    @app.agent(kg.members_topic, name="key-group-members")
    async def members(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            await agents.handover.run(
                events, lambda batch: agents.handle_batch("key-group-members", batch, kg.enrol, "roster_dead_lettered"))

    every(app, REMINDER_INTERVAL, "reminder", kg.remind)

    @app.task
    async def key_groups_control() -> None:
        # the registrations' compacted topic is read by the daily report; created here, as the control topics are
        registrations = control_log_for(settings, settings.topic("key-enterprises"))
        await registrations.start()
        await registrations.stop()
        topic = settings.topic("key-groups")
        feed = control_log_for(settings, topic)
        await feed.start()
        seed = [(b"active", settings.path(settings.key_groups).read_bytes())]
        records = await seed_if_empty(agents, topic, await feed.read_to_end(), lambda: seed)
        for _, value in records:
            kg.apply_document(value, source=f"{topic} (startup)")
        if kg.groups is None:
            log.error("no valid key groups on %s; rosters wait for a valid publish", topic)
        try:
            async for _, value in feed.follow():
                kg.apply_document(value, source=topic)
        finally:
            await feed.stop()

    @kg.members.on_recover
    async def rebuild_due() -> None:
        kg.next_due = dict.fromkeys((k for k, raw in list(kg.members.items()) if raw), 0.0)

    return kg
