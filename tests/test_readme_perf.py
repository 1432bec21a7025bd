"""The README's performance section is exactly what `tools/readme_perf.py` renders from `bench/results.json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.readme_perf import BEGIN, END, README, RESULTS, ReadmePerfError, render, replace_section


def _results() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_readme_section_matches_committed_results() -> None:
    readme = README.read_text(encoding="utf-8")
    assert replace_section(readme, render(_results())) == readme, "run `python -m tools.readme_perf`"


def test_committed_results_are_a_full_run_with_commands_and_machine() -> None:
    results = _results()
    machine = results["machine"]
    assert machine["nproc"] >= 1 and machine["kafka_version"] and "shared" in machine["shared"]
    assert results["timestamp"]
    for name, section in results["sections"].items():
        assert not section.get("quick"), f"{name} comes from a --quick run"
        for run in section["runs"]:
            assert run["command"].startswith("python -m "), run
    assert {"raw_ceiling", "worker_1", "worker_2", "naive"} <= set(results["sections"])


def test_every_successful_figure_appears_with_its_command() -> None:
    results = _results()
    body = render(results)
    for section in results["sections"].values():
        for run in section["runs"]:
            assert f"`{run['command']}`" in body or (run["command"] in body), run["command"]
    worker = results["sections"]["worker_1"]["runs"][0]
    if worker["ok"]:
        assert f"{worker['result']['sustained_person_events_per_s']:,.0f} person-events/s" in body


def test_a_failed_run_is_shown_as_failed_not_as_a_figure() -> None:
    results = _results()
    results["sections"]["raw_ceiling"]["runs"] = [
        {"command": "python -m tools.raw_ceiling", "ok": False, "error": "exit 1: broker gone"}
    ]
    body = render(results)
    assert "failed: exit 1: broker gone" in body
    results["sections"]["worker_1"]["runs"] = [
        {"command": "python -m tools.bench_worker run", "ok": False, "error": "exit 1: broker gone"}
    ]
    assert "n/a of n/a person-events/s" in render(results)


def test_missing_goal_is_marked_not_met() -> None:
    results = _results()
    results["sections"]["worker_1"]["runs"][0] = {
        "command": "python -m tools.bench_worker run", "ok": True,
        "result": {"sustained_person_events_per_s": 9_999.0, "latency": []},
    }
    goals = render(results).split("### Throughput")[0]
    assert "| 9,999 person-events/s | **no** |" in goals


def test_markers_are_required_once() -> None:
    with pytest.raises(ReadmePerfError, match="exactly one"):
        replace_section("# no markers\n", "x\n")
    with pytest.raises(ReadmePerfError, match="exactly one"):
        replace_section(f"{END}\n{BEGIN}\n", "x\n")
    assert replace_section(f"a\n{BEGIN}\nold\n{END}\nb\n", "new\n") == f"a\n{BEGIN}\nnew\n{END}\nb\n"


def test_results_file_lives_where_the_bench_writes_it() -> None:
    from tools.bench import DEFAULT_OUT

    assert Path(DEFAULT_OUT) == RESULTS


def test_a_section_not_measured_says_why() -> None:
    results = _results()
    results["sections"]["state_1m"] = {"title": "state at 1,000,000 people", "runs": [], "gap": "the machine was busy"}
    body = render(results)
    assert "not measured: the machine was busy" in body and "`python -m tools.bench --only state_1m`" in body
