"""Key groups in the daily report and on the dashboard (memory://): compliance figures, reminders and checkpoint
coverage read from the topics; the offline `epiflow groups coverage` gives the same coverage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.coverage import enterprise_to_json, parse_registry
from pipeline.rosters import roster_rows
from streams.cli import root
from streams.memory import get_broker
from tests.key_group_data import MASKED, A, B, registry_csv, results, roster_csv, scan
from tests.streams.api_helpers import RunningWorker, start_worker

COMMUNITY = "330106001"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[RunningWorker]:
    running = start_worker(tmp_path / "access.toml")
    yield running
    running.stop()


def _feed(site: RunningWorker, now: datetime) -> list[bytes]:
    settings = site.worker.settings
    broker = get_broker(settings.broker)
    for row in roster_rows(roster_csv(COMMUNITY), "roster.csv", submitted_at=now):
        broker.append(settings.topic("rosters"), None, row)
    for value in results(now):
        broker.append(settings.topic("nat-results"), None, value)
    enterprises, _ = parse_registry(registry_csv(), "registry.csv", secret=settings.secret_bytes)
    for e in enterprises:
        broker.append(settings.topic("key-enterprises"), e.id.encode(), enterprise_to_json(e))
    scans = [scan("s-1", now - timedelta(minutes=30), "浙A·12345", [A])]
    for value in scans:
        broker.append(settings.topic("checkpoint-scans"), None, value)
    return scans


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_daily_report_and_dashboard_show_compliance_and_coverage(site: RunningWorker, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    scans = _feed(site, now)
    kg = site.worker.agents.key_groups
    assert _wait(lambda: kg.counts["enrolled"] == 5 and site.worker.agents.counts["joined"] >= 5)
    day = now.astimezone(site.worker.settings.zone).date().isoformat()
    status, report = site.call("GET", f"/reports/daily?date={day}&format=json", token=site.tokens["admin"])
    assert status == 200
    figures = report["key_groups"]
    cold = next(g for g in figures["groups"] if g["id"] == "cold_chain")
    assert (cold["enrolled"], cold["on_time"]) == (3, 1)
    assert figures["streets"][0]["street"]  # the community lies in a street of the sample district
    coverage = {c["enterprise"]: c for c in figures["coverage"]}
    assert (coverage["E01"]["vehicles"], coverage["E01"]["vehicles_checked"]) == (2, 1)
    assert coverage["E01"]["unchecked_plates"] == ["浙A67890"]
    assert coverage["E01"]["unchecked_people"] == [MASKED[B]]
    assert coverage["E02"]["unchecked_plates"] == ["浙B11111"]

    _, page = site.call("GET", f"/reports/daily?date={day}", token=site.tokens["admin"])
    assert "重点人群核酸检测" in page and "rate-chart" in page and "重点企业卡口查验覆盖" in page and "浙B11111" in page

    assert _wait(lambda: kg.counts["reminders"] >= 2)  # B (cold chain) and D (freight) were overdue on enrolment
    _, dashboard = site.call("GET", "/api/dashboard", token=site.tokens["admin"])
    assert dashboard["key_groups"]["groups"] == figures["groups"]
    assert dashboard["key_groups"]["reminders_sent"] >= 2  # B (cold chain) and D (freight) were overdue on enrolment

    (tmp_path / "registry.csv").write_text(registry_csv(), encoding="utf-8")
    (tmp_path / "scans.jsonl").write_bytes(b"\n".join(scans) + b"\n")
    offline = CliRunner().invoke(root, ["groups", "coverage", "--registry", str(tmp_path / "registry.csv"),
                                        "--events", str(tmp_path / "scans.jsonl"), "--day", day, "--json"])
    assert offline.exit_code == 0, offline.output
    assert orjson.loads(offline.stdout)["coverage"] == figures["coverage"]
