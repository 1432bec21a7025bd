"""The case agent's decisions: which cases the escalation timer watches, the street queue, the escalation body."""

from __future__ import annotations

from datetime import timedelta

import orjson

from pipeline.cases import (
    apply_case_event,
    awaits_acceptance,
    escalate,
    escalation_body,
    open_case,
    street_queue,
)
from pipeline.events import CaseEvent, TriageMessage
from pipeline.requests import escalate_request
from tests.pipeline.conftest import t


def _message(action: str = "transfer", due_minutes: int | None = 30) -> TriageMessage:
    flagged = t("20 23:50")
    return TriageMessage(
        message_id=f"msg-{action}", case_id="case-1", person_key="k", masked_id="110***********002X", name="张伟",
        phone="13900139000", community="330106001", action=action, previous_action=None, severity=60,
        due_at=None if due_minutes is None else flagged + timedelta(minutes=due_minutes), reasons=[],
        rules_version="v1", flagged_at=flagged, source_event_ids=["n-1"],
    )


def test_only_an_open_unaccepted_unescalated_due_case_awaits_acceptance() -> None:
    case = open_case(_message(), "翠苑街道")
    assert awaits_acceptance(case)
    accepted = apply_case_event(case, CaseEvent(case_id="case-1", kind="accepted", by="w1", at=t("21 00:05")))
    escalated, _ = escalate(case, case.due_at)  # type: ignore[arg-type]
    assert not awaits_acceptance(accepted) and not awaits_acceptance(escalated)
    assert not awaits_acceptance(open_case(_message(due_minutes=None), "翠苑街道"))
    assert not awaits_acceptance(open_case(_message(action="clear"), "翠苑街道"))


def test_a_case_outside_every_street_goes_to_the_unassigned_street_queue() -> None:
    assert street_queue("翠苑街道") == "翠苑街道"
    assert street_queue(None) == "unassigned" and street_queue("") == "unassigned"


def test_the_escalation_body_is_the_triage_message_marked_as_an_escalation() -> None:
    message = _message()
    case = open_case(message, "翠苑街道")
    escalated, event = escalate(case, case.due_at)  # type: ignore[arg-type]
    body = orjson.loads(escalation_body(escalated, orjson.loads(message.model_dump_json()), event))
    assert body["kind"] == "escalation" and body["street"] == "翠苑街道"
    assert body["escalated_at"] == event.at.isoformat() and body["due_at"] == case.due_at.isoformat()  # type: ignore[union-attr]
    assert body["case_id"] == "case-1" and body["action"] == "transfer"


def test_an_unanswered_request_is_escalated_to_its_street_or_the_district() -> None:
    row = ("req-1", "supplies", "rice", "2022-06-20T08:00:00+08:00", "w1", "2022-06-20T20:00:00+08:00", "", "", "", "")
    event = escalate_request("case-1", "翠苑街道", row, t("20 21:00"))
    assert (event.kind, event.request_id, event.at) == ("request_escalated", "req-1", t("20 21:00"))
    assert event.note == "not answered by 2022-06-20T20:00:00+08:00; escalated to 翠苑街道"
    assert escalate_request("case-1", None, row, t("20 21:00")).note.endswith("escalated to the district")
