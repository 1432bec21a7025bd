"""What people read: a community's queue, the district summary for the dashboard, and the daily reports.

Pure: cases and triage messages in, rows and pandas frames out. The streaming layer collects the cases
and messages (from its tables or the topics) and renders or writes what these functions return.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from pipeline.access import mask_phone
from pipeline.cases import Case
from pipeline.errors import PipelineError
from pipeline.loop_report import management_day, requests_day, transfers_day
from pipeline.rules import CLEAR

__all__ = [
    "DailyReports",
    "UNASSIGNED",
    "UNASSIGNED_STREET",
    "QueueRow",
    "colour_for",
    "community_colours",
    "is_open",
    "is_overdue",
    "daily_reports",
    "district_summary",
    "queue_rows",
    "zone_label",
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
    action_text_en: str = ""
    address: str = ""
    zone: ZoneInfo | None = None

    def to_json(self) -> dict[str, Any]:
        """The row as JSON; every time in the display zone (`zone`), with its offset."""
        def iso(t: datetime | None) -> str | None:
            return _in(self.zone, t)

        return {
            "case_id": self.case_id, "community": self.community, "street": self.street, "name": self.name,
            "masked_id": self.masked_id, "phone": self.phone, "action": self.action, "action_text": self.action_text,
            "severity": self.severity, "reasons": list(self.reasons), "opened_at": iso(self.opened_at),
            "due_at": iso(self.due_at), "accepted_at": iso(self.accepted_at), "resolved_at": iso(self.resolved_at),
            "escalated_at": iso(self.escalated_at), "notes": list(self.notes), "status": self.status,
            "overdue": self.overdue, "seconds_left": self.seconds_left, "action_text_en": self.action_text_en,
            "address": self.address,
        }


def _status(case: Case) -> str:
    return case.status


def is_open(case: Case) -> bool:
    """Still to be handled: neither resolved nor closed (a case the rules cleared is closed)."""
    return _status(case) in ("open", "accepted")


def is_overdue(case: Case, now: datetime) -> bool:
    """Open, not yet accepted, and past its due time."""
    return _status(case) == "open" and case.due_at is not None and case.due_at <= now


#: How pages and reports name the queue of places outside every community, and its "street".
UNASSIGNED = {"unassigned": "辖区外（未分配）"}
UNASSIGNED_STREET = "辖区外"

_ZONE_NAMES = {"Asia/Shanghai": ("北京时间", "Beijing time")}


def zone_label(zone: ZoneInfo, at: datetime, lang: str = "zh") -> str:
    """The display zone as pages label it, e.g. `北京时间 (UTC+08:00)`."""
    _check_aware(at)
    offset = at.astimezone(zone).strftime("%z")
    sign = f"UTC{offset[:3]}:{offset[3:]}"
    zh, en = _ZONE_NAMES.get(zone.key, (zone.key, zone.key))
    return f"{zh if lang == 'zh' else en} ({sign})"


def _in(zone: ZoneInfo | None, t: datetime | None) -> str | None:
    if t is None:
        return None
    return (t.astimezone(zone) if zone is not None else t).isoformat()


def _address(message: Mapping[str, Any]) -> str:
    """The destination address the person declared, as the triage message carries it ("" when none)."""
    value = message.get("address")
    return value if isinstance(value, str) else ""


def queue_rows(
    cases: Iterable[tuple[Case, Mapping[str, Any]]],
    now: datetime,
    *,
    full_phone: bool,
    action_texts: Mapping[str, str] | None = None,
    action_texts_en: Mapping[str, str] | None = None,
    zone: ZoneInfo | None = None,
) -> list[QueueRow]:
    """Cases with their latest triage message → queue rows: open (by due time) first, then by newest.

    `full_phone` only for the owning community; everyone else sees `138****8000`. `action_texts` are
    the rules' Chinese texts, `action_texts_en` the English ones; times are shown in `zone`.
    """
    _check_aware(now)
    texts = action_texts or {}
    texts_en = action_texts_en or {}
    rows = []
    for case, message in cases:
        phone = str(message.get("phone", ""))
        status = _status(case)
        left = None
        if case.due_at is not None and status == "open":
            left = (case.due_at - now).total_seconds()
        rows.append(QueueRow(
            case_id=case.case_id, community=case.community, street=case.street, name=str(message.get("name", "")),
            masked_id=str(message.get("masked_id", "")), phone=phone if full_phone else mask_phone(phone),
            action=case.action, action_text=texts.get(case.action, case.action), severity=case.severity,
            reasons=tuple(str(r.get("text", "")) for r in message.get("reasons", []) if isinstance(r, Mapping)),
            opened_at=case.opened_at, due_at=case.due_at, accepted_at=case.accepted_at, resolved_at=case.resolved_at,
            escalated_at=case.escalated_at, notes=case.notes, status=status,
            overdue=is_overdue(case, now) or case.escalated_at is not None and status == "open",
            seconds_left=left, action_text_en=texts_en.get(case.action, case.action), address=_address(message),
            zone=zone,
        ))
    far = now + timedelta(days=3650)

    def order(row: QueueRow) -> tuple:
        if row.status in ("open", "accepted"):
            return (0, row.due_at or far, row.case_id)
        done = row.resolved_at or row.opened_at
        return (1, -done.timestamp(), row.case_id)

    return sorted(rows, key=order)


def community_colours(cases: Iterable[Case], max_severity: int) -> dict[str, str]:
    """Per community, the colour of its most severe open case (communities without one are absent)."""
    worst: dict[str, int] = {}
    for case in cases:
        if is_open(case) and case.severity > 0:
            worst[case.community] = max(worst.get(case.community, 0), case.severity)
    return {code: colour_for(sev, max_severity) for code, sev in worst.items()}


def district_summary(
    cases: Sequence[Case],
    now: datetime,
    max_severity: int,
    *,
    zone: ZoneInfo | None = None,
    messages: Mapping[str, Mapping[str, Any]] | None = None,
    names: Mapping[str, str] | None = None,
    streets: Mapping[str, str | None] | None = None,
    action_texts: Mapping[str, str] | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Totals for the command centre, from the cases table (durable, not counters of this run).

    Open cases by action, by community (with `names`) and by street (each street with its communities,
    most open first), the overdue cases themselves (community, masked ID from `messages` by case id,
    action, due time in `zone`), and the map colours.
    """
    from pipeline.tally import summary, tally_cases

    _check_aware(now)
    messages = messages or {}
    tally = tally_cases(((c, messages.get(c.case_id, {})) for c in cases), now)
    return summary(tally, now, max_severity, zone=zone, names=names, streets=streets, action_texts=action_texts, top=top)


@dataclass(frozen=True)
class DailyReports:
    """The daily report as frames and figures, with the day it covers and the moment it stands at.

    `people`, `handling` (per street and community), `throughput` as before; `cases` one row per case
    opened on the day (where it is now, its latest due time, its status at `as_of`); `streets` the
    street subtotals; `totals` the district's figures; `hourly` cases opened per hour of the day.
    """

    day: date
    people: pd.DataFrame
    handling: pd.DataFrame
    throughput: pd.DataFrame
    cases: pd.DataFrame = field(default_factory=pd.DataFrame)
    streets: pd.DataFrame = field(default_factory=pd.DataFrame)
    totals: dict[str, Any] = field(default_factory=dict)
    hourly: tuple[int, ...] = ()
    as_of: datetime | None = None
    zone: ZoneInfo | None = None
    #: per street: people released on the day, tests missed on the day, people overdue at its end
    management: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: per street: requests posted, answered, open and past their deadline, median response minutes
    requests: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: per case: transfers received on the day (with their minutes) and those under way at its end
    transfers: pd.DataFrame = field(default_factory=pd.DataFrame)

    def figures(self) -> dict[str, Any]:
        """The report's figures as JSON (what `epiflow report` and `/reports/daily?format=json` both give)."""
        def clean(value: Any) -> Any:
            if isinstance(value, float) and math.isnan(value):
                return None
            if hasattr(value, "item"):
                return clean(value.item())
            return value

        streets = [{k: clean(v) for k, v in row.items()} for row in self.streets.to_dict("records")]
        communities = [{k: clean(v) for k, v in row.items()} for row in self.handling.to_dict("records")]
        return {
            "day": self.day.isoformat(),
            "as_of": None if self.as_of is None else _in(self.zone, self.as_of),
            "totals": {k: clean(v) for k, v in self.totals.items()},
            "streets": streets,
            "communities": communities,
            "hourly": list(self.hourly),
            "management": [{k: clean(v) for k, v in row.items()} for row in self.management.to_dict("records")],
            "requests": [{k: clean(v) for k, v in row.items()} for row in self.requests.to_dict("records")],
            "transfers": [{k: clean(v) for k, v in row.items()} for row in self.transfers.to_dict("records")],
        }


_CASE_COLUMNS = ["street", "community", "name", "cases", "open", "overdue", "closed", "resolved",
                 "accepted_in_time", "accepted_late", "median_minutes_to_accept", "median_minutes_to_resolve"]


def _frame(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(records))
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object")
    return frame[list(columns)]


def _on_day(series: pd.Series, day: date, zone: ZoneInfo) -> pd.Series:
    stamps = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    return stamps.dt.tz_convert(zone).dt.date == day


def _stamps(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")


def _no_cases() -> pd.DataFrame:
    return pd.DataFrame(columns=["community", "opened_at", "due_at", "closed", "accepted", "resolved", "escalated"])


def _case_frame(msg: pd.DataFrame, events: pd.DataFrame, day: date, zone: ZoneInfo, as_of: datetime,
                streets: Mapping[str, str | None], names: Mapping[str, str]) -> pd.DataFrame:
    """One row per case opened on `day`: where it is now, its latest due time, and its steps up to `as_of` since
    its latest raise or lower (which asks for a new acceptance, as `pipeline.cases` does)."""
    cut = pd.Timestamp(as_of)
    msg = msg.assign(flagged_at=_stamps(msg["flagged_at"]), due_at=_stamps(msg["due_at"]))
    msg = msg[msg["flagged_at"].notna() & (msg["flagged_at"] <= cut)].sort_values("flagged_at", kind="stable")
    raised = msg[msg["action"] != CLEAR]
    if not len(raised):
        return _no_cases()
    cases = raised.groupby("case_id").agg(opened_at=("flagged_at", "first"), due_at=("due_at", "last"),
                                          last_raised=("flagged_at", "last"))
    cases["community"] = msg.groupby("case_id")["community"].last()
    clears = msg[msg["action"] == CLEAR].groupby("case_id")["flagged_at"].last()
    cases["closed"] = clears.reindex(cases.index)
    cases.loc[cases["closed"].notna() & (cases["closed"] < cases["last_raised"]), "closed"] = pd.NaT
    cases = cases[cases["opened_at"].dt.tz_convert(zone).dt.date == day]
    if not len(cases):  # cases of other days may still have steps on this one
        return _no_cases()
    events = events[events["at"].notna() & (events["at"] <= cut)]
    since = events["case_id"].map(cases["last_raised"])
    events = events[since.notna() & (events["at"] >= since)]  # a raise or lower asks to accept again
    first = events.sort_values("at").groupby(["case_id", "kind"])["at"].first().unstack() if len(events) else pd.DataFrame()
    for kind in ("accepted", "resolved", "escalated"):
        column = first[kind] if kind in getattr(first, "columns", ()) else pd.Series(dtype="datetime64[ns, UTC]")
        cases[kind] = pd.to_datetime(column.reindex(cases.index), utc=True)
    cases["accepted"] = cases["accepted"].fillna(cases["resolved"])
    cases["street"] = cases["community"].map(lambda c: streets.get(c) or UNASSIGNED_STREET)
    cases["name"] = cases["community"].map(lambda c: names.get(c) or UNASSIGNED.get(c, c))
    done = cases["resolved"].notna() | cases["closed"].notna()
    cases["status"] = "open"
    cases.loc[cases["accepted"].notna(), "status"] = "accepted"
    cases.loc[cases["resolved"].notna(), "status"] = "resolved"
    cases.loc[cases["closed"].notna() & cases["resolved"].isna(), "status"] = "closed"
    cases["is_open"] = ~done
    cases["overdue"] = (cases["status"] == "open") & cases["due_at"].notna() & (cases["due_at"] <= cut)
    cases["in_time"] = cases["accepted"].notna() & (cases["due_at"].isna() | (cases["accepted"] <= cases["due_at"]))
    cases["late"] = cases["accepted"].notna() & cases["due_at"].notna() & (cases["accepted"] > cases["due_at"])
    cases["to_accept"] = (cases["accepted"] - cases["last_raised"]).dt.total_seconds() / 60
    cases["to_resolve"] = (cases["resolved"] - cases["opened_at"]).dt.total_seconds() / 60
    return cases


def _subtotals(cases: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    if not len(cases):
        return pd.DataFrame(columns=[*by, *[c for c in _CASE_COLUMNS if c not in ("street", "community", "name")]])
    out = cases.groupby(by).agg(
        cases=("status", "size"), open=("is_open", "sum"), overdue=("overdue", "sum"),
        closed=("status", lambda s: int((s == "closed").sum())), resolved=("status", lambda s: int((s == "resolved").sum())),
        accepted_in_time=("in_time", "sum"), accepted_late=("late", "sum"),
        median_minutes_to_accept=("to_accept", "median"), median_minutes_to_resolve=("to_resolve", "median"),
    ).reset_index()
    for column in ("cases", "open", "overdue", "closed", "resolved", "accepted_in_time", "accepted_late"):
        out[column] = out[column].astype(int)
    return out.sort_values(["cases", *by], ascending=[False, *[True] * len(by)], ignore_index=True)


def daily_reports(
    day: date,
    zone: ZoneInfo,
    *,
    messages: Iterable[Mapping[str, Any]],
    case_events: Iterable[Mapping[str, Any]],
    dead_letters: Iterable[Mapping[str, Any]],
    inputs: Mapping[str, Sequence[datetime]],
    streets: Mapping[str, str | None],
    names: Mapping[str, str] | None = None,
    as_of: datetime | None = None,
    loop_messages: Iterable[Mapping[str, Any]] = (),
) -> DailyReports:
    """People, case handling and throughput for `day` (in `zone`) from the topics' records.

    `messages` are triage messages (every community topic), `case_events` the lifecycle topic,
    `dead_letters` the dead-letter topic, `inputs` per input topic the record timestamps,
    `streets` community code → street, `names` community code → name. Each case counts where it is
    now (the community of its latest message) with its latest due time; it is overdue when, at
    `as_of` (default: the end of `day`, or now if that is earlier), it is open, not accepted and past due.
    """
    if not isinstance(day, date):
        raise PipelineError(f"day was {day!r} but is expected to be a date")
    end_of_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
    if as_of is None:
        as_of = min(datetime.now(zone), end_of_day)
    _check_aware(as_of)
    as_of = min(as_of, end_of_day)
    names = names or {}
    messages = list(messages)
    case_events = list(case_events)
    msg = _frame(messages, ["case_id", "person_key", "community", "action", "previous_action", "flagged_at", "due_at"])
    msg = msg[msg["case_id"].notna()]
    today = msg[_on_day(msg["flagged_at"], day, zone)] if len(msg) else msg
    flagged = today[today["action"] != CLEAR]
    cleared = today[today["action"] == CLEAR]
    people = (
        pd.concat([
            flagged.assign(measure="flagged", group=flagged["action"]),
            cleared.assign(measure="cleared", group=CLEAR),
        ])
        .groupby(["measure", "community", "group"], dropna=False)["person_key"].nunique()
        .rename("people").reset_index().rename(columns={"group": "action"})
        .sort_values(["measure", "community", "action"], ignore_index=True)
    )

    events = _frame(case_events, ["case_id", "kind", "at"])
    events["at"] = _stamps(events["at"])
    cases = _case_frame(msg, events, day, zone, as_of, streets, names)
    handling = _subtotals(cases, ["street", "community", "name"]) if len(cases) else pd.DataFrame(columns=_CASE_COLUMNS)
    by_street = _subtotals(cases, ["street"])

    rows = [{"measure": "events_in", "topic": topic, "reason": "", "count": sum(
        1 for t in stamps if t.astimezone(zone).date() == day)} for topic, stamps in sorted(inputs.items())]
    dl = _frame(dead_letters, ["source_topic", "reason", "at"])
    dl = dl[_on_day(dl["at"], day, zone)] if len(dl) else dl
    for (topic, reason), count in sorted(Counter(zip(dl["source_topic"], dl["reason"], strict=True)).items()):
        rows.append({"measure": "dead_letters", "topic": topic, "reason": reason, "count": count})
    throughput = pd.DataFrame(rows, columns=["measure", "topic", "reason", "count"])

    accepted = int(cases["accepted"].notna().sum()) if len(cases) else 0
    in_time = int(cases["in_time"].sum()) if len(cases) else 0
    median = float(cases["to_accept"].median()) if accepted else None
    totals = {
        "cases": len(cases),
        "open": int(cases["is_open"].sum()) if len(cases) else 0,
        "overdue": int(cases["overdue"].sum()) if len(cases) else 0,
        "closed": int((cases["status"] == "closed").sum()) if len(cases) else 0,
        "resolved": int((cases["status"] == "resolved").sum()) if len(cases) else 0,
        "accepted": accepted,
        "accepted_in_time": in_time,
        "accepted_in_time_share": round(in_time / accepted, 4) if accepted else None,
        "median_minutes_to_accept": None if median is None else round(median, 1),
        "people_flagged": int(flagged["person_key"].nunique()),
        "people_cleared": int(cleared["person_key"].nunique()),
        "events_in": int(sum(r["count"] for r in rows if r["measure"] == "events_in")),
        "dead_letters": int(sum(r["count"] for r in rows if r["measure"] == "dead_letters")),
    }
    management, managed = management_day(loop_messages, day, zone, streets)
    totals.update(managed)
    shown = {str(m["case_id"]): m for m in sorted(messages, key=lambda m: str(m.get("flagged_at", ""))) if m.get("case_id")}
    requests, asked = requests_day(case_events, {k: str(m.get("community", "")) for k, m in shown.items()}, day, zone,
                                   streets, as_of)
    transfers, moved = transfers_day(case_events, shown, day, zone, streets, as_of)
    totals.update(asked)
    totals.update(moved)
    hours = [0] * 24
    if len(cases):
        for hour in cases["opened_at"].dt.tz_convert(zone).dt.hour.tolist():
            hours[int(hour)] += 1
    return DailyReports(day=day, people=people, handling=handling, throughput=throughput, cases=cases,
                        streets=by_street, totals=totals, hourly=tuple(hours), as_of=as_of, zone=zone,
                        management=management, requests=requests, transfers=transfers)
