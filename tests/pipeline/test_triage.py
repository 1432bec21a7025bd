"""Verdicts, routing, checkpoint decisions and policy consultation on the default rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.errors import PipelineError
from pipeline.policy import policy_for
from pipeline.state import apply, apply_many, new_state, state_from_bytes, state_to_bytes
from pipeline.triage import UNASSIGNED, checkpoint_decision, evaluate, evaluate_many, remember, route
from tests.pipeline.conftest import (
    AT,
    CST,
    HIGH_PT,
    MED_PT,
    PLAIN_PT,
    declaration,
    events_of,
    nat,
    scan,
    t,
)

STAY = (t("17 09:00"), t("18 09:00"))


def _state(*docs, now=AT):
    events = events_of(*docs, now=now)
    return apply_many(new_state(events[0].person_key), events)


def test_most_severe_action_wins_and_every_rule_is_reported(rules, regions, communities):
    state = _state(
        declaration(stops=[(MED_PT, t("15 09:00"), t("16 09:00")), (HIGH_PT, *STAY)]),
        nat(sampled=t("20 06:00"), result="positive"),
    )
    verdict = evaluate(state, rules, regions, communities, AT)
    assert verdict.action == "transfer"
    assert set(verdict.rules) == {"positive-nat", "visited-high", "visited-medium", "declaration-without-nat"}
    assert [r.rule for r in verdict.reasons] == list(verdict.rules)
    assert verdict.rules[0] == "positive-nat"


def test_reason_names_place_region_level_and_date(rules, regions, communities):
    verdict = evaluate(_state(declaration(stops=[(HIGH_PT, *STAY)], report=t("19 08:00"))), rules, regions, communities, AT)
    (reason,) = verdict.reasons
    assert reason.region_id == "R-HIGH" and reason.level == "high"
    assert "place-0" in reason.text and "R-HIGH-name" in reason.text and "2022-06-01" in reason.text and "2022-06-17 09:00" in reason.text


@pytest.mark.parametrize(
    ("now", "minutes", "due"),
    [
        (t("20 23:50"), 30, "2022-06-21T00:20:00+08:00"),
        (t("20 12:00"), 30, "2022-06-20T12:30:00+08:00"),
    ],
)
def test_due_time_is_now_plus_minutes_to_accept_across_midnight(rules, regions, communities, now, minutes, due):
    verdict = evaluate(_state(nat(sampled=t("20 06:00"), result="positive"), now=now), rules, regions, communities, now)
    assert rules.actions[verdict.action].accept_within_minutes == minutes
    assert verdict.due_at.isoformat() == due


def test_due_time_in_the_rules_zone_from_a_utc_now(rules, regions, communities):
    now = t("20 23:50").astimezone(CST.__class__(timedelta(0)))
    verdict = evaluate(_state(nat(sampled=t("20 06:00"), result="positive"), now=now), rules, regions, communities, now)
    assert verdict.due_at.isoformat() == "2022-06-21T00:20:00+08:00"


def test_clear_has_no_due_time(rules, regions, communities):
    verdict = evaluate(_state(declaration(stops=[(PLAIN_PT, *STAY)], report=t("19 08:00"))), rules, regions, communities, AT)
    assert verdict.action == "clear" and verdict.due_at is None and verdict.rules == ()


def test_community_from_destination_then_checkpoint_then_unassigned(rules, regions, communities):
    assert evaluate(_state(declaration()), rules, regions, communities, AT).community == "330106001"
    assert evaluate(_state(scan(at=t("20 09:00"))), rules, regions, communities, AT).community == "330106002"
    both = _state(declaration(dest=PLAIN_PT), scan("s-1", at=t("20 09:00")))
    assert evaluate(both, rules, regions, communities, AT).community == "330106002"
    assert evaluate(_state(nat(sampled=t("19 09:00"))), rules, regions, communities, AT).community == UNASSIGNED


def test_route_sends_only_changes_with_deterministic_ids(rules, regions, communities):
    state = _state(declaration(stops=[(HIGH_PT, *STAY)], report=t("19 08:00")))
    verdict = evaluate(state, rules, regions, communities, AT)
    first = route(state.last, verdict)
    assert first is not None and first.action == "centralized_isolation" and first.previous_action is None
    assert first.address == "兰学社区3幢201室"  # the declared destination, for the community's visit
    assert state_from_bytes(state_to_bytes(state)).declaration.address == "兰学社区3幢201室"
    assert route(None, verdict).message_id == first.message_id
    state = remember(state, first)
    assert route(state.last, evaluate(state, rules, regions, communities, AT)) is None
    # raised: a positive result arrives in the same episode
    (positive,) = events_of(nat("n-9", sampled=t("20 06:00"), result="positive"))
    state = apply(state, positive)
    raised = route(state.last, evaluate(state, rules, regions, communities, AT))
    assert raised.action == "transfer" and raised.previous_action == "centralized_isolation"
    assert raised.case_id == first.case_id and raised.message_id != first.message_id
    state = remember(state, raised)
    # lowered to clear once the positive test and the stay are out of their windows
    later = AT + timedelta(days=15)
    cleared = route(state.last, evaluate(state, rules, regions, communities, later))
    assert cleared.action == "clear" and cleared.previous_action == "transfer" and cleared.case_id == first.case_id
    assert cleared.due_at is None


def test_new_episode_gets_a_new_case(rules, regions, communities):
    state = _state(nat("n-1", sampled=t("10 09:00"), reported=t("10 10:00"), result="positive"))
    first = route(state.last, evaluate(state, rules, regions, communities, t("11 12:00")))
    state = remember(state, first)
    state = remember(state, route(state.last, evaluate(state, rules, regions, communities, t("25 12:00"))))
    assert state.last.action == "clear"
    (again,) = events_of(nat("n-2", sampled=t("26 09:00"), reported=t("26 10:00"), result="positive"), now=t("26 12:00"))
    state = apply(state, again)
    second = route(state.last, evaluate(state, rules, regions, communities, t("26 12:00")))
    assert second.action == "transfer" and second.previous_action == "clear"
    assert second.case_id != first.case_id


def test_clear_without_history_sends_nothing(rules, regions, communities):
    state = _state(nat(sampled=t("19 09:00")))
    assert route(state.last, evaluate(state, rules, regions, communities, AT)) is None


def test_duplicate_and_out_of_order_events_give_one_message(rules, regions, communities):
    docs = [declaration(stops=[(MED_PT, *STAY)], report=t("19 08:00")), nat(sampled=t("19 09:00"))]
    sent = []
    for order in (docs, list(reversed(docs)) + docs):
        events = events_of(*order)
        state = new_state(events[0].person_key)
        messages = []
        for event in events:
            state = apply(state, event)
            msg = route(state.last, evaluate(state, rules, regions, communities, AT))
            state = state_from_bytes(state_to_bytes(remember(state, msg)))
            if msg is not None:
                messages.append(msg)
        sent.append([m.action for m in messages])
        assert messages[-1].action == "home_isolation"
    assert sent[0] == ["home_isolation"]
    assert sent[1] == ["home_isolation"]


def test_evaluate_many_matches_one_by_one(rules, regions, communities):
    states = [
        _state(declaration(stops=[(HIGH_PT, *STAY)])),
        _state(scan(at=t("20 09:00"), origin=MED_PT, people=[{"id_number": "420102199001011236", "name": "李娜", "phone": "13700137000", "role": "driver"}])),
        _state(nat(sampled=t("19 09:00"), person={"id_number": "44030119880707001X", "name": "黄明", "phone": "13600136000"})),
    ]
    together = evaluate_many(states, rules, regions, communities, AT)
    alone = [evaluate(s, rules, regions, communities, AT) for s in states]
    assert together == alone
    assert [v.action for v in together] == ["centralized_isolation", "hold", "clear"]


def test_naive_now_is_refused(rules, regions, communities):
    with pytest.raises(PipelineError, match="timezone-aware"):
        evaluate(_state(declaration()), rules, regions, communities, AT.replace(tzinfo=None))


def test_checkpoint_decision_holds_the_vehicle_when_anyone_is_held(rules, regions, communities):
    crew = [
        {"id_number": "11010519491231002X", "name": "张伟", "phone": "13900139000", "role": "driver"},
        {"id_number": "420102199001011236", "name": "李娜", "phone": "13700137000", "role": "passenger"},
    ]
    events = events_of(scan(at=t("20 09:00"), origin=PLAIN_PT, people=crew), nat(sampled=t("19 09:00")))
    by_person = {}
    for e in events:
        by_person.setdefault(e.person_key, []).append(e)
    states = [apply_many(new_state(k), v) for k, v in by_person.items()]
    verdicts = evaluate_many(states, rules, regions, communities, AT)
    decision = checkpoint_decision(verdicts, rules)
    assert decision.decision == "hold"
    assert sorted(p.action for p in decision.people) == ["clear", "hold"]
    held = next(p for p in decision.people if p.action == "hold")
    assert held.masked_id == "420***********1236" and held.reasons[0].rule == "checkpoint-without-nat"
    assert checkpoint_decision([v for v in verdicts if v.action == "clear"], rules).decision == "pass"
    with pytest.raises(PipelineError, match="at least one person"):
        checkpoint_decision([], rules)


@pytest.mark.parametrize(
    ("point", "action", "level"),
    [(HIGH_PT, "centralized_isolation", "high"), (MED_PT, "home_isolation", "medium"), (PLAIN_PT, "clear", None)],
)
def test_policy_for_a_point(rules, regions, point, action, level):
    policy = policy_for(point[0], point[1], AT, rules, regions)
    assert policy.action == action and policy.level == level
    assert policy.to_json()["text"]["en"]


def test_policy_without_nat_asks_for_a_test(rules, regions):
    assert policy_for(PLAIN_PT[0], PLAIN_PT[1], AT, rules, regions, with_negative_nat=False).action == "test_within_24h"
    with pytest.raises(PipelineError, match="lon was 200"):
        policy_for(200, 30, AT, rules, regions)
