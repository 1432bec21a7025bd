"""Key groups in the daily report: compliance per group and street at the end of the day, reminders sent,
and checkpoint coverage per key enterprise, as JSON figures and as an HTML section with charts.

Pure: records of the topics in, figures and a page fragment out (the page itself is `report_page`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from html import escape
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pipeline.compliance import group_status, last_negatives_of_inputs, status_json, street_status
from pipeline.coverage import coverage_json, coverage_of_records
from pipeline.errors import PipelineError
from pipeline.key_groups import KeyGroups, parse_key_groups
from pipeline.rosters import RosterEntry, entry_from_json

__all__ = ["KeyGroupRecords", "key_group_figures", "key_group_html", "rate_chart_svg"]

Lang = Literal["zh", "en"]
_FONT = '"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif'
#: How far back a record still counts for a report day.
LOOKBACK = timedelta(days=366)
_WORDS = {
    "title": ("重点人群核酸检测", "Key groups: testing compliance"),
    "group": ("人群", "Group"), "enrolled": ("在册人数", "enrolled"), "on_time": ("按时检测", "on time"),
    "rate": ("检测率", "rate"), "overdue": ("逾期人数", "overdue"), "reminders": ("当日提醒", "reminders sent"),
    "street": ("街道", "Street"), "chart": ("各人群检测率", "Testing rate per group"),
    "chart_streets": ("各街道重点人群检测率", "Testing rate per street"),
    "coverage": ("重点企业卡口查验覆盖", "Checkpoint coverage of key enterprises"),
    "enterprise": ("企业", "Enterprise"), "vehicles": ("车辆查验", "vehicles checked"),
    "people": ("人员查验", "staff checked"), "unchecked": ("未查验", "unchecked"),
    "none": ("当日无记录。", "No records for this day."),
}


def _w(key: str, lang: Lang) -> str:
    zh, en = _WORDS[key]
    return zh if lang == "zh" else en


@dataclass
class KeyGroupRecords:
    """The topic records the key-group section is computed from."""

    key_groups: bytes | None = None
    members: list[bytes] = field(default_factory=list)
    tests: list[bytes] = field(default_factory=list)
    registrations: dict[bytes, bytes] = field(default_factory=dict)
    scans: list[bytes] = field(default_factory=list)
    reminders: list[dict[str, Any]] = field(default_factory=list)


def _groups(raw: bytes | None) -> KeyGroups | None:
    if raw is None:
        return None
    try:
        return parse_key_groups(raw.decode("utf-8"), source="key-groups topic")
    except (PipelineError, UnicodeDecodeError):
        return None


def key_group_figures(
    records: KeyGroupRecords, day: date, zone: ZoneInfo, *, secret: bytes, now: datetime, horizon: timedelta,
    street_of: Callable[[str], str | None],
) -> dict[str, Any]:
    """Compliance at the end of `day` (or at `now` for today: the report's `as_of`), reminders sent that day,
    coverage that day."""
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    at = min(end, now)
    groups = _groups(records.key_groups)
    out: dict[str, Any] = {"version": groups.version if groups else None, "groups": [], "streets": []}
    if groups is not None:
        entries: list[RosterEntry] = [entry_from_json(m) for m in records.members]
        last, _ = last_negatives_of_inputs(records.tests, secret=secret, at=at, lookback=LOOKBACK, horizon=horizon)
        out["groups"] = status_json(group_status(groups, entries, last, at))["groups"]
        out["streets"] = [{"group": s.group, "street": s.street, "enrolled": s.enrolled, "on_time": s.on_time,
                           "rate": s.rate} for s in street_status(groups, entries, last, at, street_of)]
    sent = [m for m in records.reminders if _day_of(m.get("flagged_at"), zone) == day]
    by_group: dict[str, int] = {}
    for m in sent:
        by_group[m.get("group", "")] = by_group.get(m.get("group", ""), 0) + 1
    out["reminders_sent"] = len(sent)
    out["reminders_by_group"] = dict(sorted(by_group.items()))
    out["coverage"] = coverage_json(coverage_of_records(records.registrations.values(), records.scans, day, zone,
                                                        secret=secret, now=now, lookback=LOOKBACK))
    return out


def _day_of(text: Any, zone: ZoneInfo) -> date | None:
    try:
        return datetime.fromisoformat(text).astimezone(zone).date()
    except (TypeError, ValueError):
        return None


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], ident: str) -> str:
    return (f"<div class='scroll'><table id='{ident}'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows) + "</table></div>")


def rate_chart_svg(labels: list[str], rates: list[float | None], *, title: str, width: int = 640, bar: int = 22) -> str:
    """Horizontal bars of rates on a 0–100 % scale (SVG, no script); red below 90 %, green from 96 %."""
    label_w, pad = min(320, max(80, 13 * max((len(x) for x in labels), default=0) + 12)), 6
    height = max(1, len(labels)) * (bar + pad) + pad
    span = width - label_w - 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart rate-chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}" style="max-width:100%;height:auto;font-family:{escape(_FONT)}">']
    for i, (label, rate) in enumerate(zip(labels, rates, strict=True)):
        y = pad + i * (bar + pad)
        value = rate or 0.0
        colour = "#2e9e4f" if value >= 0.96 else ("#f5a623" if value >= 0.9 else "#d7191c")
        out.append(f'<text x="{label_w - 6}" y="{y + bar * 0.7:.0f}" text-anchor="end" font-size="12">{escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{span}" height="{bar}" fill="#eee"/>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{span * value:.1f}" height="{bar}" fill="{colour}" '
                   f'data-rate="{value:.4f}"><title>{_share(rate)}</title></rect>')
        out.append(f'<text x="{label_w + span + 4}" y="{y + bar * 0.7:.0f}" font-size="12">{_share(rate)}</text>')
    out.append("</svg>")
    return "".join(out)


def key_group_html(figures: dict[str, Any], lang: Lang = "zh") -> str:
    """The report's key-group section: a rate chart per group and per street, tables, coverage per enterprise."""
    parts = [f"<h2 id='key-groups'>{_w('title', lang)}</h2>"]
    groups = [g for g in figures["groups"] if g["enrolled"]]
    if not groups:
        parts.append(f"<p>{_w('none', lang)}</p>")
    else:
        names = [g["name"]["zh" if lang == "zh" else "en"] for g in groups]
        parts.append(f"<figure><figcaption>{_w('chart', lang)}</figcaption>" + rate_chart_svg(
            names, [g["rate"] for g in groups], title=_w("chart", lang)) + "</figure>")
        reminders = figures.get("reminders_by_group", {})
        parts.append(_table(
            [_w(k, lang) for k in ("group", "enrolled", "on_time", "rate", "overdue", "reminders")],
            [[escape(n), str(g["enrolled"]), str(g["on_time"]), _share(g["rate"]), str(len(g["overdue"])),
              str(reminders.get(g["id"], 0))] for n, g in zip(names, groups, strict=True)], "key-group-table"))
        streets: dict[str, list[int]] = {}
        for s in figures["streets"]:
            cell = streets.setdefault(s["street"] or "—", [0, 0])
            cell[0] += s["enrolled"]
            cell[1] += s["on_time"]
        labels = sorted(streets)
        parts.append(f"<figure><figcaption>{_w('chart_streets', lang)}</figcaption>" + rate_chart_svg(
            labels, [streets[s][1] / streets[s][0] for s in labels], title=_w("chart_streets", lang)) + "</figure>")
    parts.append(f"<h2 id='coverage'>{_w('coverage', lang)}</h2>")
    rows = figures["coverage"]
    if not rows:
        parts.append(f"<p>{_w('none', lang)}</p>")
    else:
        parts.append(_table(
            [_w(k, lang) for k in ("enterprise", "vehicles", "people", "unchecked")],
            [[f"{escape(c['name'])} <small>{escape(c['enterprise'])}</small>",
              f"{c['vehicles_checked']}/{c['vehicles']} ({_share(c['vehicle_rate'])})",
              f"{c['people_checked']}/{c['people']} ({_share(c['people_rate'])})",
              escape(" ".join(c["unchecked_plates"] + c["unchecked_people"]) or "—")] for c in rows], "coverage-table"))
    return "\n".join(parts)
