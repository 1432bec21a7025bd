"""Figures after triage for the command centre: people under management by status and street, tests due
today, overdue tests; and the daily report's part, from the `test_overdue` / `released` messages of the day.

Pure: the dashboard gives the rows its workers hold, the daily report the records of the community topics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any

import pandas as pd

__all__ = ["MANAGEMENT_COLUMNS", "ManagedRow", "management_day", "management_summary"]

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
