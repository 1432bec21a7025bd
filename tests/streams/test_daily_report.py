"""The daily report on both transports, the `epiflow report` command, and the 503 while a worker recovers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.streams.api_helpers import COMMUNITY_A, COMMUNITY_B, RunningWorker, scan, start_worker

REPO = Path(__file__).resolve().parents[2]
EPIFLOW = [sys.executable, "-m", "streams.cli"]


def _wait_for_cases(api: RunningWorker, count: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = api.call("GET", "/api/dashboard", token=api.tokens["admin"])
        if status == 200 and body["cases_total"] >= count:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} cases not reached: {status} {body}")
        time.sleep(0.2)


def _comparable(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if k not in ("as_of", "generated_at")}


def test_the_daily_report_works_on_the_embedded_broker(api: RunningWorker) -> None:
    for where in (COMMUNITY_A, COMMUNITY_A, COMMUNITY_B):
        status, _ = api.call("POST", "/api/checkpoints/cp-01/scans", scan(where=where), token=api.tokens["checkpoint"])
        assert status == 200
    _wait_for_cases(api, 3)
    status, page = api.call("GET", "/reports/daily", token=api.tokens["admin"])
    assert status == 200
    assert '<html lang="zh-CN">' in page and "全区合计" in page and "街道小计" in page and "<svg" in page
    assert "翠苑街道" in page and "兰学社区" in page and "2022.06-national-9" in page and "生成时间" in page
    status, figures = api.call("GET", "/reports/daily?format=json", token=api.tokens["admin"])
    assert status == 200
    assert figures["totals"]["cases"] == 3 and figures["totals"]["overdue"] == 0 and figures["totals"]["open"] == 3
    assert figures["streets"] == [{**figures["streets"][0], "street": "翠苑街道", "cases": 3}]
    assert {c["name"] for c in figures["communities"]} == {"兰学社区", "梅北东社区"}
    assert figures["generated_at"].endswith("+08:00") and figures["rules_version"] == "2022.06-national-9"
    status, english = api.call("GET", "/reports/daily?lang=en", token=api.tokens["admin"])
    assert status == 200 and "Street subtotals" in english


@pytest.mark.parametrize(("query", "token", "status"), [
    ("?date=2022-13-01", "admin", 400), ("?format=json", "community_a", 403), ("?format=json", None, 401),
])
def test_the_daily_report_refuses_bad_dates_and_other_roles(api: RunningWorker, query: str, token: str | None,
                                                            status: int) -> None:
    got, body = api.call("GET", f"/reports/daily{query}", token=api.tokens[token] if token else None)
    assert got == status, body


def test_an_unsigned_browser_is_sent_to_sign_in_for_the_report(api: RunningWorker) -> None:
    status, _ = api.call("GET", "/reports/daily?date=2022-06-20")
    assert status == 303


def test_while_the_tables_recover_the_queue_and_dashboard_say_so(api: RunningWorker) -> None:
    recovery = api.worker.app.tables.recovery
    api.loop.call_soon_threadsafe(recovery.completed.clear)
    time.sleep(0.1)
    try:
        status, body = api.call("GET", f"/api/communities/{COMMUNITY_A[0]}/cases", token=api.tokens["community_a"])
        assert status == 503 and body["recovering"] is True and "recovering" in body["problem"]
        status, body = api.call("GET", "/api/dashboard", token=api.tokens["admin"])
        assert status == 503 and body["recovering"] is True
        status, page = api.call("GET", f"/communities/{COMMUNITY_A[0]}", token=api.tokens["community_a"])
        assert status == 503 and "正在恢复数据" in page
    finally:
        api.loop.call_soon_threadsafe(recovery.completed.set)
    time.sleep(0.1)
    status, body = api.call("GET", f"/api/communities/{COMMUNITY_A[0]}/cases", token=api.tokens["community_a"])
    assert status == 200 and body["recovering"] is False


def test_api_times_are_in_the_display_zone(api: RunningWorker) -> None:
    status, _ = api.call("POST", "/api/checkpoints/cp-01/scans", scan(), token=api.tokens["checkpoint"])
    assert status == 200
    _wait_for_cases(api, 1)
    status, body = api.call("GET", f"/api/communities/{COMMUNITY_A[0]}/cases", token=api.tokens["community_a"])
    case = body["cases"][0]
    assert body["now"].endswith("+08:00") and case["opened_at"].endswith("+08:00") and case["due_at"].endswith("+08:00")
    status, accepted = api.call("POST", f"/api/cases/{case['case_id']}/accept", token=api.tokens["community_a"])
    assert status == 202 and accepted["at"].endswith("+08:00")


def test_epiflow_report_on_the_embedded_broker_says_what_to_do_instead(tmp_path: Path) -> None:
    env = {**os.environ, "EPIFLOW_BROKER": "memory://"}
    done = subprocess.run([*EPIFLOW, "report", "--date", "2022-06-20", "--out", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "/reports/daily?date=2022-06-20" in lines[0] and "--broker kafka://" in lines[0]


@pytest.mark.kafka
@pytest.mark.timeout(420)
def test_epiflow_report_on_kafka_gives_the_figures_of_the_page(kafka_bootstrap: str, tmp_path: Path) -> None:
    from tests.streams.conftest import _delete_kafka_topics

    prefix = f"t-report-{uuid.uuid4().hex[:8]}"
    broker = f"kafka://{kafka_bootstrap}"
    worker = start_worker(tmp_path / "access.toml", ready_within=180, broker=broker, topic_prefix=prefix,
                          insecure_demo_secret=True)  # a fresh worker declares ~190 queue topics on the shared broker
    try:
        for where in (COMMUNITY_A, COMMUNITY_B, COMMUNITY_B):
            status, _ = worker.call("POST", "/api/checkpoints/cp-01/scans", scan(where=where), token=worker.tokens["checkpoint"])
            assert status in (200, 504)  # 504: accepted, decided later (a fresh worker is still joining its group)
        body = _wait_for_cases(worker, 3, timeout=120)
        first = next(o for o in body["top_communities"] if o["code"] == COMMUNITY_B[0])
        assert first["open"] == 2
        status, queue = worker.call("GET", f"/api/communities/{COMMUNITY_B[0]}/cases", token=worker.tokens["community_b"])
        status, _ = worker.call("POST", f"/api/cases/{queue['cases'][0]['case_id']}/accept", token=worker.tokens["community_b"])
        assert status == 202
        deadline = time.monotonic() + 60
        while True:
            status, page = worker.call("GET", "/reports/daily?format=json", token=worker.tokens["admin"])
            if status == 200 and page["totals"]["cases"] == 3 and page["totals"]["accepted"] == 1:
                break
            assert time.monotonic() < deadline, page
            time.sleep(0.5)
        env = {**os.environ, "EPIFLOW_BROKER": broker, "EPIFLOW_TOPIC_PREFIX": prefix, "EPIFLOW_INSECURE_DEMO_SECRET": "1",
               "EPIFLOW_LOG_LEVEL": "INFO"}
        done = subprocess.run([*EPIFLOW, "report", "--out", str(tmp_path / "report")], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        output = done.stdout + done.stderr
        assert "WARNING" not in output and "Traceback" not in output, output
        assert "3 cases" in done.stdout and "翠苑街道: 3 cases" in done.stdout
        figures = orjson.loads((tmp_path / "report" / "report.json").read_bytes())
        assert _comparable(figures) == _comparable(page)
        html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
        assert "<svg" in html and "街道小计" in html and page["rules_version"] in html
    finally:
        worker.stop()
        _delete_kafka_topics(kafka_bootstrap, prefix)
