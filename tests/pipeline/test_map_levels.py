"""The five map levels from config/map_levels.yaml: parsing, the level of a community and of a street."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import shapely

from geo.communities import Community
from geo.regions import Region, RiskIndex
from pipeline.cases import Case
from pipeline.errors import PipelineError
from pipeline.map_levels import (
    AreaFacts,
    area_facts,
    level_of,
    load_map_levels,
    parse_map_levels,
    region_levels,
    street_facts,
)
from pipeline.settings import REPO_ROOT

LEVELS = load_map_levels(REPO_ROOT / "config" / "map_levels.yaml")
T0 = datetime(2022, 6, 20, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(("facts", "level"), [
    (AreaFacts("c", 5000), 0),
    (AreaFacts("c", 5000, open_by_severity={10: 1}), 1),
    (AreaFacts("c", 5000, open_by_severity={40: 24}), 1),  # 4.8 per 1,000 < 5.0
    (AreaFacts("c", 5000, open_by_severity={40: 20, 50: 5}), 2),  # 5.0 per 1,000 of severity >= 40
    (AreaFacts("c", 5000, region_level=1), 2),
    (AreaFacts("c", 5000, open_by_severity={50: 19, 60: 1}), 3),  # 4.0 per 1,000 of severity >= 50
    (AreaFacts("c", 5000, region_level=2, open_by_severity={10: 1}), 3),
    (AreaFacts("c", 5000, open_by_severity={60: 3}), 4),  # 0.6 per 1,000 of severity >= 60
    (AreaFacts("c", 5000, open_by_severity={60: 2}), 1),  # 0.4 per 1,000: under every cases threshold but "any case"
    (AreaFacts("c", 20000, open_by_severity={60: 1}), 1),  # one transfer in a big community
    (AreaFacts("c", 5000, region_level=3), 4),
    (AreaFacts("c", None, open_by_severity={60: 1}), 4),  # no population: counted as 1,000 residents
])
def test_level_of_a_community(facts: AreaFacts, level: int) -> None:
    assert level_of(facts, LEVELS) == level


def test_each_level_has_a_name_meaning_and_threshold() -> None:
    assert [LEVELS.by_number(n).colour for n in (4, 3, 2, 1, 0)] == ["red", "orange", "yellow", "blue", "green"]
    assert LEVELS.by_number(4).threshold() == "区内有高风险区；或每千名居民 ≥ 0.5 例严重度 ≥ 60 的未结案件"
    assert LEVELS.by_number(0).threshold("en") == "everything else"
    with pytest.raises(PipelineError, match="expected to be 0..4"):
        LEVELS.by_number(5)


@pytest.mark.parametrize(("text", "problem"), [
    ("levels: []", "levels"),
    ("levels: [" + ", ".join(["{colour: red, name: {zh: a, en: a}, meaning: {zh: a, en: a}, region: high}"] * 5) + "]",
     "expected in the order"),
    ("levels: [", "not valid YAML"),
])
def test_a_bad_level_document_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(PipelineError, match=problem):
        parse_map_levels(text, "levels.yaml")


def _community(code: str, street: str, x: float, population: int | None = 5000) -> Community:
    return Community(code, f"{code}社区", street, shapely.box(x, 0, x + 1, 1), population)


def _case(case_id: str, community: str, severity: int, **extra: object) -> Case:
    return Case(case_id=case_id, person_key="k", community=community, street=None, action="hold", severity=severity,
                opened_at=T0, due_at=T0 + timedelta(minutes=30), **extra)


def test_regions_in_force_and_open_cases_give_the_facts_of_each_community_and_street() -> None:
    communities = [_community("A", "S1", 0), _community("B", "S1", 1), _community("C", "S2", 5, None)]
    regions = RiskIndex([
        Region("r1", "medium", "r1", T0 - timedelta(days=1), None, shapely.box(0.2, 0.2, 0.4, 0.4)),
        Region("r2", "high", "r2", T0 - timedelta(days=3), T0 - timedelta(days=2), shapely.box(5.2, 0.2, 5.4, 0.4)),
    ])
    found = region_levels(communities, regions, T0)
    assert found == {"A": 2}
    cases = [_case("1", "B", 60), _case("2", "B", 60, resolved_at=T0), _case("3", "C", 10),
             _case("4", "C", 50, resolved_at=T0, closed_reason="cleared by rules")]
    facts = area_facts(communities, cases, found)
    assert [level_of(f, LEVELS) for f in facts] == [3, 1, 1]  # B: one transfer in 5,000 residents is 0.2 per 1,000
    streets = {f.code: f for f in street_facts(communities, facts)}
    assert streets["S1"].population == 10000 and streets["S1"].region_level == 2 and streets["S1"].open_by_severity == {60: 1}
    assert streets["S2"].population is None
