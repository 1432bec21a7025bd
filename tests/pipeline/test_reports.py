"""Queue rows, map colours, district summary and the three daily reports (pure, pandas)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.cases import Case
from pipeline.errors import PipelineError
from pipeline.reports import (
    colour_for,
    community_colours,
    daily_reports,
    district_summary,
    queue_rows,
    reports_html,
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
    assert h.loc["C1", "cases"] == 2 and h.loc["C1", "accepted_in_time"] == 1 and h.loc["C1", "overdue"] == 1
    assert h.loc["C1", "median_minutes_to_accept"] == 30.0  # 10 and 50 minutes
    assert h.loc["C1", "median_minutes_to_resolve"] == 70.0
    assert h.loc["C2", "overdue"] == 1 and h.loc["C2", "street"] == "S2"
    t = r.throughput
    assert t[(t["measure"] == "events_in") & (t["topic"] == "epiflow.declarations")]["count"].item() == 5
    assert t[t["measure"] == "dead_letters"][["reason", "count"]].values.tolist() == [["schema", 2]]
    page = reports_html(r)
    assert "Case handling" in page and "2022-06-20" in page


def test_daily_reports_of_an_empty_day() -> None:
    r = daily_reports(date(2022, 6, 20), ZONE, messages=[], case_events=[], dead_letters=[], inputs={}, streets={})
    assert len(r.people) == 0 and len(r.handling) == 0 and len(r.throughput) == 0
    assert "No records." in reports_html(r)
