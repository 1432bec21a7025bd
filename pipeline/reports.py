"""What people read: a community's queue, the district summary for the dashboard, and the daily reports.

Pure: cases and triage messages in, rows and pandas frames out. The streaming layer collects the cases
and messages (from its tables or the topics) and renders or writes what these functions return.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from pipeline.access import mask_phone
from pipeline.cases import Case
from pipeline.errors import PipelineError

__all__ = [
    "DailyReports",
    "QueueRow",
    "colour_for",
    "community_colours",
    "daily_reports",
    "district_summary",
    "queue_rows",
    "reports_html",
]

_COLOURS = ("green", "blue", "yellow", "orange", "red")


def _check_aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise PipelineError(f"now was {now!r} but is expected to be a timezone-aware datetime")


def colour_for(severity: int, max_severity: int) -> str:
    """Five-colour scale for an action severity: 0 green; then blue, yellow, orange, red by share of the maximum."""
    if severity < 0 or max_severity < 0:
        raise PipelineError(f"severity {severity!r} / max {max_severity!r} are expected to be >= 0")
    if severity == 0 or max_severity == 0:
        return "green"
    share = severity / max_severity
    if share >= 0.8:
        return "red"
    if share >= 0.6:
        return "orange"
    if share >= 0.4:
        return "yellow"
    return "blue"


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One case as a community queue shows it."""

    case_id: str
    community: str
    street: str | None
    name: str
    masked_id: str
    phone: str
    action: str
    action_text: str
    severity: int
    reasons: tuple[str, ...]
    opened_at: datetime
    due_at: datetime | None
    accepted_at: datetime | None
    resolved_at: datetime | None
    escalated_at: datetime | None
    notes: tuple[str, ...]
    status: str
    overdue: bool
    seconds_left: float | None

    def to_json(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "case_id": self.case_id, "community": self.community, "street": self.street, "name": self.name,
            "masked_id": self.masked_id, "phone": self.phone, "action": self.action, "action_text": self.action_text,
            "severity": self.severity, "reasons": list(self.reasons), "opened_at": iso(self.opened_at),
            "due_at": iso(self.due_at), "accepted_at": iso(self.accepted_at), "resolved_at": iso(self.resolved_at),
            "escalated_at": iso(self.escalated_at), "notes": list(self.notes), "status": self.status,
            "overdue": self.overdue, "seconds_left": self.seconds_left,
        }


def _status(case: Case) -> str:
    if case.resolved_at is not None:
        return "resolved"
    if case.accepted_at is not None:
        return "accepted"
    return "open"


def queue_rows(
    cases: Iterable[tuple[Case, Mapping[str, Any]]],
    now: datetime,
    *,
    full_phone: bool,
    action_texts: Mapping[str, str] | None = None,
) -> list[QueueRow]:
    """Cases with their latest triage message → queue rows: open (by due time) first, then by newest.

    `full_phone` only for the owning community; everyone else sees `138****8000`.
    """
    _check_aware(now)
    texts = action_texts or {}
    rows = []
    for case, message in cases:
        phone = str(message.get("phone", ""))
        late = case.due_at is not None and case.accepted_at is None and case.resolved_at is None and case.due_at <= now
        left = None
        if case.due_at is not None and case.accepted_at is None and case.resolved_at is None:
            left = (case.due_at - now).total_seconds()
        rows.append(QueueRow(
            case_id=case.case_id, community=case.community, street=case.street, name=str(message.get("name", "")),
            masked_id=str(message.get("masked_id", "")), phone=phone if full_phone else mask_phone(phone),
            action=case.action, action_text=texts.get(case.action, case.action), severity=case.severity,
            reasons=tuple(str(r.get("text", "")) for r in message.get("reasons", []) if isinstance(r, Mapping)),
            opened_at=case.opened_at, due_at=case.due_at, accepted_at=case.accepted_at, resolved_at=case.resolved_at,
            escalated_at=case.escalated_at, notes=case.notes, status=_status(case),
            overdue=late or case.escalated_at is not None and case.accepted_at is None and case.resolved_at is None,
            seconds_left=left,
        ))
    far = now + timedelta(days=3650)

    def order(row: QueueRow) -> tuple:
        if row.resolved_at is None:
            return (0, row.due_at or far, row.case_id)
        return (1, -row.resolved_at.timestamp(), row.case_id)

    return sorted(rows, key=order)


def community_colours(cases: Iterable[Case], max_severity: int) -> dict[str, str]:
    """Per community, the colour of its most severe open case (communities without one are absent)."""
    worst: dict[str, int] = {}
    for case in cases:
        if case.resolved_at is None and case.severity > 0:
            worst[case.community] = max(worst.get(case.community, 0), case.severity)
    return {code: colour_for(sev, max_severity) for code, sev in worst.items()}


def district_summary(cases: Sequence[Case], now: datetime, max_severity: int) -> dict[str, Any]:
    """Totals for the command centre: open cases by action and community, overdue cases, colours."""
    _check_aware(now)
    open_cases = [c for c in cases if c.resolved_at is None]
    overdue = [
        c for c in open_cases
        if c.accepted_at is None and (c.escalated_at is not None or (c.due_at is not None and c.due_at <= now))
    ]
    return {
        "cases_total": len(cases),
        "cases_open": len(open_cases),
        "cases_resolved": len(cases) - len(open_cases),
        "open_by_action": dict(sorted(Counter(c.action for c in open_cases).items())),
        "open_by_community": dict(sorted(Counter(c.community for c in open_cases).items())),
        "overdue": [
            {"case_id": c.case_id, "community": c.community, "street": c.street, "action": c.action,
             "due_at": None if c.due_at is None else c.due_at.isoformat(),
             "minutes_late": None if c.due_at is None else round((now - c.due_at).total_seconds() / 60, 1)}
            for c in sorted(overdue, key=lambda c: (c.due_at or now, c.case_id))
        ],
        "colours": community_colours(cases, max_severity),
    }


@dataclass(frozen=True)
class DailyReports:
    """The three daily reports as frames, with the day they cover."""

    day: date
    people: pd.DataFrame
    handling: pd.DataFrame
    throughput: pd.DataFrame


def _frame(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(records))
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    return frame[list(columns)]


def _on_day(series: pd.Series, day: date, zone: ZoneInfo) -> pd.Series:
    stamps = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    return stamps.dt.tz_convert(zone).dt.date == day


def daily_reports(
    day: date,
    zone: ZoneInfo,
    *,
    messages: Iterable[Mapping[str, Any]],
    case_events: Iterable[Mapping[str, Any]],
    dead_letters: Iterable[Mapping[str, Any]],
    inputs: Mapping[str, Sequence[datetime]],
    streets: Mapping[str, str | None],
) -> DailyReports:
    """People, case handling and throughput for `day` (in `zone`) from the topics' records.

    `messages` are triage messages (every community topic), `case_events` the lifecycle topic,
    `dead_letters` the dead-letter topic, `inputs` per input topic the record timestamps,
    `streets` community code → street.
    """
    if not isinstance(day, date):
        raise PipelineError(f"day was {day!r} but is expected to be a date")
    msg = _frame(messages, ["case_id", "person_key", "community", "action", "previous_action", "flagged_at", "due_at"])
    msg = msg[msg["case_id"].notna()]
    today = msg[_on_day(msg["flagged_at"], day, zone)] if len(msg) else msg
    flagged = today[today["action"] != "clear"]
    cleared = today[today["action"] == "clear"]
    people = (
        pd.concat([
            flagged.assign(measure="flagged", group=flagged["action"]),
            cleared.assign(measure="cleared", group="clear"),
        ])
        .groupby(["measure", "community", "group"], dropna=False)["person_key"].nunique()
        .rename("people").reset_index().rename(columns={"group": "action"})
        .sort_values(["measure", "community", "action"], ignore_index=True)
    )

    events = _frame(case_events, ["case_id", "kind", "at"])
    events["at"] = pd.to_datetime(events["at"], utc=True, errors="coerce", format="ISO8601")
    first = events.sort_values("at").groupby(["case_id", "kind"])["at"].first().unstack() if len(events) else pd.DataFrame()
    opened = msg[msg["action"] != "clear"].copy()
    opened["flagged_at"] = pd.to_datetime(opened["flagged_at"], utc=True, errors="coerce", format="ISO8601")
    opened["due_at"] = pd.to_datetime(opened["due_at"], utc=True, errors="coerce", format="ISO8601")
    cases = opened.sort_values("flagged_at").groupby("case_id").agg(
        community=("community", "first"), opened_at=("flagged_at", "first"), due_at=("due_at", "first"))
    cases = cases[cases["opened_at"].dt.tz_convert(zone).dt.date == day] if len(cases) else cases
    for kind in ("accepted", "resolved", "escalated"):
        cases[kind] = first[kind] if kind in getattr(first, "columns", ()) else pd.NaT
        cases[kind] = pd.to_datetime(cases[kind], utc=True)
    cases["accepted"] = cases["accepted"].fillna(cases["resolved"])
    cases["street"] = cases["community"].map(lambda c: streets.get(c) or "unassigned")
    cases["on_time"] = cases["accepted"].notna() & (cases["due_at"].isna() | (cases["accepted"] <= cases["due_at"]))
    cases["overdue"] = cases["escalated"].notna() | (cases["due_at"].notna() & (cases["accepted"].isna() | (cases["accepted"] > cases["due_at"])))
    cases["to_accept"] = (cases["accepted"] - cases["opened_at"]).dt.total_seconds() / 60
    cases["to_resolve"] = (cases["resolved"] - cases["opened_at"]).dt.total_seconds() / 60
    handling = cases.groupby(["street", "community"]).agg(
        cases=("on_time", "size"), accepted_in_time=("on_time", "sum"), overdue=("overdue", "sum"),
        median_minutes_to_accept=("to_accept", "median"), median_minutes_to_resolve=("to_resolve", "median"),
    ).reset_index() if len(cases) else pd.DataFrame(columns=[
        "street", "community", "cases", "accepted_in_time", "overdue", "median_minutes_to_accept", "median_minutes_to_resolve"])

    rows = [{"measure": "events_in", "topic": topic, "reason": "", "count": sum(
        1 for t in stamps if t.astimezone(zone).date() == day)} for topic, stamps in sorted(inputs.items())]
    dl = _frame(dead_letters, ["source_topic", "reason", "at"])
    dl = dl[_on_day(dl["at"], day, zone)] if len(dl) else dl
    for (topic, reason), count in sorted(Counter(zip(dl["source_topic"], dl["reason"], strict=True)).items()):
        rows.append({"measure": "dead_letters", "topic": topic, "reason": reason, "count": count})
    throughput = pd.DataFrame(rows, columns=["measure", "topic", "reason", "count"])
    return DailyReports(day=day, people=people, handling=handling, throughput=throughput)


def reports_html(reports: DailyReports) -> str:
    """One self-contained HTML page with the three reports as tables."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>epiflow daily report {reports.day.isoformat()}</title>",
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eee}</style></head><body>",
        f"<h1>Daily report {reports.day.isoformat()}</h1>",
    ]
    for title, frame in (("People", reports.people), ("Case handling", reports.handling), ("Throughput", reports.throughput)):
        parts.append(f"<h2>{title}</h2>")
        parts.append(frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.1f}") if len(frame) else "<p>No records.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
