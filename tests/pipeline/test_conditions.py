"""Every condition of the rules vocabulary, one document per condition, evaluated on real ingested events."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pipeline.rules import parse_rules
from pipeline.state import apply_many, new_state
from pipeline.triage import evaluate
from tests.pipeline.conftest import (
    AT,
    CHECKPOINT_PT,
    HIGH_PT,
    LIFTED_PT,
    LOW_PT,
    MED_PT,
    PLAIN_PT,
    declaration,
    events_of,
    nat,
    scan,
    t,
)

TEMPLATE = """
version: "test-1"
timezone: Asia/Shanghai
windows: {{lookback_days: 14, nat_valid_hours: 48, pre_designation_days: {pre}}}
actions:
  - {{name: flag, severity: 10, accept_within_minutes: 60, text: {{zh: 标记, en: flag}}}}
  - {{name: clear, severity: 0, text: {{zh: 无, en: none}}}}
rules:
  - id: r
    description: the condition under test
    when: {when}
    then: {{action: flag}}
"""


def fires(when: str, *docs: dict, regions, communities, now: datetime = AT, pre: float = 0) -> bool:
    rules = parse_rules(TEMPLATE.format(when=when, pre=pre), "test.yaml")
    events = events_of(*docs, now=now)
    state = apply_many(new_state(events[0].person_key), events)
    verdict = evaluate(state, rules, regions, communities, now)
    return verdict.action == "flag"


STAY = (t("17 09:00"), t("18 09:00"))


@pytest.mark.parametrize(
    ("when", "docs", "expected"),
    [
        ("{nat_positive: true}", [nat(sampled=t("19 09:00"), result="positive")], True),
        ("{nat_positive: true}", [nat(sampled=t("19 09:00"), result="negative")], False),
        ("{nat_positive: true}", [nat(sampled=t("19 09:00"), result="invalid")], False),
        ("{nat_positive: {within_days: 1}}", [nat(sampled=t("19 11:59:59"), reported=t("19 13:00"), result="positive")], False),
        ("{nat_positive: {within_days: 1}}", [nat(sampled=t("19 12:00"), reported=t("19 13:00"), result="positive")], True),
        ("{visited: {level: high, within_days: 7}}", [declaration(stops=[(HIGH_PT, *STAY)], report=t("19 08:00"))], True),
        ("{visited: {level: medium, within_days: 7}}", [declaration(stops=[(HIGH_PT, *STAY)], report=t("19 08:00"))], False),
        ("{visited: {level: [medium, low], within_days: 7}}", [declaration(stops=[(LOW_PT, *STAY)])], True),
        ("{visited: {level: medium}}", [declaration(stops=[(MED_PT, *STAY)])], True),
        ("{visited: {level: high}}", [declaration(stops=[(PLAIN_PT, *STAY)])], False),
        ("{visited: {level: high}}", [scan(at=t("20 09:00"), location=HIGH_PT)], True),
        ("{vehicle_origin: {level: medium}}", [scan(at=t("20 09:00"), origin=MED_PT)], True),
        ("{vehicle_origin: {level: medium}}", [scan(at=t("20 09:00"), origin=LOW_PT)], False),
        ("{vehicle_origin: {level: high}}", [declaration(stops=[(HIGH_PT, *STAY)])], False),
        ("{no_negative_nat: {before: arrival}}", [declaration()], True),
        ("{no_negative_nat: {before: arrival}}", [declaration(report=t("18 10:00"))], False),
        ("{no_negative_nat: {before: arrival}}", [declaration(report=t("18 09:59:59"))], True),
        ("{no_negative_nat: {before: arrival, within_hours: 72}}", [declaration(report=t("17 10:00"))], False),
        ("{no_negative_nat: {before: arrival}}", [nat(sampled=t("19 09:00"))], False),
        ("{no_negative_nat: {before: scan}}", [scan(at=t("20 09:00"))], True),
        ("{no_negative_nat: {before: scan}}", [scan(at=t("20 09:00")), nat(sampled=t("18 09:00"))], False),
        ("{no_negative_nat: {before: scan}}", [scan(at=t("20 09:00")), nat(sampled=t("18 08:59:59"))], True),
        ("{event_kind: declaration}", [declaration()], True),
        ("{event_kind: declaration}", [nat(sampled=t("19 09:00"))], False),
        ("{event_kind: nat_result}", [nat(sampled=t("19 09:00"))], True),
        ("{event_kind: nat_result}", [declaration(report=t("19 08:00"))], False),
        ("{event_kind: {kind: checkpoint_scan, within_hours: 24}}", [scan(at=t("19 12:00"))], True),
        ("{event_kind: {kind: checkpoint_scan, within_hours: 24}}", [scan(at=t("19 11:59:59"))], False),
        ("{role: driver}", [scan(at=t("20 09:00"), role="driver")], True),
        ("{role: [passenger, pedestrian]}", [scan(at=t("20 09:00"), role="driver")], False),
        ("{role: pedestrian}", [scan(at=t("20 09:00"), role="pedestrian")], True),
        ("{role: traveler}", [declaration()], True),
        ("{role: traveler}", [scan(at=t("20 09:00"))], False),
        ("{age: {min: 70}}", [declaration()], True),  # born 1949-12-31: 72 on 2022-06-20
        ("{age: {min: 73}}", [declaration()], False),
        ("{age: {max: 72}}", [declaration()], True),
        ("{age: {min: 18, max: 71}}", [declaration()], False),
        ("{community_in: ['330106001']}", [declaration()], True),
        ("{community_in: ['330106002']}", [declaration()], False),
        ("{community_in: ['330106002']}", [scan(at=t("20 09:00"), location=CHECKPOINT_PT)], True),
        ("{not: {nat_positive: true}}", [nat(sampled=t("19 09:00"))], True),
        ("{not: {nat_positive: true}}", [nat(sampled=t("19 09:00"), result="positive")], False),
        ("{all: [{role: driver}, {no_negative_nat: {before: scan}}]}", [scan(at=t("20 09:00"))], True),
        ("{all: [{role: passenger}, {no_negative_nat: {before: scan}}]}", [scan(at=t("20 09:00"))], False),
        ("{any: [{role: passenger}, {no_negative_nat: {before: scan}}]}", [scan(at=t("20 09:00"))], True),
        ("{any: [{role: passenger}, {nat_positive: true}]}", [scan(at=t("20 09:00"))], False),
    ],
)
def test_condition(when, docs, expected, regions, communities):
    assert fires(when, *docs, regions=regions, communities=communities) is expected


def test_lifted_region_counts_only_before_lifting(regions, communities):
    before = declaration(stops=[(LIFTED_PT, t("14 10:00"), t("14 23:59:59"))])
    after = declaration(stops=[(LIFTED_PT, t("15 00:00"), t("15 10:00"))])
    when = "{visited: {level: high}}"
    assert fires(when, before, regions=regions, communities=communities)
    assert not fires(when, after, regions=regions, communities=communities)


def test_region_lifted_at_runtime_stops_matching_new_visits(regions, communities):
    doc = declaration(stops=[(HIGH_PT, t("19 00:00"), t("19 06:00"))])
    when = "{visited: {level: high}}"
    assert fires(when, doc, regions=regions, communities=communities)
    regions.lift("R-HIGH", t("18 00:00"))
    assert not fires(when, doc, regions=regions, communities=communities)


def test_pre_designation_widens_a_region_backwards(regions, communities):
    # R-MED is designated 06-05 00:00; a stay ending 06-04 23:59:59 counts only with pre-designation days
    doc = declaration(stops=[(MED_PT, t("04 10:00"), t("04 23:59:59"))], submitted=t("10 09:00"), arrival=t("10 12:00"))
    when = "{visited: {level: medium, within_days: 30}}"
    now = t("11 12:00")
    assert not fires(when, doc, regions=regions, communities=communities, now=now)
    assert fires(when, doc, regions=regions, communities=communities, now=now, pre=1)


def test_window_edge_to_the_second_for_visits(regions, communities):
    edge = AT - timedelta(days=7)
    on_edge = declaration(stops=[(HIGH_PT, edge - timedelta(hours=3), edge)])
    past_edge = declaration(stops=[(HIGH_PT, edge - timedelta(hours=3), edge - timedelta(seconds=1))])
    when = "{visited: {level: high, within_days: 7}}"
    assert fires(when, on_edge, regions=regions, communities=communities)
    assert not fires(when, past_edge, regions=regions, communities=communities)
