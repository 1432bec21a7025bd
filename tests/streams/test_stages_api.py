"""`POST /api/cases/{id}/stages`: the case's community or an isolation site's staff record the stages in order."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from pipeline.events import Reason, TriageMessage
from tests.streams.api_helpers import COMMUNITY_A, RunningWorker


def _case(api: RunningWorker, case_id: str, action: str = "transfer") -> None:
    now = datetime.now(UTC)
    message = TriageMessage(
        message_id=f"msg-{case_id}", case_id=case_id, person_key=f"k-{case_id}", masked_id="330***********111X",
        name="钱七", phone="13900139002", community=COMMUNITY_A[0], action=action, previous_action=None, severity=60,
        due_at=now + timedelta(hours=1), reasons=[Reason(rule="positive-nat", text="阳性")],
        rules_version=api.worker.runtime.rules_version, flagged_at=now, source_event_ids=[])

    async def send() -> None:
        await api.worker.agents.topics.cases.send(key=case_id.encode(), value=message.model_dump_json().encode())

    api.run(send())
    deadline = time.monotonic() + 10
    while api.worker.agents.cases.get(case_id.encode()) is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _stages(api: RunningWorker, case_id: str) -> list[str]:
    status, body = api.call("GET", f"/api/communities/{COMMUNITY_A[0]}/cases", token=api.tokens["community_a"])
    assert status == 200
    return [s["stage"] for c in body["cases"] if c["case_id"] == case_id for s in c.get("stages", [])]


def _wait_stages(api: RunningWorker, case_id: str, n: int) -> list[str]:
    deadline = time.monotonic() + 10
    while len(_stages(api, case_id)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return _stages(api, case_id)


def test_stages_are_recorded_in_order_by_the_community_and_the_site(api: RunningWorker) -> None:
    case = "case-stage-api-1"
    _case(api, case)
    status, body = api.call("POST", f"/api/cases/{case}/stages", {"stage": "picked_up"}, token=api.tokens["community_a"])
    assert status == 409 and "next is 'dispatched'" in body["problem"]
    status, _ = api.call("POST", f"/api/cases/{case}/stages", {"stage": "dispatched"}, token=api.tokens["community_b"])
    assert status == 403
    status, body = api.call("POST", f"/api/cases/{case}/stages", {"stage": "dispatched"}, token=api.tokens["community_a"])
    assert status == 202 and body["stage"] == "dispatched"
    assert _wait_stages(api, case, 1) == ["dispatched"]
    status, _ = api.call("POST", f"/api/cases/{case}/stages", {"stage": "picked_up"}, token=api.tokens["site"])
    assert status == 202
    assert _wait_stages(api, case, 2) == ["dispatched", "picked_up"]
    status, body = api.call("POST", f"/api/cases/{case}/stages", {"stage": "received"}, token=api.tokens["site"])
    assert status == 409 and "needs the site" in body["problem"]
    arrived = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    status, body = api.call("POST", f"/api/cases/{case}/stages", {"stage": "received", "site": "城西集中隔离点",
                                                                  "arrived_at": arrived}, token=api.tokens["site"])
    assert status == 202 and body["by"] == "site:site-1"
    assert _wait_stages(api, case, 3) == ["dispatched", "picked_up", "received"]
    status, body = api.call("GET", f"/api/communities/{COMMUNITY_A[0]}/cases", token=api.tokens["community_a"])
    row = next(c for c in body["cases"] if c["case_id"] == case)
    assert row["next_stage"] is None and 29 <= row["reception_minutes"] <= 31
    assert row["transfer_minutes"] is None  # never accepted: no transfer time to measure


def test_a_home_isolation_case_has_no_stages(api: RunningWorker) -> None:
    _case(api, "case-stage-api-2", action="home_isolation")
    status, body = api.call("POST", "/api/cases/case-stage-api-2/stages", {"stage": "dispatched"}, token=api.tokens["community_a"])
    assert status == 409 and "has no transfer stages" in body["problem"]


def test_transfer_and_reception_times_reach_the_dashboard_and_the_daily_report(api: RunningWorker) -> None:
    case = "case-stage-api-3"
    _case(api, case)
    community = api.tokens["community_a"]
    status, _ = api.call("POST", f"/api/cases/{case}/accept", {}, token=community)
    assert status == 202
    status, _ = api.call("POST", f"/api/cases/{case}/stages", {"stage": "dispatched"}, token=community)
    assert status == 202 and _wait_stages(api, case, 1) == ["dispatched"]
    status, board = api.call("GET", "/api/dashboard", token=api.tokens["admin"])
    assert status == 200
    moving = [t for t in board["transfers"]["in_progress"] if t["case_id"] == case]
    assert len(moving) == 1 and moving[0]["stage"] == "dispatched" and moving[0]["minutes_since_accepted"] >= 0
    api.call("POST", f"/api/cases/{case}/stages", {"stage": "picked_up"}, token=community)
    assert _wait_stages(api, case, 2) == ["dispatched", "picked_up"]
    arrived = (datetime.now(UTC) - timedelta(minutes=20)).isoformat()
    status, received = api.call("POST", f"/api/cases/{case}/stages", {"stage": "received", "site": "城西集中隔离点",
                                                                      "arrived_at": arrived}, token=api.tokens["site"])
    assert status == 202 and _wait_stages(api, case, 3) == ["dispatched", "picked_up", "received"]
    status, board = api.call("GET", "/api/dashboard", token=api.tokens["admin"])
    assert not [t for t in board["transfers"]["in_progress"] if t["case_id"] == case]
    assert board["transfers"]["received"] >= 1 and board["transfers"]["median_reception_minutes"] is not None
    assert board["transfers"]["median_transfer_minutes"] is not None
    day = datetime.fromisoformat(received["at"]).date().isoformat()
    status, report = api.call("GET", f"/reports/daily?format=json&date={day}", token=api.tokens["admin"])
    assert status == 200
    row = next(r for r in report["transfers"] if r["case_id"] == case)
    assert row["stage"] == "received" and 19 <= row["reception_minutes"] <= 21 and 0 <= row["transfer_minutes"] < 5
    assert report["totals"]["transfers_received"] >= 1 and report["totals"]["median_reception_minutes"] is not None
    status, page = api.call("GET", f"/reports/daily?date={day}", token=api.tokens["admin"])
    assert status == 200 and "转运与接收" in page and "接收用时中位数（分钟）" in page
