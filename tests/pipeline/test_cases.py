"""Case lifecycle: open, accept, resolve, overdue and escalation (also across midnight); a case follows its person."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from pipeline.cases import (
    CLEARED_BY_RULES,
    apply_case_event,
    case_for_message,
    case_from_bytes,
    case_to_bytes,
    escalate,
    open_case,
    overdue,
    update_from_message,
)
from pipeline.errors import CaseError
from pipeline.events import CaseEvent, TriageMessage
from tests.pipeline.conftest import t


def _message(case_id="case-1", flagged=None, due_minutes=30, action="transfer", severity=60, community="330106001"):
    flagged = flagged or t("20 23:50")
    return TriageMessage(
        message_id=f"msg-{action}-{community}", case_id=case_id, person_key="k", masked_id="110***********002X",
        name="张伟", phone="13900139000", community=community, action=action, previous_action=None, severity=severity,
        due_at=None if due_minutes is None else flagged + timedelta(minutes=due_minutes), reasons=[],
        rules_version="v1", flagged_at=flagged, source_event_ids=["n-1"],
    )


def _flagged_for_a_test(flagged=None):
    return open_case(_message(flagged=flagged or t("20 08:00"), due_minutes=1440, action="test_within_24h", severity=10), "翠苑街道")


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


def test_a_raised_action_is_due_within_the_new_window_from_the_new_message():
    case = _flagged_for_a_test()
    accepted = apply_case_event(case, CaseEvent(case_id="case-1", kind="accepted", by="w1", at=t("20 08:10")))
    raised = update_from_message(accepted, _message(flagged=t("20 10:00"), due_minutes=30))
    assert raised.action == "transfer" and raised.severity == 60
    assert raised.due_at == t("20 10:30") and raised.opened_at == case.opened_at
    assert raised.accepted_at is None and raised.status == "open"
    assert overdue([raised], t("20 10:31")) == [raised]
    assert "raised from test_within_24h to transfer" in raised.notes[-1]
    assert update_from_message(raised, _message(flagged=t("20 10:00"), due_minutes=30)) == raised


def test_a_lowered_action_reopens_an_escalated_case_with_its_own_deadline():
    case = open_case(_message(flagged=t("20 08:00")), None)
    escalated, _ = escalate(case, t("20 08:31"))
    lowered = update_from_message(escalated, _message(flagged=t("20 09:00"), due_minutes=240, action="home_isolation", severity=40))
    assert lowered.due_at == t("20 13:00") and lowered.escalated_at is None and lowered.status == "open"
    assert "lowered from transfer to home_isolation" in lowered.notes[-1]
    assert overdue([lowered], t("20 12:59")) == [] and overdue([lowered], t("20 13:00")) == [lowered]


def test_a_resolved_case_whose_person_is_raised_is_open_again():
    case = _flagged_for_a_test()
    resolved = apply_case_event(case, CaseEvent(case_id="case-1", kind="resolved", by="w1", at=t("20 09:00")))
    raised = update_from_message(resolved, _message(flagged=t("20 10:00")))
    assert raised.is_open and raised.resolved_at is None and raised.due_at == t("20 10:30")


def test_a_clear_closes_the_case_and_later_steps_change_nothing():
    case = open_case(_message(flagged=t("20 08:00")), "翠苑街道")
    cleared = update_from_message(case, _message(flagged=t("20 08:20"), due_minutes=None, action="clear", severity=0))
    assert cleared.status == "closed" and cleared.closed_reason == CLEARED_BY_RULES and not cleared.is_open
    assert cleared.resolved_at == t("20 08:20") and cleared.accepted_at is None and cleared.due_at is None
    assert cleared.action == "clear" and CLEARED_BY_RULES in cleared.notes[-1]
    assert overdue([cleared], t("21 08:00")) == []
    for kind in ("accepted", "escalated", "resolved"):
        assert apply_case_event(cleared, CaseEvent(case_id="case-1", kind=kind, by="w1", at=t("20 09:00"))) == cleared
    assert update_from_message(cleared, _message(flagged=t("20 08:25"), due_minutes=None, action="clear", severity=0)) == cleared


def test_a_community_resolution_stays_when_the_rules_clear_later():
    case = open_case(_message(flagged=t("20 08:00")), None)
    resolved = apply_case_event(case, CaseEvent(case_id="case-1", kind="resolved", by="w1", at=t("20 08:10")))
    later = update_from_message(resolved, _message(flagged=t("20 09:00"), due_minutes=None, action="clear", severity=0))
    assert later == resolved and later.status == "resolved"


def test_a_move_changes_community_and_street_but_not_the_deadline():
    case = open_case(_message(flagged=t("20 08:00")), "翠苑街道")
    moved = update_from_message(case, _message(flagged=t("20 08:10"), community="330106002"), "文新街道")
    assert (moved.community, moved.street, moved.due_at) == ("330106002", "文新街道", case.due_at)


def test_case_for_message_opens_updates_or_ignores_a_clear():
    clear = _message(due_minutes=None, action="clear", severity=0)
    assert case_for_message(None, clear, None) is None
    opened = case_for_message(None, _message(), "翠苑街道")
    assert opened is not None and opened.status == "open"
    assert case_for_message(opened, clear, None).status == "closed"


def test_case_records_round_trip_compact_and_old_json_records_still_decode():
    message = _message()
    case = open_case(message, "street-1")
    raw = case_to_bytes(case, message)
    assert case_from_bytes(raw) == (case, message.model_dump(mode="json"))
    legacy = orjson.dumps({"case": case.model_dump(mode="json"), "message": message.model_dump(mode="json")})
    assert case_from_bytes(legacy) == (case, message.model_dump(mode="json"))
    assert len(raw) < 0.7 * len(legacy)


@pytest.mark.parametrize("raw", [b"", b"{", b"\x93\x02\x90\x90", b"x\x9c garbage"])
def test_bad_case_records_raise_case_error(raw):
    with pytest.raises(CaseError):
        case_from_bytes(raw)
