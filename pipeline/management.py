"""After triage: the action a person is managed under, the tests it obliges, and when it ends.

Pure. `manage` decides which action a person is managed under from the latest verdict (a more severe
action starts a new episode; the rule window running out does not end one); `view` reads the tests met,
due and missed from the person's NAT results at a time; `announce` says what to tell the community
(`test_overdue`, `released`) exactly once per episode.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal

import msgspec

from pipeline.events import LoopMessage, Reason
from pipeline.obligations import Obligations
from pipeline.rules import Rules
from pipeline.state import Managed, PersonState

__all__ = [
    "NONE",
    "Management",
    "Notice",
    "Status",
    "TestDue",
    "TestStatus",
    "announce",
    "day_start",
    "exposures_of",
    "manage",
    "notice_messages",
    "reaches_street",
    "notice_id",
    "view",
]

Status = Literal["none", "active", "overdue", "released"]
#: `waived`: the test's day ended before the person was put under management.
TestStatus = Literal["met", "due", "missed", "waived"]
NoticeKind = Literal["test_overdue", "released"]


@dataclass(frozen=True, slots=True)
class TestDue:
    """One required test: its number, its day of the episode (None when counted in an hour window), deadline, status."""

    number: int
    day: int | None
    due: int
    status: TestStatus
    sampled: int | None = None


@dataclass(frozen=True, slots=True)
class Management:
    """A person's management at one time; `ends` is when the duration (or the test window) runs out."""

    status: Status
    action: str | None
    day: int | None
    tests: tuple[TestDue, ...]
    next_due: int | None
    ends: int | None
    case_id: str = ""
    #: when this can next change without a new event (a deadline, or the end of the duration); None: never
    wake: int | None = None

    def to_json(self, tz: tzinfo) -> dict:
        """The `management` object of an `epiflow evaluate` line (times ISO 8601 in the display zone)."""
        return {
            "status": self.status,
            "action": self.action,
            "day": self.day,
            "tests": [
                {"test": t.number, "day": t.day, "due": _iso(t.due, tz), "status": t.status,
                 "sampled": None if t.sampled is None else _iso(t.sampled, tz)}
                for t in self.tests
            ],
            "next_due": None if self.next_due is None else _iso(self.next_due, tz),
        }


#: Not managed.
NONE = Management("none", None, None, (), None, None)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to tell the community: a required test missed (`test` names it), or the management ended."""

    kind: NoticeKind
    test: TestDue | None = None


def _iso(t: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


def _local_day(t: int, tz: tzinfo) -> int:
    return _day_of_hour(t // 3600, tz) if _whole_hours(tz) else datetime.fromtimestamp(t, tz).date().toordinal()


@functools.lru_cache(maxsize=4096)
def _day_of_hour(hour: int, tz: tzinfo) -> int:
    return datetime.fromtimestamp(hour * 3600, tz).date().toordinal()


@functools.lru_cache(maxsize=64)
def _whole_hours(tz: tzinfo) -> bool:
    """True when the zone's offsets are whole hours (Asia/Shanghai): a local day then never starts inside an hour."""
    probe = datetime(2022, 1, 1, tzinfo=tz), datetime(2022, 7, 1, tzinfo=tz)
    return all((p.utcoffset() or timedelta(0)).total_seconds() % 3600 == 0 for p in probe)


@functools.lru_cache(maxsize=4096)
def day_start(ordinal: int, tz: tzinfo) -> int:
    """Epoch seconds of midnight (display zone) at the start of a day given as a date ordinal."""
    return int(datetime.combine(date.fromordinal(ordinal), time(0), tzinfo=tz).timestamp())


def _obligations(rules: Rules, action: str) -> Obligations | None:
    found = rules.actions.get(action)
    return None if found is None else found.obligations


def _anchor(state: PersonState, reasons_at: list[int], ob: Obligations, now: int) -> int:
    """The moment day 1 is counted from: the last exposure the action's rules name, else arrival, else now."""
    if ob.day_one == "exposure" and reasons_at:
        return min(max(reasons_at), now)
    d = state.declaration
    if d is not None:
        return d.arrival
    return now


def _ends(record: Managed, ob: Obligations, tz: tzinfo) -> int | None:
    if ob.counted:
        return record.start + (ob.within or 0)
    if ob.duration_days is not None:
        return day_start(record.day_one + ob.duration_days, tz)
    return None


def manage(
    record: Managed | None,
    state: PersonState,
    rules: Rules,
    action: str,
    exposures: list[int],
    case_id: str,
    now: int,
) -> Managed | None:
    """The management after a verdict of `action` at `now` (`exposures`: the times its rules' reasons name).

    A managed action starts an episode when there is none, when it is more severe than the current one,
    or when the current one has ended and this is a new case. A lower verdict while the episode still
    runs (new evidence) follows the verdict; once the episode's time is up only `view` ends it.
    """
    ob = _obligations(rules, action)
    current = None if record is None else rules.actions.get(record.action)
    severity = rules.actions[action].severity if action in rules.actions else 0

    def begin() -> Managed:
        start = _anchor(state, exposures, ob, now)
        if ob.counted and start + (ob.within or 0) <= now:
            start = now  # flagged after the window ran out: it counts from now
        return Managed(action, _local_day(start, rules.tz), start, now, case_id)

    if record is None:
        return begin() if ob is not None else None
    if current is None:
        return begin() if ob is not None else record
    if ob is not None and (severity > current.severity or (record.ended and case_id and case_id != record.case_id)):
        return begin()
    if record.ended or severity >= current.severity:
        return record
    ends = _ends(record, current.obligations, rules.tz) if current.obligations is not None else None
    if ends is not None and now >= ends:
        return record
    return begin() if ob is not None else None


def _day_tests(record: Managed, ob: Obligations, state: PersonState, tz: tzinfo, now: int) -> list[TestDue]:
    negatives: dict[int, int] = {}
    for nat in state.nats:
        if nat.result == "negative":
            day = _local_day(nat.sampled, tz)
            negatives.setdefault(day, nat.sampled)
    out = []
    for number, n in enumerate(ob.test_days, 1):
        day = record.day_one + n - 1
        deadline = day_start(day + 1, tz)
        sampled = negatives.get(day)
        if sampled is not None:
            status: TestStatus = "met"
        elif deadline <= record.since:
            status = "waived"
        elif deadline <= now:
            status = "missed"
        else:
            status = "due"
        out.append(TestDue(number, n, deadline, status, sampled))
    return out


def _counted_tests(record: Managed, ob: Obligations, state: PersonState, now: int) -> list[TestDue]:
    deadline = record.start + (ob.within or 0)
    picked: list[int] = []
    for nat in sorted(state.nats, key=lambda n: n.sampled):
        if nat.result == "negative" and record.start <= nat.sampled <= deadline and len(picked) < ob.tests \
                and (not picked or nat.sampled - picked[-1] >= ob.min_gap):
            picked.append(nat.sampled)
    out = []
    for number in range(1, ob.tests + 1):
        if number <= len(picked):
            out.append(TestDue(number, None, deadline, "met", picked[number - 1]))
        else:
            out.append(TestDue(number, None, deadline, "missed" if deadline <= now else "due"))
    return out


def view(record: Managed | None, state: PersonState, rules: Rules, now: int) -> Management:
    """The management of a person at `now`: tests met, due and missed, next deadline, status."""
    if record is None:
        return NONE
    tz = rules.tz
    day = _local_day(now, tz) - record.day_one + 1
    ob = _obligations(rules, record.action)
    if ob is None:
        return Management("released" if record.ended else "active", record.action, day, (), None, None, record.case_id)
    tests = _counted_tests(record, ob, state, now) if ob.counted else _day_tests(record, ob, state, tz, now)
    ends = _ends(record, ob, tz)
    pending = [t.due for t in tests if t.status == "due"]
    next_due = min(pending) if pending else None
    done = all(t.status in ("met", "waived") for t in tests)
    status: Status
    if record.ended:
        status = "released"
    elif any(t.status == "missed" for t in tests):
        status = "overdue"
    elif ob.released_by == "schedule" and done and ends is not None and ends <= now:
        status = "released"
    elif ob.released_by == "tests" and done and tests:
        status = "released"
    else:
        status = "active"
    wake = next_due
    if status == "active" and done and ob.released_by == "schedule" and ends is not None and ends > now:
        wake = ends if wake is None else min(wake, ends)
    if status == "released" and not record.ended:
        wake = now
    return Management(status, record.action, day, tuple(tests), next_due, ends, record.case_id, wake)


def announce(record: Managed | None, seen: Management, now: int) -> tuple[Managed | None, list[Notice]]:
    """What to tell the community about `seen` that it has not been told; the record marks it told."""
    if record is None or seen.status == "none":
        return record, []
    notices: list[Notice] = []
    told = record.told
    for t in seen.tests:
        bit = 1 << (t.number - 1)
        if t.status == "missed" and not told & bit:
            told |= bit
            notices.append(Notice("test_overdue", t))
    ended = record.ended
    if seen.status == "released" and not ended:
        ended = now
        notices.append(Notice("released"))
    if told == record.told and ended == record.ended:
        return record, notices
    return msgspec.structs.replace(record, told=told, ended=ended), notices


def exposures_of(rules: Rules, action: str, reasons: Iterable[Reason]) -> list[int]:
    """Epoch times named by the reasons of the rules that gave `action` (the last exposure is the latest)."""
    by_rule = _rule_actions(rules)
    return [int(r.at.timestamp()) for r in reasons if r.at is not None and by_rule.get(r.rule) == action]


@functools.lru_cache(maxsize=8)
def _rule_actions(rules: Rules) -> dict[str, str]:
    return {rule.id: rule.action.name for rule in rules.rules}


def notice_id(person_key: str, record: Managed, notice: Notice) -> str:
    """Deterministic id of a notice: the same episode and the same missed test (or release) give the same id."""
    what = notice.kind if notice.test is None else f"{notice.kind}:{notice.test.number}"
    digest = hashlib.sha256("|".join((person_key, record.case_id, record.action, str(record.since), what)).encode())
    return "msg-" + digest.hexdigest()[:24]


def notice_messages(state: PersonState, seen: Management, notices: Iterable[Notice], tz: tzinfo, now: int,
                    unassigned: str = "unassigned") -> list[LoopMessage]:
    """The community messages for `notices` about `state` (whose `managed` is the record they came from)."""
    record = state.managed
    if record is None:
        return []
    last = state.last
    community = last.community if last is not None and last.community else unassigned
    address = state.declaration.address if state.declaration is not None else ""
    body = seen.to_json(tz)
    at = datetime.fromtimestamp(now, tz)
    out = []
    for notice in notices:
        test = None
        if notice.test is not None:
            t = notice.test
            test = {"test": t.number, "day": t.day, "due": _iso(t.due, tz)}
        out.append(LoopMessage(
            kind=notice.kind, message_id=notice_id(state.person_key, record, notice), case_id=record.case_id,
            person_key=state.person_key, masked_id=state.masked_id, name=state.name, phone=state.phone,
            community=community, action=record.action, at=at, management=body, test=test, address=address,
        ))
    return out


def reaches_street(message: LoopMessage) -> bool:
    """Whether a notice also goes to its street's queue: a missed test does, a release does not."""
    return message.kind == "test_overdue"
