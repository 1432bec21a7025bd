"""`epiflow simulate` → `epiflow evaluate` and `epiflow rules backtest`, end to end on a small set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.settings import REPO_ROOT
from streams.cli import root

AT = "2023-03-01T09:30:00+08:00"


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    result = CliRunner().invoke(root, ["simulate", "--seed", "21", "--people", "400", "--out", str(out), "--at", AT, "--bad-share", "0.03"])
    assert result.exit_code == 0, result.output
    return out


def _evaluate(sim: Path, *extra: str):
    out, dead = sim / "verdicts.jsonl", sim / "dead.jsonl"
    result = CliRunner().invoke(root, [
        "evaluate", "--events", str(sim / "events.jsonl"), "--at", AT, "--regions", str(sim / "risk_regions.geojson"),
        "--out", str(out), "--dead-letters", str(dead), *extra,
    ])
    return result, out, dead


def test_evaluate_writes_one_line_per_person_and_dead_letters(sim):
    result, out, dead = _evaluate(sim)
    assert result.exit_code == 0, result.output
    verdicts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    manifest = orjson.loads((sim / "manifest.json").read_bytes())
    assert len(letters) == sum(manifest["bad_records"].values())
    assert {d["reason"] for d in letters} <= {"invalid_json", "id_checksum", "coordinates", "in_future"}
    assert f"{manifest['events']} records: {manifest['events'] - len(letters)} valid, {len(letters)} dead-lettered" in result.output
    keys = [v["person_key"] for v in verdicts]
    assert len(keys) == len(set(keys)) > 300
    assert set(verdicts[0]) == {"person_key", "masked_id", "name", "action", "severity", "community", "rules", "reasons", "due_at",
                                "management"}
    assert set(verdicts[0]["management"]) == {"status", "action", "day", "tests", "next_due"}
    actions = Counter(v["action"] for v in verdicts)
    assert {"clear", "centralized_isolation", "home_isolation", "two_tests_in_three_days", "test_within_24h", "hold"} <= set(actions)
    for v in verdicts:
        assert (v["due_at"] is None) == (v["action"] == "clear")
        assert len(v["rules"]) == len(v["reasons"])
        assert "*" in v["masked_id"]
    assert any(v["community"] != "unassigned" for v in verdicts)


def test_evaluate_is_independent_of_input_order(sim, tmp_path):
    lines = (sim / "events.jsonl").read_bytes().splitlines()
    shuffled = tmp_path / "events.jsonl"
    shuffled.write_bytes(b"\n".join(reversed(lines)) + b"\n")
    first, out, _ = _evaluate(sim)
    assert first.exit_code == 0
    baseline = sorted(out.read_bytes().splitlines())
    result = CliRunner().invoke(root, ["evaluate", "--events", str(shuffled), "--at", AT, "--regions", str(sim / "risk_regions.geojson"),
                                       "--out", str(tmp_path / "v.jsonl")])
    assert result.exit_code == 0
    assert sorted((tmp_path / "v.jsonl").read_bytes().splitlines()) == baseline


def test_evaluate_refuses_a_misspelt_rules_file(sim, tmp_path):
    broken = tmp_path / "rules.yaml"
    broken.write_text((REPO_ROOT / "config/rules.yaml").read_text(encoding="utf-8").replace("lookback_days: 14", "lookback_dys: 14"), encoding="utf-8")
    result, out, _ = _evaluate(sim, "--rules", str(broken))
    assert result.exit_code == 2
    assert "lookback_dys" in result.output and "rules.yaml:" in result.output


def test_evaluate_refuses_a_naive_time(sim):
    result = CliRunner().invoke(root, ["evaluate", "--events", str(sim / "events.jsonl"), "--at", "2023-03-01T09:30:00"])
    assert result.exit_code == 2 and "UTC offset" in result.output


def test_backtest_counts_people_who_change(sim, tmp_path):
    new = tmp_path / "new.yaml"
    new.write_text((REPO_ROOT / "config/rules.yaml").read_text(encoding="utf-8").replace(
        "visited: {level: low, within_days: 7}}\n    then: {action: two_tests_in_three_days}",
        "visited: {level: low, within_days: 7}}\n    then: {action: home_isolation}"), encoding="utf-8")
    args = ["rules", "backtest", "--events", str(sim / "events.jsonl"), "--old", str(REPO_ROOT / "config/rules.yaml"),
            "--new", str(new), "--at", AT, "--regions", str(sim / "risk_regions.geojson")]
    result = CliRunner().invoke(root, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert report["changed"] > 0
    assert set(report["by_pair"]) <= {"two_tests_in_three_days -> home_isolation"}
    assert sum(report["by_community"].values()) == report["changed"]
    assert all(e["new"] == "home_isolation" for e in report["examples"])
    same = CliRunner().invoke(root, [*args[:7], str(REPO_ROOT / "config/rules.yaml"), *args[8:], "--json"])
    assert orjson.loads(same.output)["changed"] == 0
    table = CliRunner().invoke(root, args)
    assert "people change action" in table.output


def test_evaluate_dead_letters_mask_id_numbers_as_the_worker_does(tmp_path):
    from pipeline.ingest import dead_letter_payload

    example = REPO_ROOT / "config" / "examples" / "declaration__id_checksum__last-character-changed.json"
    bad_id = orjson.loads(example.read_bytes())["person"]["id_number"]
    records = [orjson.dumps(orjson.loads(example.read_bytes())), f'{{"broken": "{bad_id}"'.encode(), b"\xff" + bad_id.encode()]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(records) + b"\n")
    dead = tmp_path / "dead.jsonl"
    result = CliRunner().invoke(root, ["evaluate", "--events", str(events), "--at", "2022-06-19T12:00:00+08:00",
                                       "--out", str(tmp_path / "out.jsonl"), "--dead-letters", str(dead)])
    assert result.exit_code == 0, result.output
    written = dead.read_text(encoding="utf-8")
    assert bad_id not in written and f"{bad_id[:3]}{'*' * 11}{bad_id[-4:]}" in written
    letters = [orjson.loads(line) for line in written.splitlines()]
    assert [(d["payload"], d["payload_encoding"]) for d in letters] == [dead_letter_payload(r) for r in records]
    assert letters[2]["payload_encoding"] == "base64"


def test_backtest_without_regions_names_the_file_it_used(sim):
    rules = str(REPO_ROOT / "config/rules.yaml")
    args = ["rules", "backtest", "--events", str(sim / "events.jsonl"), "--old", rules, "--new", rules, "--at", AT]
    result = CliRunner().invoke(root, [*args, "--json"])
    assert result.exit_code == 0, result.output
    default = str(REPO_ROOT / "config" / "geo" / "risk_regions.geojson")
    assert f"risk regions from {default} (settings `regions`); pass --regions" in result.stderr
    assert orjson.loads(result.stdout)["regions"] == default
    chosen = CliRunner().invoke(root, [*args, "--regions", str(sim / "risk_regions.geojson")])
    assert f"risk regions: {sim / 'risk_regions.geojson'}" in chosen.stdout and not chosen.stderr
