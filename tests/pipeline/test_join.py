"""The batched join: one verdict and at most one message per person per batch, and re-evaluation."""

from __future__ import annotations

from datetime import timedelta

from pipeline.join import step_many
from pipeline.state import new_state
from tests.pipeline.conftest import AT, HIGH_PT, declaration, events_of, nat, t


def test_two_events_of_one_person_in_a_batch_give_one_message(rules, regions, communities) -> None:
    events = events_of(declaration("d-1", stops=[(HIGH_PT, t("15 08:00"), t("15 18:00"))]),
                       nat("n-1", sampled=AT - timedelta(hours=3), result="positive"))
    state = new_state(events[0].person_key)
    [outcome] = step_many([(state, events)], rules, regions, communities, AT)
    assert outcome.message is not None and outcome.message.action == "transfer"
    assert {"positive-nat", "visited-high"} <= set(outcome.verdict.rules)
    assert {"positive-nat", "visited-high"} <= {r.rule for r in outcome.message.reasons}
    assert outcome.after.last is not None and outcome.after.last.action == "transfer"
    assert outcome.events == tuple(events)


def test_the_same_verdict_again_sends_nothing_and_reevaluation_needs_no_event(rules, regions, communities) -> None:
    events = events_of(nat("n-1", sampled=AT - timedelta(hours=3), result="positive"))
    [first] = step_many([(new_state(events[0].person_key), events)], rules, regions, communities, AT)
    [again] = step_many([(first.after, events)], rules, regions, communities, AT)
    [reevaluated] = step_many([(first.after, [])], rules, regions, communities, AT + timedelta(minutes=5))
    assert first.message is not None
    assert again.message is None and again.after is first.after
    assert reevaluated.message is None and reevaluated.events == ()


def test_outcomes_stay_aligned_with_the_batch(rules, regions, communities) -> None:
    positive = events_of(nat("n-1", sampled=AT - timedelta(hours=3), result="positive"))
    other = {"id_number": "33010619850412301X", "name": "王芳", "phone": "13800138000"}
    negative = events_of(nat("n-2", sampled=AT - timedelta(hours=3), result="negative", person=other))
    batch = [(new_state(positive[0].person_key), positive), (new_state(negative[0].person_key), negative)]
    outcomes = step_many(batch, rules, regions, communities, AT)
    assert [o.after.person_key for o in outcomes] == [positive[0].person_key, negative[0].person_key]
    assert outcomes[0].message is not None and outcomes[1].message is None
