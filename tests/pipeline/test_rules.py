"""Rules document: the default loads; every kind of mistake names the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.errors import RulesError
from pipeline.rules import load_rules, parse_rules
from pipeline.settings import REPO_ROOT
from streams.cli import root

DEFAULT = (REPO_ROOT / "config" / "rules.yaml").read_text(encoding="utf-8")
ACTIONS = ["transfer", "centralized_isolation", "home_isolation", "hold", "two_tests_in_three_days", "test_within_24h", "clear"]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_default_rules_load_with_the_protocol_actions_in_severity_order(rules):
    assert [a.name for a in rules.by_severity] == ACTIONS
    assert rules.actions["transfer"].accept_within_minutes == 30
    assert rules.actions["centralized_isolation"].duration_days == 7
    assert rules.actions["home_isolation"].duration_days == 7
    assert rules.windows.lookback == 14 * 86400 and rules.windows.nat_valid == 48 * 3600


def test_misspelt_key_names_the_key_and_its_line(tmp_path: Path):
    broken = DEFAULT.replace("then: {action: home_isolation}", "then: {acton: home_isolation}")
    path = tmp_path / "rules.yaml"
    path.write_text(broken, encoding="utf-8")
    line = _line_of(broken, "acton")
    with pytest.raises(RulesError, match=rf"rules\.yaml:{line}: rules\[2\]\.then\.acton: unknown key 'acton'"):
        load_rules(path)


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("lookback_days: 14", "lookback_days: -1", "lookback_days: -1", r"windows\.lookback_days: was -1 but must be zero or positive"),
        ("{action: home_isolation}", "{action: home_quarantine}", "home_quarantine", r"unknown action 'home_quarantine'"),
        ("visited: {level: medium,", "visited: {level: moderate,", "moderate", r"unknown level 'moderate'"),
        ("- id: visited-low", "- id: visited-medium", "- id: visited-medium\n", r"duplicate rule id 'visited-medium'"),
        ("when: {nat_positive: true}", "when: {nat_positve: true}", "nat_positve", r"unknown condition 'nat_positve'"),
        ("within_days: 7}}\n    then: {action: centralized", "within_days: -7}}\n    then: {action: centralized", "within_days: -7",
         r"within_days was -7 but is expected to be zero or positive \(negative window\)"),
        ("before: arrival, within_hours: 48", "before: departure, within_hours: 48", "departure", r"before was 'departure'"),
        ("timezone: Asia/Shanghai", "timezone: Asia/Hangzhou", "Asia/Hangzhou", r"unknown time zone 'Asia/Hangzhou'"),
        ("    severity: 40\n", "    severity: 50\n", None, r"severity 50 is already used by 'centralized_isolation'"),
        ("role: [driver, passenger]", "role: [driver, copilot]", "copilot", r"unknown role 'copilot'"),
    ],
)
def test_refused_documents_name_line_and_problem(old, new, needle, message):
    assert old in DEFAULT
    broken = DEFAULT.replace(old, new, 1)
    with pytest.raises(RulesError, match=message) as info:
        parse_rules(broken, "copy.yaml")
    text = str(info.value)
    if needle is not None:
        line = _line_of(broken, needle.rstrip("\n")) if needle != "- id: visited-medium\n" else [
            i for i, s in enumerate(broken.splitlines(), 1) if "- id: visited-medium" in s][1]
        assert f"copy.yaml:{line}:" in text


def test_duplicate_yaml_key_is_refused_with_its_line():
    broken = DEFAULT.replace("  nat_valid_hours: 48", "  nat_valid_hours: 48\n  nat_valid_hours: 24")
    line = _line_of(broken, "nat_valid_hours: 24")
    with pytest.raises(RulesError, match=rf"copy\.yaml:{line}: windows\.nat_valid_hours: duplicate key"):
        parse_rules(broken, "copy.yaml")


def test_missing_clear_action_is_refused():
    broken = DEFAULT.replace("  - name: clear\n    severity: 0\n", "  - name: clearance\n    severity: 0\n")
    with pytest.raises(RulesError, match="no action named 'clear'"):
        parse_rules(broken, "copy.yaml")


def test_broken_yaml_names_the_line():
    with pytest.raises(RulesError, match=r"copy\.yaml:2: not valid YAML"):
        parse_rules("version: x\n  bad: [1,\n", "copy.yaml")


def test_condition_with_two_keys_is_refused():
    broken = DEFAULT.replace("when: {nat_positive: true}", "when: {nat_positive: true, role: driver}")
    with pytest.raises(RulesError, match="exactly one key"):
        parse_rules(broken, "copy.yaml")


def test_all_problems_are_reported_together():
    broken = DEFAULT.replace("lookback_days: 14", "lookback_dayz: 14").replace("severity: 60", "severty: 60")
    with pytest.raises(RulesError, match=r"3 problems") as info:
        parse_rules(broken, "copy.yaml")
    text = str(info.value)
    assert "unknown key 'lookback_dayz'" in text and "unknown key 'severty'" in text and "missing key 'severity'" in text


def test_load_rules_reloads_an_edited_file(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(DEFAULT, encoding="utf-8")
    first = load_rules(path)
    assert load_rules(path) is first
    path.write_text(DEFAULT.replace('version: "2022.06-national-9"', 'version: "2022.06-national-9b"'), encoding="utf-8")
    assert load_rules(path).version == "2022.06-national-9b"


def test_rules_check_passes_on_the_default_rules_with_at_least_20_scenarios():
    result = CliRunner().invoke(root, ["rules", "check", str(REPO_ROOT / "config/rules.yaml"),
                                       "--scenarios", str(REPO_ROOT / "config/rules.tests.yaml")])
    assert result.exit_code == 0, result.output
    passed = int(result.output.strip().splitlines()[-1].split()[0])
    assert passed >= 20
    assert "0 failed" in result.output


def test_rules_check_fails_when_a_rule_changes(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(DEFAULT.replace("visited: {level: high, within_days: 7}", "visited: {level: high, within_days: 3}"), encoding="utf-8")
    result = CliRunner().invoke(root, ["rules", "check", str(path), "--scenarios", str(REPO_ROOT / "config/rules.tests.yaml")])
    assert result.exit_code == 1
    assert "FAIL" in result.output


def test_rules_check_refuses_a_misspelt_document(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(DEFAULT.replace("nat_valid_hours: 48", "nat_valid_hour: 48"), encoding="utf-8")
    result = CliRunner().invoke(root, ["rules", "check", str(path)])
    assert result.exit_code == 2
    assert "nat_valid_hour" in result.output


def test_rules_check_runs_from_any_directory_with_the_scenarios_the_rules_name(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EPIFLOW_RULES", raising=False)
    result = CliRunner().invoke(root, ["rules", "check"])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output and "rules.tests.yaml" in result.output


def test_a_copied_rules_file_finds_the_scenarios_beside_it(tmp_path: Path, monkeypatch):
    from pipeline.backtest import scenarios_for

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "draft.yaml").write_text(DEFAULT.replace("scenarios: rules.tests.yaml", "scenarios: cases/draft.tests.yaml"), encoding="utf-8")
    (folder / "cases").mkdir()
    (folder / "cases" / "draft.tests.yaml").write_bytes((REPO_ROOT / "config/rules.tests.yaml").read_bytes())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(root, ["rules", "check", "mine/draft.yaml"])
    assert result.exit_code == 0, result.output
    unnamed = folder / "plain.yaml"
    unnamed.write_text("\n".join(line for line in DEFAULT.splitlines() if not line.startswith("scenarios:")), encoding="utf-8")
    assert scenarios_for(unnamed, load_rules(unnamed)) == folder / "plain.tests.yaml"
