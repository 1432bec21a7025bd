"""On the embedded broker a case follows its person: a raised action is due within the new action's window,
and a person the rules clear has no open case (read through `GET /api/communities/{code}/cases`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.streams.api_helpers import COMMUNITY_A, RunningWorker, declaration, nat_result, scan

QUEUE = f"/api/communities/{COMMUNITY_A[0]}/cases"


def _post(api: RunningWorker, path: str, document: dict, token: str) -> dict:
    status, body = api.call("POST", path, document, token=api.tokens[token])
    assert status in (200, 202), body
    return body


def _case(api: RunningWorker, masked_id: str, check, timeout: float = 15.0) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        status, body = api.call("GET", QUEUE, token=api.tokens["admin"])
        assert status == 200, body
        seen = [c for c in body["cases"] if c["masked_id"] == masked_id]
        if seen and check(seen[0]):
            return seen[0]
        time.sleep(0.05)
    raise AssertionError(f"case of {masked_id} not as expected in time: {seen}")


def _masked(api: RunningWorker, serial: int) -> str:
    from pipeline.identity import mask_id
    from tests.streams.api_helpers import resident_id

    return mask_id(resident_id(serial))


def test_a_person_raised_to_transfer_is_due_within_the_transfer_window(api: RunningWorker) -> None:
    serial = 311
    _post(api, "/api/declarations", declaration(serial), "admin")
    masked = _masked(api, serial)
    first = _case(api, masked, lambda c: c["action"] == "test_within_24h")
    assert datetime.fromisoformat(first["due_at"]) - datetime.fromisoformat(first["opened_at"]) == timedelta(hours=24)
    positive = nat_result(serial=serial)
    positive["result"] = "positive"
    sent = datetime.now(UTC)
    _post(api, "/api/nat-results", positive, "lab")
    raised = _case(api, masked, lambda c: c["action"] == "transfer")
    assert raised["case_id"] == first["case_id"] and raised["status"] == "open"
    due = datetime.fromisoformat(raised["due_at"])
    assert sent <= due <= sent + timedelta(minutes=30, seconds=5)
    assert api.worker.agents.case_agent.awaiting[raised["case_id"].encode()] == due.timestamp()


def test_a_hold_lifted_by_a_late_negative_result_leaves_no_open_case(api: RunningWorker) -> None:
    serial = 312
    body = _post(api, "/api/checkpoints/cp-01/scans", scan(serial=serial), "checkpoint")
    assert body["people"][0]["action"] == "hold"
    masked = body["people"][0]["masked_id"]
    held = _case(api, masked, lambda c: c["status"] == "open")
    _post(api, "/api/nat-results", nat_result(serial=serial), "lab")
    closed = _case(api, masked, lambda c: c["status"] != "open")
    assert closed["case_id"] == held["case_id"]
    assert closed["status"] == "closed" and closed["closed_reason"] == "cleared by rules"
    assert closed["due_at"] is None and not closed["overdue"]
    assert held["case_id"].encode() not in api.worker.agents.case_agent.awaiting
    status, dashboard = api.call("GET", "/api/dashboard", token=api.tokens["admin"])
    assert status == 200 and "clear" not in dashboard["open_by_action"]
