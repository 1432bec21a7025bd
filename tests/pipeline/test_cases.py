"""Case lifecycle: open, accept, resolve, overdue and escalation (also across midnight)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.cases import apply_case_event, escalate, open_case, overdue
from pipeline.errors import CaseError
from pipeline.events import CaseEvent, TriageMessage
from tests.pipeline.conftest import t


def _message(case_id="case-1", flagged=None, due_minutes=30):
    flagged = flagged or t("20 23:50")
    return TriageMessage(
        message_id="msg-1", case_id=case_id, person_key="k", masked_id="110***********002X", name="张伟",
        phone="13900139000", community="330106001", action="transfer", previous_action=None, severity=60,
        due_at=flagged + timedelta(minutes=due_minutes), reasons=[], rules_version="v1", flagged_at=flagged,
        source_event_ids=["n-1"],
    )


def test_open_case_takes_due_time_and_street():
    case = open_case(_message(), "翠苑街道")
    assert case.due_at.isoformat() == "2022-06-21T00:20:00+08:00" and case.street == "翠苑街道" and case.is_open


def test_overdue_across_midnight_and_escalation():
    case = open_case(_message(), "翠苑街道")
    assert overdue([case], case.due_at - timedelta(seconds=1)) == []
    assert overdue([case], case.due_at) == [case]
    escalated, event = escalate(case, case.due_at)
    assert event.kind == "escalated" and "翠苑街道" in event.note
    assert overdue([escalated], case.due_at + timedelta(hours=1)) == []
    with pytest.raises(CaseError, match="already escalated"):
        escalate(escalated, case.due_at)


def test_accepted_or_resolved_cases_are_not_overdue():
    case = open_case(_message(), None)
    accepted = apply_case_event(case, CaseEvent(case_id="case-1", kind="accepted", by="w1", at=t("21 00:05")))
    assert overdue([accepted], t("21 02:00")) == []
    resolved = apply_case_event(case, CaseEvent(case_id="case-1", kind="resolved", by="w1", at=t("21 00:10")))
    assert resolved.accepted_at == resolved.resolved_at and not resolved.is_open


def test_case_events_are_idempotent_and_checked():
    case = open_case(_message(), None)
    accept = CaseEvent(case_id="case-1", kind="accepted", by="w1", at=t("21 00:05"))
    once = apply_case_event(case, accept)
    assert apply_case_event(once, accept) == once
    assert apply_case_event(once, accept.model_copy(update={"at": t("21 01:00")})).accepted_at == t("21 00:05")
    note = CaseEvent(case_id="case-1", kind="note", by="w1", at=t("21 00:06"), note="called")
    noted = apply_case_event(once, note)
    assert apply_case_event(noted, note) == noted and len(noted.notes) == 1
    with pytest.raises(CaseError, match="applied to case"):
        apply_case_event(case, CaseEvent(case_id="case-2", kind="accepted", by="w1", at=t("21 00:05")))


def test_overdue_sorts_most_overdue_first():
    a = open_case(_message("case-a", flagged=t("20 10:00")), None)
    b = open_case(_message("case-b", flagged=t("20 09:00")), None)
    assert [c.case_id for c in overdue([a, b], t("20 12:00"))] == ["case-b", "case-a"]
    with pytest.raises(CaseError, match="timezone-aware"):
        overdue([a], t("20 12:00").replace(tzinfo=None))
