"""The daily report as one self-contained HTML page: totals, street subtotals, charts (inline SVG), details.

Pure: a `DailyReports` in, a string out. Chinese first; `lang="en"` gives the English page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any, Literal

from pipeline.reports import DailyReports

__all__ = ["bar_chart_svg", "reports_html"]

Lang = Literal["zh", "en"]

_FONT = '"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif'
_WORDS: dict[str, tuple[str, str]] = {
    "title": ("每日报告", "Daily report"),
    "generated": ("生成时间", "Generated at"),
    "rules": ("规则版本", "Rules version"),
    "as_of": ("统计截至", "Figures as of"),
    "totals": ("全区合计", "District totals"),
    "cases": ("当日新开案件", "cases opened"),
    "open": ("未结案件", "still open"),
    "overdue": ("超时未接收", "overdue"),
    "closed": ("规则解除", "closed by the rules"),
    "resolved": ("已办结", "resolved"),
    "in_time": ("按时接收率", "accepted within SLA"),
    "median": ("接收用时中位数（分钟）", "median minutes to accept"),
    "flagged": ("当日赋码人数", "people flagged"),
    "events": ("当日接入事件", "events in"),
    "dead": ("无法使用的记录", "dead letters"),
    "streets": ("街道小计", "Street subtotals"),
    "street": ("街道", "Street"),
    "community": ("社区", "Community"),
    "accepted_in_time": ("按时接收", "accepted in time"),
    "accepted_late": ("超时接收", "accepted late"),
    "median_short": ("接收中位数（分）", "median min to accept"),
    "chart_streets": ("各街道案件处置情况", "Cases by street and how they were handled"),
    "chart_hours": ("按小时新开案件", "Cases opened per hour"),
    "details": ("各社区明细", "Per community"),
    "people": ("赋码人数（按处置措施）", "People flagged, by action"),
    "throughput": ("数据接入", "Throughput"),
    "none": ("当日无记录。", "No records for this day."),
    "switch": ("English", "中文"),
    "zone": ("显示时区", "Display time zone"),
    "back": ("返回指挥中心", "back to the command centre"),
    "management": ("管控人员（按街道）", "People under management, by street"),
    "requests": ("管控人员诉求（按街道）", "Requests from people under management, by street"),
    "requests_posted": ("当日诉求", "posted"), "requests_answered": ("当日答复", "answered"),
    "requests_open": ("待答复", "awaiting answer"), "requests_overdue": ("超时未答复", "past the answer deadline"),
    "median_response_minutes": ("响应用时中位数（分钟）", "median response (min)"),
    "transfers": ("转运与接收", "Transfers and reception"),
    "transfers_received": ("当日接收", "received"), "transfers_in_progress": ("转运中", "in progress"),
    "median_transfer_minutes": ("转运用时中位数（分钟）", "median transfer (min)"),
    "median_reception_minutes": ("接收用时中位数（分钟）", "median reception (min)"),
    "masked_id": ("证件号", "ID"), "stage": ("环节", "stage"), "received_at": ("接收时间", "received at"),
    "transfer_minutes": ("转运用时（分钟）", "transfer (min)"), "reception_minutes": ("接收用时（分钟）", "reception (min)"),
    "released": ("当日解除管控", "released"),
    "tests_missed": ("当日核酸逾期", "tests missed"),
    "people_overdue": ("逾期未检人数", "people overdue"),
}
_SEGMENTS = (("accepted_in_time", "#2e9e4f"), ("accepted_late", "#f5d33c"), ("waiting", "#3b7dd8"), ("overdue", "#d7191c"))
_SEGMENT_WORDS = {"accepted_in_time": ("按时接收", "accepted in time"), "accepted_late": ("超时接收", "accepted late"),
                  "waiting": ("未到期或已解除", "not yet due, or closed by the rules"), "overdue": ("超时未接收", "overdue")}


def _w(key: str, lang: Lang) -> str:
    zh, en = _WORDS[key]
    return zh if lang == "zh" else en


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def bar_chart_svg(labels: Sequence[str], stacks: Sequence[Sequence[float]], colours: Sequence[str],
                  *, title: str, width: int = 640, bar: int = 22) -> str:
    """Horizontal stacked bars, one per label (SVG, no script); `stacks[i]` are the segments of bar i."""
    if len(labels) != len(stacks):
        raise ValueError(f"{len(labels)} labels but {len(stacks)} bars; expected one bar per label")
    label_w, pad = min(320, max(80, 13 * max((len(x) for x in labels), default=0) + 12)), 6
    height = max(1, len(labels)) * (bar + pad) + pad
    top = max((sum(s) for s in stacks), default=0) or 1
    span = width - label_w - 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}" style="max-width:100%;height:auto;font-family:{escape(_FONT)}">']
    for i, (label, parts) in enumerate(zip(labels, stacks, strict=True)):
        y = pad + i * (bar + pad)
        out.append(f'<text x="{label_w - 6}" y="{y + bar * 0.7:.0f}" text-anchor="end" font-size="12">{escape(label)}</text>')
        x = float(label_w)
        for value, colour in zip(parts, colours, strict=True):
            w = span * value / top
            if w > 0:
                out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}"><title>{value:g}</title></rect>')
            x += w
        out.append(f'<text x="{x + 4:.1f}" y="{y + bar * 0.7:.0f}" font-size="12">{sum(parts):g}</text>')
    out.append("</svg>")
    return "".join(out)


def _column_chart(values: Sequence[int], title: str, width: int = 640, height: int = 120) -> str:
    top = max(values, default=0) or 1
    step = (width - 40) / max(1, len(values))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height + 20}" role="img" '
           f'aria-label="{escape(title)}" style="max-width:100%;height:auto;font-family:{escape(_FONT)}">']
    for i, v in enumerate(values):
        h = (height - 10) * v / top
        x = 30 + i * step
        out.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{step * 0.8:.1f}" height="{h:.1f}" fill="#3b7dd8">'
                   f'<title>{i:02d}:00 {v}</title></rect>')
        if i % 3 == 0:
            out.append(f'<text x="{x:.1f}" y="{height + 14}" font-size="11">{i:02d}</text>')
    out.append("</svg>")
    return "".join(out)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _share(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def reports_html(
    reports: DailyReports,
    *,
    generated_at: datetime,
    rules_version: str,
    zone_label: str = "",
    lang: Lang = "zh",
    action_names: dict[str, str] | None = None,
    switch_href: str = "",
    back_href: str = "",
) -> str:
    """One self-contained page: totals, street subtotals with a chart, cases per hour, per-community details."""
    names = action_names or {}
    t = reports.totals
    day = reports.day.isoformat()
    parts = [
        f"<!doctype html><html lang=\"{'zh-CN' if lang == 'zh' else 'en'}\"><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_w('title', lang)} {day} · epiflow</title>",
        f"<style>body{{font:14px/1.5 {_FONT};margin:1em;color:#222;max-width:60em}}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;"
        "text-align:left}th{background:#f0f0ee}td.n{text-align:right}.scroll{overflow-x:auto}"
        ".tiles{display:flex;flex-wrap:wrap;gap:.6em}.tile{border:1px solid #ddd;padding:.4em .8em;min-width:8em}"
        ".tile b{display:block;font-size:20px}.meta{color:#555}.key span{display:inline-block;width:10px;height:10px;"
        "margin:0 4px 0 12px}summary{cursor:pointer;margin:.4em 0}</style></head><body>",
        f"<h1>{_w('title', lang)} {day}</h1>",
        f"<p class='meta' id='report-meta'>{_w('generated', lang)}: <time>{escape(generated_at.isoformat(timespec='seconds'))}"
        f"</time> · {_w('rules', lang)}: <b>{escape(rules_version or '—')}</b>"
        + (f" · {_w('as_of', lang)}: {escape(reports.as_of.astimezone(reports.zone).isoformat(timespec='seconds'))}"
           if reports.as_of is not None and reports.zone is not None else "")
        + (f" · {_w('zone', lang)}: {escape(zone_label)}" if zone_label else "")
        + (f" · <a href='{escape(switch_href)}'>{_w('switch', lang)}</a>" if switch_href else "")
        + (f" · <a id='back' href='{escape(back_href)}'>{_w('back', lang)}</a>" if back_href else "") + "</p>",
        f"<h2>{_w('totals', lang)}</h2><div class='tiles' id='totals'>",
    ]
    for key, value in (("cases", _num(t.get("cases"))), ("open", _num(t.get("open"))),
                       ("overdue", _num(t.get("overdue"))), ("resolved", _num(t.get("resolved"))),
                       ("closed", _num(t.get("closed"))), ("in_time", _share(t.get("accepted_in_time_share"))),
                       ("median", _num(t.get("median_minutes_to_accept"))), ("flagged", _num(t.get("people_flagged"))),
                       ("events", _num(t.get("events_in"))), ("dead", _num(t.get("dead_letters")))):
        parts.append(f"<div class='tile' data-figure='{key}'><b>{value}</b>{_w(key, lang)}</div>")
    parts.append("</div>")
    managed = reports.management
    parts.append(f"<h2>{_w('management', lang)}</h2>")
    parts.append(_table([_w(k, lang) for k in ("street", "released", "tests_missed", "people_overdue")],
                        [[escape(str(r["street"])), *(_num(r[k]) for k in ("released", "tests_missed", "people_overdue"))]
                         for r in managed.to_dict("records")]) if len(managed) else f"<p>{_w('none', lang)}</p>")
    parts.append(f"<h2 id='requests'>{_w('requests', lang)}</h2>")
    parts.append("<div class='tiles' id='request-totals'>" + "".join(
        f"<div class='tile' data-figure='{k}'><b>{_num(t.get(k))}</b>{_w(k, lang)}</div>"
        for k in ("requests_posted", "requests_answered", "requests_open", "requests_overdue", "median_response_minutes"))
        + "</div>")
    asked = reports.requests
    parts.append(_table([_w(k, lang) for k in ("street", "requests_posted", "requests_answered", "requests_open",
                                               "requests_overdue", "median_response_minutes")],
                        [[escape(str(r["street"])), *(_num(r[k]) for k in ("requests_posted", "requests_answered",
                                                                           "requests_open", "requests_overdue",
                                                                           "median_response_minutes"))]
                         for r in asked.to_dict("records")]) if len(asked) else f"<p>{_w('none', lang)}</p>")
    parts.append(f"<h2 id='transfers'>{_w('transfers', lang)}</h2>")
    parts.append("<div class='tiles' id='transfer-totals'>" + "".join(
        f"<div class='tile' data-figure='{k}'><b>{_num(t.get(k))}</b>{_w(k, lang)}</div>"
        for k in ("transfers_received", "transfers_in_progress", "median_transfer_minutes", "median_reception_minutes"))
        + "</div>")
    moved = reports.transfers
    parts.append("<div class='scroll'>" + _table(
        [_w(k, lang) for k in ("street", "masked_id", "stage", "received_at", "transfer_minutes", "reception_minutes")],
        [[escape(str(r["street"])), f"<span class='mono'>{escape(str(r['masked_id']))}</span>", escape(str(r["stage"])),
          escape(str(r["received_at"] or "—")), _num(r["transfer_minutes"]), _num(r["reception_minutes"])]
         for r in moved.to_dict("records")]) + "</div>" if len(moved) else f"<p>{_w('none', lang)}</p>")
    streets = reports.streets
    parts.append(f"<h2>{_w('streets', lang)}</h2>")
    if not len(streets):
        parts.append(f"<p>{_w('none', lang)}</p>")
    else:
        rows = streets.to_dict("records")
        stacks = [[r["accepted_in_time"], r["accepted_late"],
                   max(0, r["cases"] - r["accepted_in_time"] - r["accepted_late"] - r["overdue"]), r["overdue"]]
                  for r in rows]
        key = "".join(f"<span style='background:{c}'></span>{_SEGMENT_WORDS[k][0 if lang == 'zh' else 1]}"
                      for k, c in _SEGMENTS)
        parts.append(f"<figure><figcaption>{_w('chart_streets', lang)}</figcaption>"
                     + bar_chart_svg([r["street"] for r in rows], stacks, [c for _, c in _SEGMENTS],
                                     title=_w("chart_streets", lang)) + f"<p class='key'>{key}</p></figure>")
        parts.append(_table(
            [_w(k, lang) for k in ("street", "cases", "open", "overdue", "resolved", "closed", "accepted_in_time",
                                   "accepted_late", "median_short")],
            [[escape(r["street"]), *(f"{_num(r[k])}" for k in ("cases", "open", "overdue", "resolved", "closed",
                                                                "accepted_in_time", "accepted_late")),
              _num(r["median_minutes_to_accept"])] for r in rows]))
    parts.append(f"<h2>{_w('chart_hours', lang)}</h2>" + _column_chart(list(reports.hourly or [0] * 24),
                                                                        _w("chart_hours", lang)))
    if len(reports.handling):
        parts.append(f"<h2>{_w('details', lang)}</h2>")
        order = [*reports.streets["street"].tolist()] if len(reports.streets) else []
        for street in order:
            group = reports.handling[reports.handling["street"] == street]
            parts.append(f"<details><summary>{escape(str(street))} ({int(group['cases'].sum())})</summary>")
            parts.append(_table(
                [_w(k, lang) for k in ("community", "cases", "open", "overdue", "accepted_in_time", "median_short")],
                [[f"{escape(str(r['name']))} <small>{escape(str(r['community']))}</small>", _num(r["cases"]),
                  _num(r["open"]), _num(r["overdue"]), _num(r["accepted_in_time"]), _num(r["median_minutes_to_accept"])]
                 for r in group.to_dict("records")]))
            parts.append("</details>")
    people = reports.people[reports.people["measure"] == "flagged"] if len(reports.people) else reports.people
    if len(people):
        by_action = people.groupby("action")["people"].sum().sort_values(ascending=False)
        parts.append(f"<h2>{_w('people', lang)}</h2>" + bar_chart_svg(
            [names.get(a, a) for a in by_action.index], [[int(v)] for v in by_action.tolist()], ["#f58231"],
            title=_w("people", lang)))
    if len(reports.throughput):
        parts.append(f"<details><summary>{_w('throughput', lang)}</summary>" + _table(
            ["measure", "topic", "reason", "count"],
            [[escape(str(r["measure"])), escape(str(r["topic"])), escape(str(r["reason"])), _num(r["count"])]
             for r in reports.throughput.to_dict("records")]) + "</details>")
    parts.append("</body></html>")
    return "\n".join(parts)
