"""`epiflow groups status` on hand-made rosters and results; `groups check` on good and bad documents; the
error lines of `groups register` and `groups load`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
from typer.testing import CliRunner

from streams.cli import root
from tests.key_group_data import GROUPS_YAML, MASKED, A, B, C, D, registry_csv, results, roster_csv

AT = datetime.now(timezone(timedelta(hours=8))).replace(microsecond=0) - timedelta(days=1)


def _files(tmp_path: Path) -> list[str]:
    (tmp_path / "kg.yaml").write_text(GROUPS_YAML, encoding="utf-8")
    (tmp_path / "roster.csv").write_text(roster_csv(), encoding="utf-8")
    (tmp_path / "results.jsonl").write_bytes(b"\n".join(results(AT)) + b"\n")
    return ["groups", "status", "--groups", str(tmp_path / "kg.yaml"), "--roster", str(tmp_path / "roster.csv"),
            "--events", str(tmp_path / "results.jsonl"), "--at", AT.isoformat()]


def test_status_json_counts_per_group_and_refuses_bad_rows(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, [*_files(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    groups = {g["id"]: g for g in out["groups"]}
    assert (groups["cold_chain"]["enrolled"], groups["cold_chain"]["on_time"]) == (3, 1)
    assert groups["cold_chain"]["overdue"] == sorted([MASKED[B], MASKED[C]])
    assert (groups["freight_drivers"]["enrolled"], groups["freight_drivers"]["on_time"], groups["freight_drivers"]["rate"]) == (2, 1, 0.5)
    assert groups["freight_drivers"]["overdue"] == [MASKED[D]]
    assert groups["school_staff"]["rate"] is None
    assert [(r["line"], r["reason"]) for r in out["refused"]] == [(7, "id_checksum"), (8, "unknown_group")]
    assert "refused: roster.csv line 7: id_checksum" in result.stderr
    assert all(who not in result.output for who in (A, B, C, D))


def test_status_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, _files(tmp_path))
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("cold_chain"))
    assert line.split()[:4] == ["cold_chain", "3", "1", "33.3%"]


def test_check_names_the_line_of_a_bad_cadence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GROUPS_YAML.replace("every_hours: 48", "every_hours: 0"), encoding="utf-8")
    result = CliRunner().invoke(root, ["groups", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:8: groups[1].every_hours: was 0 but must be a positive number of hours" in result.stderr
    good = CliRunner().invoke(root, ["groups", "check"])
    assert good.exit_code == 0 and "12 group(s) valid" in good.stdout


def test_an_enterprise_token_can_be_issued(tmp_path: Path) -> None:
    access = tmp_path / "access.toml"
    made = CliRunner().invoke(root, ["access", "add", "--enterprise", "E01", "--file", str(access)])
    assert made.exit_code == 0, made.output
    listed = CliRunner().invoke(root, ["access", "list", "--file", str(access)])
    assert listed.stdout.startswith("enterprise\tE01\t")


def test_register_refuses_a_registry_with_a_bad_row_and_publishes_nothing(tmp_path: Path) -> None:
    registry = tmp_path / "registry.csv"
    registry.write_text(registry_csv() + "E03,渔业公司,boat,浙C-22222,\n", encoding="utf-8")
    result = CliRunner().invoke(root, ["groups", "register", str(registry), "--broker", "kafka://127.0.0.1:1"])
    assert result.exit_code == 1, result.output
    assert "registry refused (1 bad row(s)); nothing was published" in result.output


def test_load_of_a_missing_roster_is_one_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    result = CliRunner().invoke(root, ["groups", "load", str(missing), "--broker", "kafka://127.0.0.1:1"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and "absent.csv" in result.output
