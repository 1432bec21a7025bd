"""Requests of people under management: their state on the case, the answer-within SLA, escalation, figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.cases import Case, apply_case_event, case_from_bytes, case_to_bytes
from pipeline.errors import CaseError, RulesError
from pipeline.events import CaseEvent, Reason, TriageMessage
from pipeline.loop_report import requests_day, transfers_day
from pipeline.requests import (
    RequestsDoc,
    answer_due,
    case_of_request,
    next_due,
    request_id_for,
    request_json,
    request_message,
    request_problems,
    request_status,
    requests_due,
    response_minutes,
)
from pipeline.rules import parse_rules
from pipeline.tally import merge, summary, tally_cases

T0 = datetime(2022, 6, 20, 9, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
RULES = Path(__file__).resolve().parents[2] / "config" / "rules.yaml"


def _case(action: str = "home_isolation", case_id: str = "case-r1", street: str | None = "西湖街道") -> Case:
    return Case(case_id=case_id, person_key="k1", community="c1", street=street, action=action, severity=40,
                opened_at=T0, due_at=T0 + timedelta(hours=1))


def _posted(case: Case, kind: str = "medical", text: str = "需要降压药", at: datetime = T0) -> tuple[Case, str]:
    rid = request_id_for(case.case_id, kind, text, at)
    event = CaseEvent(case_id=case.case_id, kind="request", by="community:c1", at=at, note=text, request_id=rid,
                      request_kind=kind, due_at=answer_due(RequestsDoc(), kind, at))
    return apply_case_event(case, event), rid


def _answer(case: Case, rid: str, at: datetime, text: str = "已送达") -> Case:
    return apply_case_event(case, CaseEvent(case_id=case.case_id, kind="answered", by="site:s1", at=at, note=text,
                                            request_id=rid))


def test_a_request_is_open_then_overdue_past_its_kinds_deadline_and_answered_with_its_response_time() -> None:
    case, rid = _posted(_case())
    row = case.requests[0]
    assert case_of_request(rid) == "case-r1" and row[1] == "medical" and row[5] == (T0 + timedelta(hours=1)).isoformat()
    assert request_status(row, T0 + timedelta(minutes=59)) == "open"
    assert request_status(row, T0 + timedelta(hours=1)) == "overdue"
    assert requests_due(case.requests, T0 + timedelta(minutes=59)) == []
    assert requests_due(case.requests, T0 + timedelta(hours=2)) == [row]
    assert next_due(case.requests) == (T0 + timedelta(hours=1)).timestamp()
    answered = _answer(case, rid, T0 + timedelta(minutes=42))
    assert response_minutes(answered.requests[0]) == 42.0
    assert request_status(answered.requests[0], T0 + timedelta(days=1)) == "answered"
    assert requests_due(answered.requests, T0 + timedelta(days=1)) == [] and next_due(answered.requests) is None
    shown = request_json(answered.requests[0], T0 + timedelta(hours=3), ZONE)
    assert shown["status"] == "answered" and shown["response_minutes"] == 42.0 and shown["posted_at"].endswith("+08:00")


def test_request_steps_are_idempotent_and_an_escalated_request_is_not_escalated_again() -> None:
    case, rid = _posted(_case())
    again, _ = _posted(case)
    assert again == case
    late = T0 + timedelta(hours=2)
    escalated = apply_case_event(case, CaseEvent(case_id="case-r1", kind="request_escalated", by="epiflow", at=late,
                                                 request_id=rid))
    assert escalated.requests[0][9] == late.isoformat()
    assert requests_due(escalated.requests, late + timedelta(hours=1)) == [] and next_due(escalated.requests) is None
    assert request_status(escalated.requests[0], late) == "overdue"  # still waiting for its answer
    first = _answer(escalated, rid, late + timedelta(minutes=5), "第一次答复")
    assert _answer(first, rid, late + timedelta(minutes=9), "第二次答复") == first
    assert first.requests[0][8] == "第一次答复" and response_minutes(first.requests[0]) == 125.0
    with pytest.raises(CaseError, match="no request 'case-r1.000000000000'"):
        _answer(case, "case-r1.000000000000", late)


def test_a_case_with_requests_survives_its_table_record() -> None:
    case, rid = _posted(_case())
    case = _answer(case, rid, T0 + timedelta(minutes=3))
    message = TriageMessage(message_id="m1", case_id="case-r1", person_key="k1", masked_id="330***********123X",
                            name="张三", phone="138", community="c1", action="home_isolation", previous_action=None,
                            severity=40, due_at=None, reasons=[Reason(rule="r", text="t")], rules_version="v",
                            flagged_at=T0, source_event_ids=[])
    back, _ = case_from_bytes(case_to_bytes(case, message))
    assert back == case


@pytest.mark.parametrize(("kind", "text", "field", "words"), [
    ("food", "米", "kind", "one of supplies, medical, other"),
    ("supplies", "  ", "text", "missing or empty"),
    ("supplies", None, "text", "missing or empty"),
    ("other", "x" * 501, "text", "the limit is 500"),
])
def test_a_bad_request_names_its_field(kind: object, text: object, field: str, words: str) -> None:
    problems = request_problems(kind, text)
    assert [f for f, _ in problems] == [field] and words in problems[0][1]


def test_the_sla_comes_from_the_rules_and_a_broken_one_is_refused_with_file_and_line() -> None:
    text = RULES.read_text(encoding="utf-8")
    rules = parse_rules(text, source="rules.yaml")
    assert rules.document.requests.answer_within_hours.medical == 1
    assert answer_due(rules.document.requests, "supplies", T0) == T0 + timedelta(hours=4)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.strip().startswith("medical:"))
    for broken, words in ((text.replace("    medical: 1 ", "    medicl: 1 "), "unknown key 'medicl'"),
                          (text.replace("    medical: 1 ", "    medical: 0 "), "was 0 but must be greater than 0"),
                          (text.replace("    medical: 1 ", "    medical: 200 "), "was 200 but must be at most 168")):
        with pytest.raises(RulesError, match=rf"rules.yaml:{line}: requests\.answer_within_hours\.medic\w+: {words}"):
            parse_rules(broken, source="rules.yaml")


def test_request_messages_have_deterministic_ids_per_step() -> None:
    case, rid = _posted(_case())
    shown = {"masked_id": "330***********123X", "name": "张三", "phone": "138"}
    posted = request_message("case-r1", "k1", "c1", "home_isolation", shown, case.requests[0], "posted")
    assert posted == request_message("case-r1", "k1", "c1", "home_isolation", shown, case.requests[0], "posted")
    answered = _answer(case, rid, T0 + timedelta(minutes=10))
    told = request_message("case-r1", "k1", "c1", "home_isolation", shown, answered.requests[0], "answered")
    assert told.kind == "request" and told.message_id != posted.message_id and told.detail["response_minutes"] == 10.0
    assert told.at == T0 + timedelta(minutes=10)


def test_the_dashboard_tally_counts_open_and_overdue_requests_per_street_and_the_median_response() -> None:
    a, ra = _posted(_case(case_id="case-a"), "medical", "胸闷")
    a = _answer(a, ra, T0 + timedelta(minutes=20))
    b, _ = _posted(_case(case_id="case-b"), "medical", "发热")
    c, _ = _posted(_case(case_id="case-c", street="东街道"), "supplies", "米面")
    d, rd = _posted(_case(case_id="case-d", street="东街道"), "other", "快递")
    d = _answer(d, rd, T0 + timedelta(minutes=40))
    now = T0 + timedelta(hours=2)  # b (medical, 1 h) is overdue; c (supplies, 4 h) is still open
    shown = {"masked_id": "m"}
    tally = merge([tally_cases([(a, shown), (b, shown)], now), tally_cases([(c, shown), (d, shown)], now)])
    assert tally.requests == {"西湖街道": {"open": 1, "overdue": 1}, "东街道": {"open": 1, "overdue": 0}}
    assert sorted(tally.response_minutes) == [20.0, 40.0]
    out = summary(tally, now, 100)["requests"]
    assert out["open"] == 2 and out["overdue"] == 1 and out["answered"] == 2 and out["median_response_minutes"] == 30.0
    assert out["streets"] == [{"street": "东街道", "open": 1, "overdue": 0}, {"street": "西湖街道", "open": 1, "overdue": 1}]


def _stage(case_id: str, kind: str, at: datetime, arrived: datetime | None = None) -> dict:
    return {"case_id": case_id, "kind": kind, "by": "site:s1", "at": at.isoformat(), "site": "隔离点" if kind == "received" else "",
            "arrived_at": None if arrived is None else arrived.isoformat()}


def test_transfer_and_reception_times_reach_the_dashboard_tally_and_the_daily_report() -> None:
    moved = Case(case_id="case-t1", person_key="k1", community="c1", street="西湖街道", action="transfer", severity=90,
                 opened_at=T0, due_at=None)
    steps = [CaseEvent(case_id="case-t1", kind="accepted", by="community:c1", at=T0),
             CaseEvent(case_id="case-t1", kind="dispatched", by="community:c1", at=T0 + timedelta(minutes=5)),
             CaseEvent(case_id="case-t1", kind="picked_up", by="community:c1", at=T0 + timedelta(minutes=30)),
             CaseEvent(case_id="case-t1", kind="received", by="site:s1", at=T0 + timedelta(minutes=70), site="隔离点",
                       arrived_at=T0 + timedelta(minutes=60))]
    for step in steps:
        moved = apply_case_event(moved, step)
    waiting = apply_case_event(apply_case_event(moved.model_copy(update={"case_id": "case-t2", "stages": ()}),
                                                CaseEvent(case_id="case-t2", kind="accepted", by="c", at=T0)),
                               CaseEvent(case_id="case-t2", kind="dispatched", by="c", at=T0 + timedelta(minutes=2)))
    now = T0 + timedelta(minutes=90)
    out = summary(tally_cases([(moved, {"masked_id": "m1"}), (waiting, {"masked_id": "m2"})], now), now, 100, zone=ZONE)
    assert out["transfers"]["median_transfer_minutes"] == 70.0 and out["transfers"]["median_reception_minutes"] == 10.0
    assert out["transfers"]["received"] == 1
    assert [(t["case_id"], t["stage"], t["minutes_since_accepted"]) for t in out["transfers"]["in_progress"]] == \
        [("case-t2", "dispatched", 90.0)]

    events = [{"case_id": "case-t1", "kind": "accepted", "at": T0.isoformat()},
              _stage("case-t1", "dispatched", T0 + timedelta(minutes=5)),
              _stage("case-t1", "received", T0 + timedelta(minutes=70), T0 + timedelta(minutes=60)),
              {"case_id": "case-t2", "kind": "accepted", "at": T0.isoformat()},
              _stage("case-t2", "dispatched", T0 + timedelta(minutes=2))]
    shown = {"case-t1": {"community": "c1", "masked_id": "m1", "action": "transfer"},
             "case-t2": {"community": "c1", "masked_id": "m2", "action": "transfer"}}
    frame, totals = transfers_day(events, shown, T0.astimezone(ZONE).date(), ZONE, {"c1": "西湖街道"}, now)
    assert totals == {"transfers_received": 1, "transfers_in_progress": 1, "median_transfer_minutes": 70.0,
                      "median_reception_minutes": 10.0}
    assert frame["case_id"].tolist() == ["case-t2", "case-t1"] and frame["stage"].tolist() == ["dispatched", "received"]


def test_the_daily_report_counts_the_days_requests_per_street() -> None:
    due = (T0 + timedelta(hours=1)).isoformat()
    events = [
        {"case_id": "case-a", "kind": "request", "request_id": "case-a.1", "at": T0.isoformat(), "due_at": due},
        {"case_id": "case-a", "kind": "answered", "request_id": "case-a.1", "at": (T0 + timedelta(minutes=15)).isoformat()},
        {"case_id": "case-b", "kind": "request", "request_id": "case-b.1", "at": T0.isoformat(), "due_at": due},
        {"case_id": "case-b", "kind": "request", "request_id": "case-b.2", "at": (T0 + timedelta(hours=5)).isoformat(),
         "due_at": (T0 + timedelta(hours=9)).isoformat()},
    ]
    frame, totals = requests_day(events, {"case-a": "c1", "case-b": "c2"}, T0.astimezone(ZONE).date(), ZONE,
                                 {"c1": "西湖街道", "c2": "东街道"}, T0 + timedelta(hours=3))
    assert totals == {"requests_posted": 2, "requests_answered": 1, "requests_open": 1, "requests_overdue": 1,
                      "median_response_minutes": 15.0}, "the request posted after as_of is not counted"
    assert frame.astype(object).where(frame.notna(), None).to_dict("records") == [
        {"street": "东街道", "requests_posted": 1, "requests_answered": 0, "requests_open": 1, "requests_overdue": 1,
         "median_response_minutes": None},
        {"street": "西湖街道", "requests_posted": 1, "requests_answered": 1, "requests_open": 0, "requests_overdue": 0,
         "median_response_minutes": 15.0}]
