"""The key-groups document: the shipped one validates; problems name file, line and what is wrong."""

from __future__ import annotations

import pytest

from pipeline.errors import KeyGroupsError
from pipeline.key_groups import load_key_groups, parse_key_groups
from pipeline.settings import REPO_ROOT
from tests.key_group_data import GROUPS_YAML


def test_the_shipped_document_validates_with_twelve_groups() -> None:
    groups = load_key_groups(REPO_ROOT / "config" / "key_groups.yaml")
    assert len(groups.groups) == 12
    assert groups.get("cold_chain").every_hours == 24  # type: ignore[union-attr]
    assert groups.get("school_staff").every_hours == 168  # type: ignore[union-attr]


def test_a_hand_made_document_keeps_its_order_and_names() -> None:
    groups = parse_key_groups(GROUPS_YAML, source="kg.yaml")
    assert groups.version == "kg-test-1"
    assert groups.ids == ("cold_chain", "freight_drivers", "school_staff")
    assert groups.groups[1].name_zh == "货运司机"


@pytest.mark.parametrize(("broken", "line", "problem"), [
    (GROUPS_YAML.replace("every_hours: 48", "every_hours: -48"), 8, r"groups\[1\]\.every_hours: was -48 but must be a positive"),
    (GROUPS_YAML.replace("every_hours: 168", "every_hours: 1680"), 11, r"at most 336 hours"),
    (GROUPS_YAML.replace("id: school_staff", "id: cold_chain"), 9, r"duplicate group id 'cold_chain' \(first at groups\[0\]\)"),
    (GROUPS_YAML.replace("id: freight_drivers", "id: Freight"), 6, r"'Freight' is not a valid group id"),
    (GROUPS_YAML.replace("    every_hours: 24\n", "    every_hours: 24\n    colour: red\n"), 6, r"unknown key 'colour'"),
    (GROUPS_YAML.replace("version", "versoin"), 1, r"missing key 'version'"),
    ("groups: [", 1, r"not valid YAML"),
])
def test_a_broken_document_is_refused_naming_file_line_and_problem(broken: str, line: int, problem: str) -> None:
    with pytest.raises(KeyGroupsError, match=rf"kg\.yaml:{line}: .*{problem}"):
        parse_key_groups(broken, source="kg.yaml")
