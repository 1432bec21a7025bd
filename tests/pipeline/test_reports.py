"""Queue rows, map colours, district summary and the three daily reports (pure, pandas)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.cases import Case
from pipeline.errors import PipelineError
from pipeline.report_page import reports_html
from pipeline.reports import (
    colour_for,
    community_colours,
    daily_reports,
    district_summary,
    queue_rows,
)

T0 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
ZONE = ZoneInfo("Asia/Shanghai")


def _case(case_id: str, community: str = "C1", severity: int = 30, due_min: int | None = 30, **extra) -> Case:
    return Case(case_id=case_id, person_key="k" + case_id, community=community, street="S1", action="hold",
                severity=severity, opened_at=T0, due_at=None if due_min is None else T0 + timedelta(minutes=due_min), **extra)


MESSAGE = {"name": "Li", "masked_id": "330***********1234", "phone": "13800138000", "reasons": [{"text": "why"}]}


@pytest.mark.parametrize(("severity", "colour"), [(0, "green"), (10, "blue"), (30, "yellow"), (40, "orange"), (50, "red"), (60, "red")])
def test_colour_for(severity: int, colour: str) -> None:
    assert colour_for(severity, 60) == colour


def test_queue_rows_order_overdue_and_phone_masking() -> None:
    now = T0 + timedelta(minutes=45)
    cases = [
        (_case("late", due_min=30), MESSAGE),
        (_case("soon", due_min=60), MESSAGE),
        (_case("done", resolved_at=T0 + timedelta(minutes=5)), MESSAGE),
        (_case("taken", due_min=20, accepted_at=T0 + timedelta(minutes=10)), MESSAGE),
    ]
    rows = queue_rows(cases, now, full_phone=False)
    assert [r.case_id for r in rows] == ["taken", "late", "soon", "done"]
    assert [r.overdue for r in rows] == [False, True, False, False]
    assert rows[1].seconds_left == -15 * 60
    assert rows[0].phone == "138****8000"
    assert queue_rows(cases, now, full_phone=True)[0].phone == "13800138000"
    assert rows[3].status == "resolved" and rows[0].status == "accepted"
    with pytest.raises(PipelineError, match="timezone-aware"):
        queue_rows(cases, datetime(2022, 6, 20), full_phone=False)


def test_colours_and_summary_use_the_most_severe_open_case() -> None:
    cases = [_case("a", "C1", 30), _case("b", "C1", 60), _case("c", "C2", 60, resolved_at=T0), _case("d", "C3", 10, due_min=None)]
    assert community_colours(cases, 60) == {"C1": "red", "C3": "blue"}
    summary = district_summary(cases, T0 + timedelta(minutes=31), 60)
    assert summary["cases_open"] == 3
    assert summary["open_by_community"] == {"C1": 2, "C3": 1}
    assert [o["case_id"] for o in summary["overdue"]] == ["a", "b"]


def test_the_summary_lists_streets_names_and_the_overdue_cases_themselves() -> None:
    cases = [_case("a", "C1", 30), _case("b", "C2", 60), _case("c", "C2", 60, due_min=90),
             _case("d", "C2", 10, accepted_at=T0), _case("e", "C3", 30, resolved_at=T0, closed_reason="cleared by rules")]
    summary = district_summary(cases, T0 + timedelta(minutes=31), 60, zone=ZONE,
                               messages={"b": MESSAGE}, names={"C1": "兰学社区", "C2": "梅北东社区"},
                               streets={"C1": "S1", "C2": "S2"}, action_texts={"hold": "卡口暂缓通行"})
    assert summary["cases_open"] == 4 and summary["cases_closed"] == 1 and summary["cases_overdue"] == 2
    assert [s["street"] for s in summary["streets"]] == ["S2", "S1"]
    assert summary["streets"][0]["open"] == 3 and summary["streets"][0]["communities"][0]["name"] == "梅北东社区"
    assert summary["top_communities"][0]["code"] == "C2"
    late = {o["case_id"]: o for o in summary["overdue"]}
    assert set(late) == {"a", "b"}
    assert late["b"]["masked_id"] == MESSAGE["masked_id"] and late["b"]["community_name"] == "梅北东社区"
    assert late["a"]["action_text"] == "卡口暂缓通行" and late["a"]["due_at"].endswith("+08:00")


def test_queue_rows_give_times_in_the_display_zone_and_the_declared_address() -> None:
    row = queue_rows([(_case("a"), {**MESSAGE, "address": "兰学社区3幢201室"})], T0, full_phone=False, zone=ZONE)[0].to_json()
    assert row["address"] == "兰学社区3幢201室"
    assert row["opened_at"].endswith("+08:00") and row["due_at"].endswith("+08:00")
    assert row["opened_at"].startswith("2022-06-20T10:00")


def _msg(case_id: str, community: str, action: str, at: datetime, due_min: int = 30) -> dict:
    return {"case_id": case_id, "person_key": "p" + case_id, "community": community, "action": action,
            "previous_action": None, "flagged_at": at.isoformat(), "due_at": (at + timedelta(minutes=due_min)).isoformat()}


def test_daily_reports_from_topic_records() -> None:
    messages = [
        _msg("c1", "C1", "hold", T0), _msg("c2", "C1", "home_isolation", T0), _msg("c3", "C2", "hold", T0),
        _msg("c1", "C1", "clear", T0 + timedelta(hours=2)),
        _msg("old", "C1", "hold", T0 - timedelta(days=2)),
    ]
    events = [
        {"case_id": "c1", "kind": "accepted", "at": (T0 + timedelta(minutes=10)).isoformat()},
        {"case_id": "c1", "kind": "resolved", "at": (T0 + timedelta(minutes=70)).isoformat()},
        {"case_id": "c2", "kind": "accepted", "at": (T0 + timedelta(minutes=50)).isoformat()},
        {"case_id": "c3", "kind": "escalated", "at": (T0 + timedelta(minutes=31)).isoformat()},
    ]
    dead = [{"source_topic": "epiflow.declarations", "reason": "schema", "at": T0.isoformat()},
            {"source_topic": "epiflow.declarations", "reason": "schema", "at": T0.isoformat()},
            {"source_topic": "epiflow.nat-results", "reason": "too_old", "at": (T0 - timedelta(days=3)).isoformat()}]
    inputs = {"epiflow.declarations": [T0] * 5 + [T0 - timedelta(days=1)], "epiflow.nat-results": [T0]}
    r = daily_reports(date(2022, 6, 20), ZONE, messages=messages, case_events=events, dead_letters=dead,
                      inputs=inputs, streets={"C1": "S1", "C2": "S2"})
    flagged = r.people[r.people["measure"] == "flagged"].set_index(["community", "action"])["people"].to_dict()
    assert flagged == {("C1", "hold"): 1, ("C1", "home_isolation"): 1, ("C2", "hold"): 1}
    assert r.people[r.people["measure"] == "cleared"]["people"].sum() == 1
    h = r.handling.set_index("community")
    assert h.loc["C1", "cases"] == 2 and h.loc["C1", "accepted_in_time"] == 1 and h.loc["C1", "accepted_late"] == 1
    assert h.loc["C1", "overdue"] == 0  # c2 was accepted (late); c1 was accepted in time
    assert h.loc["C1", "median_minutes_to_accept"] == 30.0  # 10 and 50 minutes
    assert h.loc["C1", "median_minutes_to_resolve"] == 70.0
    assert h.loc["C2", "overdue"] == 1 and h.loc["C2", "street"] == "S2"
    t = r.throughput
    assert t[(t["measure"] == "events_in") & (t["topic"] == "epiflow.declarations")]["count"].item() == 5
    assert t[t["measure"] == "dead_letters"][["reason", "count"]].values.tolist() == [["schema", 2]]
    page = reports_html(r, generated_at=T0 + timedelta(days=1), rules_version="v9", lang="en")
    assert "Street subtotals" in page and "2022-06-20" in page and "<svg" in page and "v9" in page


def test_daily_reports_of_an_empty_day() -> None:
    r = daily_reports(date(2022, 6, 20), ZONE, messages=[], case_events=[], dead_letters=[], inputs={}, streets={})
    assert len(r.people) == 0 and len(r.handling) == 0 and len(r.throughput) == 0
    assert r.totals["cases"] == 0 and r.totals["overdue"] == 0
    assert "No records for this day." in reports_html(r, generated_at=T0, rules_version="v9", lang="en")
    assert 'lang="zh-CN"' in reports_html(r, generated_at=T0, rules_version="v9")


def test_overdue_in_the_daily_report_is_open_and_past_due_where_the_case_is_now() -> None:
    """Five minutes after opening nothing is overdue; a case that moved counts in its new community."""
    messages = [_msg("a", "C1", "hold", T0, due_min=30), _msg("b", "C1", "home_isolation", T0, due_min=240),
                _msg("b", "C2", "home_isolation", T0 + timedelta(minutes=2), due_min=240),
                _msg("late", "C1", "transfer", T0 - timedelta(hours=1), due_min=30)]
    kwargs = {"messages": messages, "case_events": [], "dead_letters": [], "inputs": {}, "streets": {"C1": "S1", "C2": "S2"},
              "names": {"C1": "兰学社区", "C2": "梅北东社区"}}
    r = daily_reports(date(2022, 6, 20), ZONE, as_of=T0 + timedelta(minutes=5), **kwargs)
    h = r.handling.set_index("community")
    assert r.totals["overdue"] == 1  # only "late", due at 09:30
    assert h.loc["C1", "overdue"] == 1 and h.loc["C2", "overdue"] == 0
    assert h.loc["C2", "cases"] == 1 and h.loc["C1", "cases"] == 2 and h.loc["C2", "name"] == "梅北东社区"
    later = daily_reports(date(2022, 6, 20), ZONE, as_of=T0 + timedelta(hours=5), **kwargs)
    assert later.totals["overdue"] == 3
    assert later.streets.set_index("street").loc["S2", "overdue"] == 1


def test_a_raise_moves_the_due_time_and_a_clear_closes_the_case_in_the_report() -> None:
    messages = [_msg("a", "C1", "test_within_24h", T0, due_min=1440), _msg("a", "C1", "transfer", T0 + timedelta(hours=1)),
                _msg("b", "C1", "hold", T0), _msg("b", "C1", "clear", T0 + timedelta(minutes=10))]
    r = daily_reports(date(2022, 6, 20), ZONE, messages=messages, case_events=[], dead_letters=[], inputs={},
                      streets={"C1": "S1"}, as_of=T0 + timedelta(hours=2))
    assert r.totals == {**r.totals, "cases": 2, "open": 1, "overdue": 1, "closed": 1}
    raised_after_accept = daily_reports(
        date(2022, 6, 20), ZONE, messages=messages, streets={"C1": "S1"}, as_of=T0 + timedelta(hours=2), dead_letters=[],
        inputs={}, case_events=[{"case_id": "a", "kind": "accepted", "at": (T0 + timedelta(minutes=5)).isoformat()}])
    assert raised_after_accept.totals["overdue"] == 1  # accepted as test_within_24h; the transfer was never accepted
    figures = r.figures()
    assert figures["totals"]["overdue"] == 1 and figures["streets"][0]["street"] == "S1"
    assert figures["as_of"].endswith("+08:00")
