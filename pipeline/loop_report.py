"""Figures after triage for the command centre: people under management by status and street, tests due
today, overdue tests; and the daily report's part, from the `test_overdue` / `released` messages of the day
and, for requests and transfers, from the day's case events.

Pure: the dashboard gives the rows its workers hold, the daily report the records of the community topics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any

import pandas as pd

from pipeline.requests import median_minutes

__all__ = ["MANAGEMENT_COLUMNS", "REQUEST_COLUMNS", "TRANSFER_COLUMNS", "ManagedRow", "management_day", "management_summary",
           "requests_day", "transfers_day"]

#: (status, action, community, next due epoch or None, day the status was reached, ISO date)
ManagedRow = tuple[str, str, str, float | None, str]
MANAGEMENT_COLUMNS = ["street", "released", "tests_missed", "people_overdue"]
_UNASSIGNED_STREET = "未分配街道"


def management_summary(rows: Iterable[ManagedRow], now: datetime, zone: tzinfo,
                       streets: Mapping[str, str | None]) -> dict[str, Any]:
    """People under management by status (active, overdue, released today) in all and per street; tests due today."""
    today = now.astimezone(zone).date()
    day = today.isoformat()
    totals: Counter[str] = Counter()
    per_street: dict[str, Counter[str]] = {}
    due_today = 0
    for status, _action, community, next_due, since in rows:
        if status == "released" and since != day:
            continue
        key = "released_today" if status == "released" else status
        street = streets.get(community) or _UNASSIGNED_STREET
        totals[key] += 1
        per_street.setdefault(street, Counter())[key] += 1
        if next_due is not None and datetime.fromtimestamp(next_due - 1, zone).date() == today:
            due_today += 1
    keys = ("active", "overdue", "released_today")
    return {
        "by_status": {k: totals.get(k, 0) for k in keys},
        "tests_due_today": due_today,
        "streets": [{"street": s, **{k: c.get(k, 0) for k in keys}}
                    for s, c in sorted(per_street.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))],
    }


def _on(value: Any, day: date, zone: tzinfo) -> bool:
    try:
        return datetime.fromisoformat(str(value)).astimezone(zone).date() == day
    except ValueError:
        return False


def management_day(messages: Iterable[Mapping[str, Any]], day: date, zone: tzinfo,
                   streets: Mapping[str, str | None]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per street, people released on `day`, tests missed on `day`, and people overdue at the end of it
    (their latest `test_overdue` or `released` message up to then says overdue); plus the district totals."""
    released: dict[str, set[str]] = {}
    missed: Counter[str] = Counter()
    latest: dict[str, tuple[str, str, str]] = {}
    end = datetime.combine(day, datetime.max.time(), zone)
    for m in messages:
        kind = m.get("kind")
        if kind not in ("test_overdue", "released"):
            continue
        street = streets.get(str(m.get("community", ""))) or _UNASSIGNED_STREET
        at = str(m.get("at", ""))
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            continue
        if moment > end:
            continue
        person = str(m.get("person_key", ""))
        if person not in latest or at >= latest[person][0]:
            latest[person] = (at, kind, street)
        if not _on(at, day, zone):
            continue
        if kind == "released":
            released.setdefault(street, set()).add(person)
        else:
            missed[street] += 1
    overdue: Counter[str] = Counter(street for _, kind, street in latest.values() if kind == "test_overdue")
    names = sorted(set(released) | set(missed) | set(overdue))
    frame = pd.DataFrame(
        [{"street": s, "released": len(released.get(s, ())), "tests_missed": missed.get(s, 0),
          "people_overdue": overdue.get(s, 0)} for s in names],
        columns=MANAGEMENT_COLUMNS,
    )
    totals = {"people_released": int(frame["released"].sum()), "tests_missed": int(frame["tests_missed"].sum()),
              "people_overdue": int(frame["people_overdue"].sum())}
    return frame, totals


REQUEST_COLUMNS = ["street", "requests_posted", "requests_answered", "requests_open", "requests_overdue",
                   "median_response_minutes"]
TRANSFER_COLUMNS = ["case_id", "street", "community", "masked_id", "action", "stage", "accepted_at", "received_at",
                    "transfer_minutes", "reception_minutes"]


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _minutes(later: datetime | None, earlier: datetime | None) -> float | None:
    return None if later is None or earlier is None else round((later - earlier).total_seconds() / 60, 1)


def requests_day(case_events: Iterable[Mapping[str, Any]], community_of: Mapping[str, str], day: date, zone: tzinfo,
                 streets: Mapping[str, str | None], as_of: datetime) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per street: requests posted and answered on `day`, those unanswered at `as_of` and past their deadline
    then, and the median response (posted → answered) of the day's answers; plus the district totals."""
    posted: dict[str, tuple[datetime, datetime | None, str]] = {}
    answered: dict[str, datetime] = {}
    for e in case_events:
        at = _moment(e.get("at"))
        rid = str(e.get("request_id") or "")
        if at is None or not rid or at > as_of:
            continue
        if e.get("kind") == "request" and rid not in posted:
            community = community_of.get(str(e.get("case_id", "")), "")
            posted[rid] = (at, _moment(e.get("due_at")), streets.get(community) or _UNASSIGNED_STREET)
        elif e.get("kind") == "answered" and (rid not in answered or at < answered[rid]):
            answered[rid] = at
    rows: dict[str, dict[str, Any]] = {}
    minutes: dict[str, list[float]] = {}
    for rid, (at, due, street) in posted.items():
        row = rows.setdefault(street, {"street": street, **{c: 0 for c in REQUEST_COLUMNS[1:-1]}})
        done = answered.get(rid)
        row["requests_posted"] += at.astimezone(zone).date() == day
        if done is None:
            row["requests_open"] += 1
            row["requests_overdue"] += due is not None and due <= as_of
        elif done.astimezone(zone).date() == day:
            row["requests_answered"] += 1
            minutes.setdefault(street, []).append(_minutes(done, at) or 0.0)
    frame = pd.DataFrame([{**rows[s], "median_response_minutes": median_minutes(minutes.get(s, ()))}
                          for s in sorted(rows) if any(rows[s][c] for c in REQUEST_COLUMNS[1:-1])],
                         columns=REQUEST_COLUMNS)
    totals: dict[str, Any] = {c: int(frame[c].sum()) for c in REQUEST_COLUMNS[1:-1]}
    totals["median_response_minutes"] = median_minutes(m for ms in minutes.values() for m in ms)
    return frame, totals


def transfers_day(case_events: Iterable[Mapping[str, Any]], shown: Mapping[str, Mapping[str, Any]], day: date,
                  zone: tzinfo, streets: Mapping[str, str | None], as_of: datetime) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The transfers received on `day` with their transfer (accepted → received) and reception (arrival → received)
    minutes, and those under way at `as_of`; `shown` is each case's latest triage message. Plus their medians."""
    accepted: dict[str, datetime] = {}
    stages: dict[str, dict[str, tuple[datetime, datetime | None]]] = {}
    for e in case_events:
        at = _moment(e.get("at"))
        case_id = str(e.get("case_id", ""))
        kind = e.get("kind")
        if at is None or at > as_of:
            continue
        if kind in ("accepted", "resolved") and case_id not in accepted:
            accepted[case_id] = at
        elif kind in ("dispatched", "picked_up", "received"):
            stages.setdefault(case_id, {}).setdefault(str(kind), (at, _moment(e.get("arrived_at"))))
    out = []
    for case_id, done in stages.items():
        received = done.get("received")
        if received is not None and received[0].astimezone(zone).date() != day:
            continue
        message = shown.get(case_id, {})
        community = str(message.get("community", ""))
        last = next(k for k in ("received", "picked_up", "dispatched") if k in done)
        out.append({
            "case_id": case_id, "street": streets.get(community) or _UNASSIGNED_STREET, "community": community,
            "masked_id": str(message.get("masked_id", "")), "action": str(message.get("action", "")), "stage": last,
            "accepted_at": accepted[case_id].astimezone(zone).isoformat() if case_id in accepted else None,
            "received_at": None if received is None else received[0].astimezone(zone).isoformat(),
            "transfer_minutes": None if received is None else _minutes(received[0], accepted.get(case_id)),
            "reception_minutes": None if received is None else _minutes(received[0], received[1]),
        })
    frame = pd.DataFrame(sorted(out, key=lambda r: (r["received_at"] is not None, r["street"], r["case_id"])),
                         columns=TRANSFER_COLUMNS)
    got = [r for r in out if r["received_at"] is not None]
    totals = {
        "transfers_received": len(got), "transfers_in_progress": len(out) - len(got),
        "median_transfer_minutes": median_minutes(r["transfer_minutes"] for r in got if r["transfer_minutes"] is not None),
        "median_reception_minutes": median_minutes(r["reception_minutes"] for r in got if r["reception_minutes"] is not None),
    }
    return frame, totals
