"""Contact tracing scenarios: who becomes a close or secondary contact of a positive case, and who does not."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from geo.proximity import distance_m
from pipeline.contacts import close_request, trace_states, with_exposures
from pipeline.errors import RulesError
from pipeline.evaluate import build_states
from pipeline.identity import check_character
from pipeline.rules import parse_rules
from pipeline.settings import REPO_ROOT
from pipeline.triage import evaluate_many
from tests.pipeline.conftest import AT, SECRET, declaration, nat, scan, t

STAY = (120.300000, 30.430000)
NEAR_40M = (120.300000, 30.430360)   # 40 m north
FAR_2KM = (120.320863, 30.430000)    # 2 km east


def _person(n: int) -> dict:
    first17 = f"11010519800101{n:03d}"
    return {"id_number": first17 + check_character(first17), "name": f"人{n}", "phone": f"139{n:08d}"}


INDEX, RIDER, NEIGHBOUR, LATER, AWAY, RIDER2, BEFORE, EARLIER = (_person(n) for n in range(1, 9))


def _states(*docs: dict, rules):
    lines = [orjson.dumps(d) for d in docs]
    return build_states(lines, lookback=timedelta(days=14), horizon=rules.horizon, secret=SECRET, at=AT)


def _by_name(states, exposures):
    return {states[k].name: [(e.degree, e.rule) for e in ex] for k, ex in exposures.items()}


def _trip(sampled=t("19 09:00"), reported=None):
    """The index case rides with RIDER, stays at STAY beside NEIGHBOUR; others near but not contacts."""
    return [
        scan("s-trip", at=t("18 10:00"), people=[{**INDEX, "role": "driver"}, {**RIDER, "role": "passenger"}],
             origin=(121.0, 31.0)),
        declaration("d-index", person=INDEX, stops=[(STAY, t("17 08:00"), t("17 10:00"))]),
        declaration("d-neighbour", person=NEIGHBOUR, stops=[(NEAR_40M, t("17 09:00"), t("17 10:20"))]),
        declaration("d-later", person=LATER, stops=[(STAY, t("17 10:30"), t("17 12:00"))]),
        declaration("d-away", person=AWAY, stops=[(FAR_2KM, t("17 08:00"), t("17 10:00"))]),
        scan("s-before", at=t("18 06:00"), people=[{**RIDER, "role": "driver"}, {**BEFORE, "role": "passenger"}]),
        scan("s-after", at=t("19 08:00"), people=[{**RIDER, "role": "driver"}, {**RIDER2, "role": "passenger"}]),
        nat("n-index", sampled=sampled, reported=reported, result="positive", person=INDEX),
    ]


def test_the_test_points_are_where_the_scenario_says():
    assert distance_m(*STAY, *NEAR_40M) == pytest.approx(40, abs=0.5)
    assert distance_m(*STAY, *FAR_2KM) == pytest.approx(2000, abs=5)


def test_co_traveller_and_co_located_person_are_close_contacts_others_are_not(rules):
    states = _states(*_trip(), rules=rules)
    found = _by_name(states, trace_states(states, rules))
    assert found[RIDER["name"]] == [("close", "close-contact-vehicle")]
    assert found[NEIGHBOUR["name"]] == [("close", "close-contact-place")]
    assert LATER["name"] not in found, "at the same place only after the index case left"
    assert AWAY["name"] not in found, "2 km away"
    assert INDEX["name"] not in found, "the index case is not their own contact"


def test_co_traveller_of_a_close_contact_after_exposure_is_a_secondary_contact(rules):
    states = _states(*_trip(), rules=rules)
    found = _by_name(states, trace_states(states, rules))
    assert found[RIDER2["name"]] == [("secondary", "secondary-contact-vehicle")]
    assert BEFORE["name"] not in found, "rode with the close contact before their exposure"


def test_a_positive_reported_days_after_the_trip_still_finds_the_contacts(rules):
    states = _states(*_trip(sampled=t("20 08:00"), reported=t("20 11:00")), rules=rules)
    found = _by_name(states, trace_states(states, rules))
    assert found[RIDER["name"]] == [("close", "close-contact-vehicle")]
    assert found[NEIGHBOUR["name"]] == [("close", "close-contact-place")]


def test_places_before_the_window_before_the_sample_are_not_searched(rules):
    early_stay = (121.5, 31.2)
    docs = _trip()
    docs[1] = declaration("d-index", person=INDEX, stops=[(early_stay, t("14 08:00"), t("14 10:00")),
                                                           (STAY, t("17 08:00"), t("17 10:00"))])
    docs.append(declaration("d-earlier", person=EARLIER, stops=[(early_stay, t("14 08:00"), t("14 10:00"))]))
    states = _states(*docs, rules=rules)
    request = close_request(next(s for s in states.values() if s.name == INDEX["name"]), rules.contacts)
    assert request is not None and request.not_before == int((t("19 09:00") - timedelta(days=4)).timestamp())
    found = _by_name(states, trace_states(states, rules))
    assert EARLIER["name"] not in found, "the shared stay ended more than 4 days before the positive sample"
    assert found[NEIGHBOUR["name"]] == [("close", "close-contact-place")]


def test_contact_verdict_names_rule_index_masked_id_place_and_time(rules, regions, communities):
    states = _states(*_trip(), rules=rules)
    exposures = trace_states(states, rules)
    verdicts = {v.name: with_exposures(v, exposures.get(v.person_key, ()), rules, AT)
                for v in evaluate_many(list(states.values()), rules, regions, communities, AT)}
    index_masked = next(s.masked_id for s in states.values() if s.name == INDEX["name"])
    rider = verdicts[RIDER["name"]]
    assert rider.action == "centralized_isolation"
    assert rider.rules[0] == "close-contact-vehicle"
    reason = rider.reasons[0]
    assert index_masked in reason.text and "cp-01" in reason.text and "2022-06-18 10:00" in reason.text
    assert reason.at == t("18 10:00")
    assert INDEX["id_number"] not in reason.text
    assert verdicts[RIDER2["name"]].action == "home_isolation"
    assert verdicts[NEIGHBOUR["name"]].action == "centralized_isolation"
    assert verdicts[INDEX["name"]].action == "transfer"
    assert verdicts[LATER["name"]].action != "centralized_isolation"


def test_replaying_the_same_positive_adds_no_exposure(rules):
    once = _states(*_trip(), rules=rules)
    twice = _states(*_trip(), nat("n-index-2", sampled=t("19 12:00"), result="positive", person=INDEX), rules=rules)
    assert trace_states(once, rules) == trace_states(twice, rules)


def _with_contacts(section: str) -> str:
    text = (REPO_ROOT / "config" / "rules.yaml").read_text(encoding="utf-8")
    head = text[: text.index("\ncontacts:")]
    return head + "\n" + section


@pytest.mark.parametrize(("section", "problem"), [
    ("contacts:\n  rules:\n    - {id: c1, description: x, degree: close, same: vehicle, action: quarantine}\n",
     r":\d+: contacts\.rules\[0\]\.action: unknown action 'quarantine'"),
    ("contacts:\n  rules:\n    - {id: c1, description: x, degree: close, same: bus, action: transfer}\n",
     r"contacts\.rules\[0\]\.same"),
    ("contacts:\n  rules:\n    - {id: c1, description: x, degree: close, same: place, within_m: -5, action: transfer}\n",
     r"contacts\.rules\[0\]\.within_m"),
    ("contacts:\n  rules:\n    - {id: positive-nat, description: x, degree: close, same: vehicle, action: transfer}\n",
     r"contact rule id 'positive-nat' is already a rule id"),
    ("contacts:\n  days_before_sample: 4\n  rules:\n    - {id: c1, description: x, degree: third, same: vehicle, action: transfer}\n",
     r"contacts\.rules\[0\]\.degree"),
    ("contacts:\n  rules:\n    - {id: c1, description: x, degree: close, same: vehicle, action: clear}\n",
     r"a contact rule cannot give 'clear'"),
])
def test_contact_rules_that_do_not_validate_are_refused_naming_file_line_and_place(section, problem):
    with pytest.raises(RulesError, match=problem):
        parse_rules(_with_contacts(section), source="config/rules.yaml")


def test_the_default_document_traces_contacts(rules):
    ids = [r.id for r in rules.contacts.rules]
    assert ids == ["close-contact-vehicle", "close-contact-place", "secondary-contact-vehicle", "secondary-contact-place"]
    assert rules.contacts.before_sample_s == 4 * 86_400
    place = rules.contacts.rules[1]
    assert (place.within_m, place.overlap_s, place.action.name) == (100, 15 * 60, "centralized_isolation")
