"""Key-group testing compliance: who is on time, per group and street, and when a reminder is due.

A member is on time at `at` when a negative NAT was sampled within their group's `every_hours`
before `at`. A person in two groups counts in both. Pure: the offline `epiflow groups status`
and the worker's dashboard figures both come from `group_status`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.errors import RejectedEvent
from pipeline.ingest import Observer
from pipeline.key_groups import KeyGroup, KeyGroups
from pipeline.rosters import RosterEntry
from pipeline.state import Nat, Observation, states_of

__all__ = [
    "GroupStatus",
    "Reminder",
    "StreetStatus",
    "group_status",
    "last_negative",
    "last_negatives_of_inputs",
    "next_check",
    "on_time",
    "reminder_due",
    "reminder_message",
    "status_json",
    "street_status",
]


def _rate(on_time: int, enrolled: int) -> float | None:
    """The on-time share, four places; None when nobody is enrolled (no rate, rather than 0%)."""
    return round(on_time / enrolled, 4) if enrolled else None


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """One group's figures at a moment; `rate` is None when nobody is enrolled."""

    id: str
    name_zh: str
    name_en: str
    every_hours: int
    enrolled: int
    on_time: int
    overdue: tuple[str, ...]

    @property
    def rate(self) -> float | None:
        return _rate(self.on_time, self.enrolled)


@dataclass(frozen=True, slots=True)
class StreetStatus:
    group: str
    street: str
    enrolled: int
    on_time: int

    @property
    def rate(self) -> float | None:
        return _rate(self.on_time, self.enrolled)


@dataclass(frozen=True, slots=True)
class Reminder:
    """An overdue period of one member of one group: `period_start` is when this period's reminder fell due."""

    group: str
    period_start: datetime
    last_negative: datetime | None


def last_negative(nats: Iterable[Nat], at: datetime) -> datetime | None:
    """When the latest negative NAT sampled no later than `at` was sampled."""
    cut = at.timestamp()
    sampled = [n.sampled for n in nats if n.result == "negative" and n.sampled <= cut]
    return datetime.fromtimestamp(max(sampled), UTC) if sampled else None


def last_negatives_of_inputs(
    records: Iterable[bytes], *, secret: bytes, at: datetime, lookback: timedelta, horizon: timedelta
) -> tuple[dict[str, datetime | None], int]:
    """Each person's last negative sample at `at`, from raw input records folded as the join folds them
    (so NAT reports attached to declarations count too); plus how many records ingest refused."""
    observe = Observer(secret=secret, now=at, lookback=lookback)
    grouped: dict[str, list[Observation]] = {}
    refused = 0
    for raw in records:
        try:
            observations = observe(raw)
        except RejectedEvent:
            refused += 1
            continue
        for seen in observations:
            grouped.setdefault(seen.person_key, []).append(seen)
    states = states_of(grouped, horizon=horizon)
    return {key: last_negative(state.nats, at) for key, state in states.items()}, refused


def on_time(last: datetime | None, group: KeyGroup, at: datetime) -> bool:
    return last is not None and at - group.every <= last <= at


def _members(entries: Iterable[RosterEntry]) -> dict[tuple[str, str], RosterEntry]:
    """One entry per (group, person); a person listed twice in a group counts once, the later row wins."""
    out: dict[tuple[str, str], RosterEntry] = {}
    for entry in entries:
        out[(entry.group, entry.person_key)] = entry
    return out


def group_status(
    groups: KeyGroups, entries: Iterable[RosterEntry], last: Mapping[str, datetime | None], at: datetime
) -> list[GroupStatus]:
    """Per group of the document (in its order): enrolled, on time, and the masked IDs of the overdue, sorted."""
    by_group: dict[str, list[RosterEntry]] = {}
    for (group_id, _), entry in _members(entries).items():
        by_group.setdefault(group_id, []).append(entry)
    out = []
    for group in groups.groups:
        mine = by_group.get(group.id, [])
        late = sorted(e.masked_id for e in mine if not on_time(last.get(e.person_key), group, at))
        out.append(GroupStatus(group.id, group.name_zh, group.name_en, group.every_hours, len(mine),
                               len(mine) - len(late), tuple(late)))
    return out


def street_status(
    groups: KeyGroups, entries: Iterable[RosterEntry], last: Mapping[str, datetime | None], at: datetime,
    street_of: Callable[[str], str | None],
) -> list[StreetStatus]:
    """Per (group, street) with members: enrolled and on time; a community outside the map is street ''."""
    counts: dict[tuple[str, str], list[int]] = {}
    for (group_id, key), entry in _members(entries).items():
        group = groups.get(group_id)
        if group is None:
            continue
        cell = counts.setdefault((group_id, street_of(entry.community) or ""), [0, 0])
        cell[0] += 1
        cell[1] += on_time(last.get(key), group, at)
    order = {g: i for i, g in enumerate(groups.ids)}
    return [StreetStatus(g, s, n, ok) for (g, s), (n, ok) in sorted(counts.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]


def status_json(statuses: Iterable[GroupStatus]) -> dict[str, Any]:
    """`{"groups": [{"id", "enrolled", "on_time", "rate", "overdue"}, …]}`, as the CLI prints and the dashboard serves."""
    return {"groups": [{
        "id": s.id, "name": {"zh": s.name_zh, "en": s.name_en}, "every_hours": s.every_hours, "enrolled": s.enrolled,
        "on_time": s.on_time, "rate": s.rate, "overdue": list(s.overdue),
    } for s in statuses]}


def reminder_due(last: datetime | None, enrolled_at: datetime, group: KeyGroup, now: datetime) -> Reminder | None:
    """The overdue period `now` falls in, or None while on time.

    The first period starts `every_hours` after the last negative sample (or after enrolment, for
    someone never tested); each further `every_hours` overdue is a new period, and gets its own reminder.
    """
    base = last if last is not None and last <= now else enrolled_at
    due = base + group.every
    if now < due or on_time(last, group, now):
        return None
    periods = (now - due) // group.every
    return Reminder(group.id, due + periods * group.every, last)


def next_check(last: datetime | None, enrolled_at: datetime, group: KeyGroup, now: datetime) -> datetime:
    """The earliest moment the member's reminder state for `group` can change (the next period start)."""
    base = last if last is not None and last <= now else enrolled_at
    due = base + group.every
    if now < due:
        return due
    return due + ((now - due) // group.every + 1) * group.every


def reminder_message(entry: RosterEntry, group: KeyGroup, reminder: Reminder, sent_at: datetime) -> dict[str, Any]:
    """The `test_reminder` message for a community's (or enterprise's) queue; `message_id` is deterministic."""
    digest = hashlib.sha256(f"test_reminder|{entry.person_key}|{group.id}|{reminder.period_start.isoformat()}".encode())
    return {
        "kind": "test_reminder", "message_id": digest.hexdigest()[:32], "person_key": entry.person_key,
        "masked_id": entry.masked_id, "name": entry.name, "phone": entry.phone, "community": entry.community,
        "enterprise": entry.enterprise, "group": group.id, "group_name": {"zh": group.name_zh, "en": group.name_en},
        "every_hours": group.every_hours,
        "last_negative_sampled_at": reminder.last_negative.isoformat() if reminder.last_negative else None,
        "overdue_since": reminder.period_start.isoformat(), "flagged_at": sent_at.isoformat(),
        "text": f"请于今日完成核酸检测（{group.name_zh}，每{_hours_zh(group.every_hours)}一次）",
    }


def _hours_zh(hours: int) -> str:
    if hours % 24 == 0:
        days = hours // 24
        return "天" if days == 1 else ("周" if days == 7 else f"{days}天")
    return f"{hours}小时"

