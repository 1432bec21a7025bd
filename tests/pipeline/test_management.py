"""Management after triage: `epiflow evaluate` on hand-made cases, and the pure steps the stream takes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from geo.load import region_to_feature
from pipeline.backtest import _jsonable, _with_person, load_scenarios
from pipeline.identity import check_character
from pipeline.management import announce, view
from pipeline.settings import REPO_ROOT
from pipeline.state import Managed, Nat, new_state
from streams.cli import root

SCENARIOS = load_scenarios(REPO_ROOT / "config" / "rules.tests.yaml")
BY_NAME = {s.name: s for s in SCENARIOS.scenarios}


def _person(n: int) -> dict:
    first17 = f"11010519800101{n:03d}"
    return {"id_number": first17 + check_character(first17), "name": f"测试{n}", "phone": "13900139000"}


def _evaluate(tmp_path: Path, name: str) -> dict:
    """`epiflow evaluate` on one scenario's events (a person of its own), its regions, at its time."""
    scenario = BY_NAME[name]
    events = tmp_path / "events.jsonl"
    person = _person(len(name))
    with events.open("wb") as out:
        for event in scenario.events:
            raw = {k: v for k, v in event.items() if k not in ("person", "people")}
            out.write(orjson.dumps(_jsonable(_with_person(raw, person))) + b"\n")
    regions = tmp_path / "regions.geojson"
    regions.write_bytes(orjson.dumps({"type": "FeatureCollection",
                                      "features": [region_to_feature(r) for r in SCENARIOS.regions]}))
    result = CliRunner().invoke(root, ["evaluate", "--events", str(events), "--at", scenario.at.isoformat(),
                                       "--regions", str(regions)])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("name", "action", "status", "managed", "tests"),
    [
        ("home isolation released after the full schedule, though the rule window has run out",
         "clear", "released", "home_isolation", ["met", "met", "met"]),
        ("home isolation overdue when the day-7 test is missing, even after the rule window has run out",
         "clear", "overdue", "home_isolation", ["met", "met", "missed"]),
        ("home isolation active on day 7 before the day's end, the day-7 test still due",
         "home_isolation", "active", "home_isolation", ["met", "met", "due"]),
        ("a positive during home isolation raises it to transfer", "transfer", "active", "transfer", []),
        ("two tests in three days released by two negatives 25 hours apart",
         "two_tests_in_three_days", "released", "two_tests_in_three_days", ["met", "met"]),
        ("test within 24 hours released by one negative after arrival", "test_within_24h", "released", "test_within_24h", ["met"]),
    ],
    ids=["released", "overdue-after-window", "active-before-day-end", "positive-to-transfer", "two-tests-released",
         "test-within-24h-released"],
)
def test_evaluate_prints_the_management_of_hand_made_cases(tmp_path: Path, name, action, status, managed, tests) -> None:
    line = _evaluate(tmp_path, name)
    assert line["action"] == action
    m = line["management"]
    assert (m["status"], m["action"]) == (status, managed)
    assert [t["status"] for t in m["tests"]] == tests


def test_evaluate_names_the_next_due_time_in_the_display_zone(tmp_path: Path) -> None:
    m = _evaluate(tmp_path, "home isolation active on day 7 before the day's end, the day-7 test still due")["management"]
    assert m["day"] == 7
    assert m["next_due"] == "2022-06-17T00:00:00+08:00"
    assert [t["day"] for t in m["tests"]] == [1, 4, 7]


def test_evaluate_with_every_event_seen_at_at_has_no_episode_whose_window_ran_out(tmp_path: Path) -> None:
    """A worker that saw the events only at --at never flagged the person: nothing to manage."""
    scenario = BY_NAME["home isolation overdue when the day-7 test is missing, even after the rule window has run out"]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(_jsonable(e)) + b"\n" for e in scenario.events))
    regions = tmp_path / "regions.geojson"
    regions.write_bytes(orjson.dumps({"type": "FeatureCollection",
                                      "features": [region_to_feature(r) for r in SCENARIOS.regions]}))
    result = CliRunner().invoke(root, ["evaluate", "--events", str(events), "--at", scenario.at.isoformat(),
                                       "--regions", str(regions), "--seen", "at"])
    assert result.exit_code == 0, result.output
    line = orjson.loads(next(x for x in result.stdout.splitlines() if x.startswith("{")))
    assert line["management"]["status"] == "none"


def epoch_seconds(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def test_a_missed_test_and_the_release_are_each_announced_once(rules) -> None:
    day_one = datetime.fromisoformat("2022-06-10T00:00:00+08:00").date().toordinal()
    record = Managed("home_isolation", day_one, epoch_seconds("2022-06-10T09:00:00+08:00"), epoch_seconds("2022-06-10T12:00:00+08:00"), "case-1")
    state = new_state("p").__class__(person_key="p", nats=(
        Nat("n-1", epoch_seconds("2022-06-10T20:00:00+08:00"), epoch_seconds("2022-06-11T08:00:00+08:00"), "negative", "lab"),))
    late = epoch_seconds("2022-06-14T00:00:01+08:00")
    seen = view(record, state, rules, late)
    assert seen.status == "overdue" and [t.status for t in seen.tests] == ["met", "missed", "due"]
    assert seen.wake == epoch_seconds("2022-06-17T00:00:00+08:00")
    record, notices = announce(record, seen, late)
    assert [(n.kind, n.test.day) for n in notices] == [("test_overdue", 4)]
    assert announce(record, view(record, state, rules, late + 60), late + 60)[1] == []

    state = state.__class__(person_key="p", nats=state.nats + (
        Nat("n-4", epoch_seconds("2022-06-13T10:00:00+08:00"), epoch_seconds("2022-06-14T09:00:00+08:00"), "negative", "lab"),
        Nat("n-7", epoch_seconds("2022-06-16T10:00:00+08:00"), epoch_seconds("2022-06-16T20:00:00+08:00"), "negative", "lab")))
    before_end = epoch_seconds("2022-06-16T23:00:00+08:00")
    seen = view(record, state, rules, before_end)
    assert seen.status == "active" and seen.wake == epoch_seconds("2022-06-17T00:00:00+08:00")
    after_end = epoch_seconds("2022-06-17T00:00:00+08:00")
    seen = view(record, state, rules, after_end)
    assert seen.status == "released"
    record, notices = announce(record, seen, after_end)
    assert [n.kind for n in notices] == ["released"] and record.ended == after_end
    assert announce(record, view(record, state, rules, after_end + 5), after_end + 5)[1] == []


def test_days_that_ended_before_management_began_are_waived(rules) -> None:
    day_one = datetime.fromisoformat("2022-06-10T00:00:00+08:00").date().toordinal()
    began = epoch_seconds("2022-06-12T10:00:00+08:00")
    record = Managed("centralized_isolation", day_one, epoch_seconds("2022-06-10T09:00:00+08:00"), began, "case-1")
    seen = view(record, new_state("p"), rules, began)
    assert [t.status for t in seen.tests] == ["waived", "waived", "due", "due", "due"]
    assert seen.status == "active" and seen.day == 3
