"""Obligations in the rules: the defaults follow the 9th edition; a broken schedule is refused with file, line, problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.errors import RulesError
from pipeline.rules import load_rules
from pipeline.settings import REPO_ROOT
from streams.cli import root

DEFAULT = (REPO_ROOT / "config" / "rules.yaml").read_text(encoding="utf-8")
HOME = "obligations: {day_one: exposure, duration_days: 7, test_days: [1, 4, 7], released_by: schedule}"
TWO = "obligations: {day_one: arrival, tests: 2, within_hours: 72, min_gap_hours: 24, released_by: tests}"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_default_obligations_follow_the_national_plan(rules) -> None:
    central = rules.actions["centralized_isolation"].obligations
    home = rules.actions["home_isolation"].obligations
    two = rules.actions["two_tests_in_three_days"].obligations
    one = rules.actions["test_within_24h"].obligations
    assert (central.duration_days, central.test_days, central.released_by) == (7, (1, 2, 3, 5, 7), "schedule")
    assert (home.duration_days, home.test_days, home.day_one) == (7, (1, 4, 7), "exposure")
    assert (two.tests, two.within, two.min_gap, two.day_one, two.released_by) == (2, 72 * 3600, 24 * 3600, "arrival", "tests")
    assert (one.tests, one.within, one.released_by) == (1, 24 * 3600, "tests")
    assert rules.actions["hold"].obligations is None and rules.actions["clear"].obligations is None


@pytest.mark.parametrize(
    ("old", "new", "where", "problem"),
    [
        (HOME, HOME.replace("released_by", "releases"), r"actions\[2\]\.obligations\.releases", "unknown key 'releases'"),
        (HOME, HOME.replace("[1, 4, 7]", "[0, 4, 7]"), r"actions\[2\]\.obligations\.test_days\[0\]",
         "day 0 does not exist: day 1 is the day of the last exposure"),
        (HOME, HOME.replace("[1, 4, 7]", "[1, 4, 9]"), r"actions\[2\]\.obligations\.test_days\[2\]",
         "day 9 is after the end of the 7-day duration"),
        (TWO, TWO.replace("min_gap_hours: 24", "min_gap_hours: 96"), r"actions\[4\]\.obligations\.min_gap_hours",
         "a gap of 96 h is longer than the 72 h window"),
        (TWO, TWO.replace("tests: 2, ", ""), r"actions\[4\]\.obligations\.tests", "within_hours needs tests"),
    ],
    ids=["unknown-field", "day-0", "day-after-duration", "gap-longer-than-window", "window-without-tests"],
)
def test_a_broken_obligation_is_refused_by_rules_check_with_file_line_and_problem(
    tmp_path: Path, old: str, new: str, where: str, problem: str
) -> None:
    broken = DEFAULT.replace(old, new)
    assert broken != DEFAULT
    path = tmp_path / "rules.yaml"
    path.write_text(broken, encoding="utf-8")
    line = _line_of(broken, new)
    with pytest.raises(RulesError, match=rf"rules\.yaml:{line}: {where}: {problem}"):
        load_rules(path)
    result = CliRunner().invoke(root, ["rules", "check", str(path)], env={"COLUMNS": "1000"})
    assert result.exit_code == 2
    shown = " ".join(result.output.split())
    assert f"rules.yaml:{line}: " in shown and problem in shown


def test_rules_check_passes_with_the_obligation_scenarios() -> None:
    result = CliRunner().invoke(root, ["rules", "check", str(REPO_ROOT / "config" / "rules.yaml")])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output
