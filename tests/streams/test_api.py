"""The HTTP API on a memory:// worker: every 4xx path names its problem, and the happy paths do what they say."""

from __future__ import annotations

import http.client
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import orjson
import pytest

from tests.streams.api_helpers import (
    COMMUNITY_A,
    COMMUNITY_B,
    RunningWorker,
    declaration,
    nat_result,
    scan,
    start_worker,
)

SCANS = "/api/checkpoints/cp-01/scans"


def _fields(body: dict) -> list[str]:
    return [f["field"] for f in body["fields"]]


def _wait_for(check, timeout: float = 10.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- checkpoint scans -----------------------------------------------------------------------------

def test_scan_answers_the_decision_with_masked_ids(api: RunningWorker) -> None:
    document = scan(people=2)
    status, body = api.call("POST", SCANS, document, token=api.tokens["checkpoint"])
    assert status == 200, body
    assert body["decision"] == "hold"
    assert body["rules_version"] == api.worker.runtime.rules_version
    assert [p["action"] for p in body["people"]] == ["hold", "hold"]
    assert all("*" * 11 in p["masked_id"] for p in body["people"])
    assert all(p["reasons"] and p["reasons"][0]["rule"] == "checkpoint-without-nat" for p in body["people"])
    raw = orjson.dumps(body).decode()
    assert all(person["id_number"] not in raw for person in document["people"])


def test_scan_passes_a_pedestrian(api: RunningWorker) -> None:
    document = scan()
    document["people"][0]["role"] = "pedestrian"
    status, body = api.call("POST", SCANS, document, token=api.tokens["checkpoint"])
    assert status == 200, body
    assert body["decision"] == "pass"
    assert body["people"][0]["action"] == "clear"


@pytest.mark.parametrize(("token", "status", "words"), [
    (None, 401, "authentication required"),
    ("epf_not-a-real-token", 401, "not valid"),
    ("community_a", 403, "may not act for checkpoint"),
    ("lab", 403, "may not act for checkpoint"),
])
def test_scan_refuses_callers_without_the_right_token(api: RunningWorker, token: str | None, status: int, words: str) -> None:
    presented = api.tokens.get(token, token) if token else None
    got, body = api.call("POST", SCANS, scan(), token=presented)
    assert got == status
    assert words in body["problem"]


def test_a_checkpoint_token_is_only_for_its_own_checkpoint(api: RunningWorker) -> None:
    status, body = api.call("POST", "/api/checkpoints/cp-02/scans", scan("cp-02"), token=api.tokens["checkpoint"])
    assert status == 403
    assert "checkpoint 'cp-02'" in body["problem"]


def test_an_admin_token_may_post_for_any_checkpoint(api: RunningWorker) -> None:
    status, body = api.call("POST", "/api/checkpoints/cp-02/scans", scan("cp-02"), token=api.tokens["admin"])
    assert status == 200, body


@pytest.mark.parametrize(("body", "words"), [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b"", "empty"),
])
def test_scan_bad_json_is_400(api: RunningWorker, body: bytes, words: str) -> None:
    status, answer = api.call("POST", SCANS, body, token=api.tokens["checkpoint"])
    assert status == 400
    assert words in answer["problem"]


def test_scan_schema_problems_are_422_listing_each_field(api: RunningWorker) -> None:
    document = scan()
    document["people"] = []
    document["location"] = {"lon": 200.0, "lat": 30.0}
    status, body = api.call("POST", SCANS, document, token=api.tokens["checkpoint"])
    assert status == 422
    fields = _fields(body)
    assert "people" in fields
    assert "location.lon" in fields
    assert all(f["problem"] for f in body["fields"])


def test_scan_with_a_bad_id_number_names_the_field_not_the_value(api: RunningWorker) -> None:
    document = scan()
    bad = document["people"][0]["id_number"][:-1] + ("0" if document["people"][0]["id_number"][-1] != "0" else "1")
    document["people"][0]["id_number"] = bad
    status, body = api.call("POST", SCANS, document, token=api.tokens["checkpoint"])
    assert status == 422
    assert "people.0.id_number" in _fields(body)
    assert bad not in orjson.dumps(body).decode()


def test_scan_of_another_type_is_422(api: RunningWorker) -> None:
    status, body = api.call("POST", SCANS, nat_result(), token=api.tokens["checkpoint"])
    assert status == 422
    assert _fields(body) == ["type"]
    assert "CheckpointScan" in body["problem"]


def test_scan_for_another_checkpoint_than_the_url_is_422(api: RunningWorker) -> None:
    status, body = api.call("POST", SCANS, scan("cp-03"), token=api.tokens["checkpoint"])
    assert status == 422
    assert _fields(body) == ["checkpoint_id"]


def test_scan_too_old_is_422(api: RunningWorker) -> None:
    document = scan()
    document["scanned_at"] = (datetime.now(UTC) - timedelta(days=60)).isoformat()
    status, body = api.call("POST", SCANS, document, token=api.tokens["checkpoint"])
    assert status == 422
    assert "too_old" in body["problem"]


def test_body_over_one_mib_by_content_length_is_413(api: RunningWorker) -> None:
    status, body = api.call("POST", SCANS, b"x" * (1024 * 1024 + 1), token=api.tokens["checkpoint"])
    assert status == 413
    assert "limit is 1048576 bytes" in body["problem"]


def test_body_over_one_mib_without_content_length_is_413(api: RunningWorker) -> None:
    url = urlparse(api.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    chunks = (b"y" * 65536 for _ in range(20))
    conn.request("POST", SCANS, body=chunks, encode_chunked=True,
                 headers={"Authorization": f"Bearer {api.tokens['checkpoint']}", "Transfer-Encoding": "chunked",
                          "Content-Type": "application/json"})
    response = conn.getresponse()
    body = orjson.loads(response.read())
    conn.close()
    assert response.status == 413
    assert "over 1048576 bytes" in body["problem"]


@pytest.mark.parametrize(("path", "token", "document"), [
    (SCANS, "checkpoint", scan), ("/api/declarations", "admin", declaration), ("/api/nat-results", "lab", nat_result),
])
@pytest.mark.parametrize("content_type", ["", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_input_endpoints_take_json_only(api: RunningWorker, path: str, token: str, document, content_type: str) -> None:  # noqa: ANN001
    status, body = api.call("POST", path, orjson.dumps(document()), token=api.tokens[token], headers={"Content-Type": content_type})
    assert status == 415, body
    assert "application/json" in body["problem"]


def test_json_with_a_charset_is_taken(api: RunningWorker) -> None:
    status, body = api.call("POST", SCANS, scan(), token=api.tokens["checkpoint"],
                            headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 200, body


def test_a_scan_from_an_unknown_checkpoint_is_404(api: RunningWorker) -> None:
    status, body = api.call("POST", "/api/checkpoints/CP-99/scans", scan("CP-99"), token=api.tokens["admin"])
    assert status == 404
    assert "no checkpoint 'CP-99'" in body["problem"] and "accept_unknown_checkpoints" in body["problem"]


def test_unknown_checkpoints_are_taken_when_configured(tmp_path: Path) -> None:
    running = start_worker(tmp_path / "access.toml", accept_unknown_checkpoints=True)
    try:
        status, body = running.call("POST", "/api/checkpoints/CP-99/scans", scan("CP-99"), token=running.tokens["admin"])
        assert status == 200, body
        assert body["decision"] == "hold"
    finally:
        running.stop()


# --- declarations, NAT results, policy --------------------------------------------------------------

def test_declaration_is_202_with_the_policy(api: RunningWorker) -> None:
    status, body = api.call("POST", "/api/declarations", declaration(), token=api.tokens["admin"])
    assert status == 202, body
    assert body["accepted"] is True
    assert body["policy"]["rules_version"] == api.worker.runtime.rules_version
    assert "action" in body["policy"]


def test_declaration_needs_the_admin_token(api: RunningWorker) -> None:
    status, body = api.call("POST", "/api/declarations", declaration(), token=api.tokens["checkpoint"])
    assert status == 403
    assert "checkpoint:cp-01" in body["problem"]


def test_declaration_schema_problem_is_422(api: RunningWorker) -> None:
    document = declaration()
    del document["destination"]
    status, body = api.call("POST", "/api/declarations", document, token=api.tokens["admin"])
    assert status == 422
    assert "destination" in _fields(body)


def test_nat_result_is_202_for_its_lab(api: RunningWorker) -> None:
    status, body = api.call("POST", "/api/nat-results", nat_result("lab-1"), token=api.tokens["lab"])
    assert status == 202, body


def test_nat_result_for_another_lab_is_403(api: RunningWorker) -> None:
    status, body = api.call("POST", "/api/nat-results", nat_result("lab-2"), token=api.tokens["lab"])
    assert status == 403
    assert "lab_id 'lab-2'" in body["problem"]


def test_policy_answers_action_and_reasons(api: RunningWorker) -> None:
    status, body = api.call("GET", "/api/policy?lon=120.30&lat=30.43&at=2022-06-20T10:00:00%2B08:00", token=api.tokens["lab"])
    assert status == 200, body
    assert {"action", "text", "reasons", "rules_version"} <= set(body)


@pytest.mark.parametrize(("query", "field", "words"), [
    ("lat=30", "lon", "missing"),
    ("lon=abc&lat=30", "lon", "not a number"),
    ("lon=120&lat=95", "lat", "out of range"),
    ("lon=120&lat=30&at=2022-06-20T10:00:00", "at", "UTC offset"),
    ("lon=120&lat=30&at=yesterday", "at", "ISO 8601"),
])
def test_policy_bad_query_is_400_naming_the_parameter(api: RunningWorker, query: str, field: str, words: str) -> None:
    status, body = api.call("GET", f"/api/policy?{query}", token=api.tokens["admin"])
    assert status == 400
    assert [f for f in body["fields"] if f["field"] == field and words in f["problem"]]


def test_policy_without_token_is_401(api: RunningWorker) -> None:
    status, body = api.call("GET", "/api/policy?lon=120&lat=30")
    assert status == 401
    assert "Bearer" in body["problem"]


# --- community queues and case steps ----------------------------------------------------------------

def _case_for(api: RunningWorker, masked_id: str, code: str = COMMUNITY_A[0]) -> dict:
    def find() -> dict | None:
        status, body = api.call("GET", f"/api/communities/{code}/cases", token=api.tokens["admin"])
        assert status == 200
        return next((c for c in body["cases"] if c["masked_id"] == masked_id), None)

    return _wait_for(find)


def test_community_token_sees_its_queue_with_full_phone(api: RunningWorker) -> None:
    status, body = api.call("POST", SCANS, scan(), token=api.tokens["checkpoint"])
    masked = body["people"][0]["masked_id"]
    case = _case_for(api, masked)
    assert case["phone"] == "138****8000"  # admin sees a masked phone
    status, own = api.call("GET", f"/api/communities/{COMMUNITY_A[0]}/cases", token=api.tokens["community_a"])
    assert status == 200
    mine = next(c for c in own["cases"] if c["case_id"] == case["case_id"])
    assert mine["phone"] == "13800138000"
    assert mine["status"] == "open" and mine["action"] == "hold"


def test_community_token_on_another_community_is_403(api: RunningWorker) -> None:
    status, body = api.call("GET", f"/api/communities/{COMMUNITY_B[0]}/cases", token=api.tokens["community_a"])
    assert status == 403
    assert f"community '{COMMUNITY_B[0]}'" in body["problem"]


def test_unknown_community_is_404(api: RunningWorker) -> None:
    status, body = api.call("GET", "/api/communities/999999/cases", token=api.tokens["admin"])
    assert status == 404
    assert "'999999'" in body["problem"]


def test_accept_then_resolve_write_case_events(api: RunningWorker) -> None:
    status, body = api.call("POST", SCANS, scan(), token=api.tokens["checkpoint"])
    case = _case_for(api, body["people"][0]["masked_id"])
    case_id = case["case_id"]
    status, body = api.call("POST", f"/api/cases/{case_id}/accept", token=api.tokens["community_a"])
    assert status == 202, body
    assert body["by"] == f"community:{COMMUNITY_A[0]}"
    _wait_for(lambda: _case_for(api, case["masked_id"])["status"] == "accepted")
    status, body = api.call("POST", f"/api/cases/{case_id}/resolve", {"note": "tested negative on site"},
                            token=api.tokens["community_a"])
    assert status == 202, body
    _wait_for(lambda: _case_for(api, case["masked_id"])["status"] == "resolved")
    _wait_for(lambda: any("tested negative on site" in n for n in _case_for(api, case["masked_id"])["notes"]))
    from streams.memory import get_broker

    events = [orjson.loads(r.value) for r in get_broker(api.worker.settings.broker).all_records(
        api.worker.settings.topic("case-events")) if r.key == case_id.encode()]
    assert [e["kind"] for e in events] == ["accepted", "resolved", "note"]


def test_another_community_cannot_accept_a_case(api: RunningWorker) -> None:
    status, body = api.call("POST", SCANS, scan(), token=api.tokens["checkpoint"])
    case = _case_for(api, body["people"][0]["masked_id"])
    status, body = api.call("POST", f"/api/cases/{case['case_id']}/accept", token=api.tokens["community_b"])
    assert status == 403
    assert f"community '{COMMUNITY_A[0]}'" in body["problem"]


@pytest.mark.parametrize(("path", "body", "status", "words"), [
    ("/api/cases/case-nope/accept", None, 404, "no case 'case-nope'"),
    ("/api/cases/case-nope/reopen", None, 404, "unknown case step 'reopen'"),
])
def test_case_step_errors(api: RunningWorker, path: str, body: dict | None, status: int, words: str) -> None:
    got, answer = api.call("POST", path, body, token=api.tokens["admin"])
    assert got == status
    assert words in answer["problem"]


def test_case_note_must_be_text(api: RunningWorker) -> None:
    status, body = api.call("POST", SCANS, scan(), token=api.tokens["checkpoint"])
    case = _case_for(api, body["people"][0]["masked_id"])
    status, body = api.call("POST", f"/api/cases/{case['case_id']}/resolve", {"note": 5}, token=api.tokens["community_a"])
    assert status == 422
    assert _fields(body) == ["note"]
    status, body = api.call("POST", f"/api/cases/{case['case_id']}/resolve", b"{oops", token=api.tokens["community_a"])
    assert status == 400
    assert "not valid JSON" in body["problem"]


def test_dashboard_json_is_admin_only(api: RunningWorker) -> None:
    status, body = api.call("GET", "/api/dashboard", token=api.tokens["community_a"])
    assert status == 403
    status, body = api.call("GET", "/api/dashboard", token=api.tokens["admin"])
    assert status == 200
    assert body["counts"]["inputs"] >= 1
    assert body["colours"].get(COMMUNITY_A[0]) in {"yellow", "orange", "red", "blue"}


# --- pages and sessions -----------------------------------------------------------------------------

def test_pages_redirect_to_login_without_a_session(api: RunningWorker) -> None:
    status, _ = api.call("GET", "/dashboard")
    assert status == 303


def test_login_sets_an_httponly_strict_cookie_and_a_bad_token_is_refused(api: RunningWorker) -> None:
    url = urlparse(api.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", "/login", body=f"token={api.tokens['community_a']}&next=",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie")
    assert response.status == 303
    assert response.getheader("Location") == f"/communities/{COMMUNITY_A[0]}"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = cookie.split(";")[0]
    conn.request("GET", f"/communities/{COMMUNITY_B[0]}", headers={"Cookie": session})
    response = conn.getresponse()
    assert response.status == 403
    assert "may not act for community" in response.read().decode()
    conn.request("GET", f"/communities/{COMMUNITY_A[0]}", headers={"Cookie": session})
    response = conn.getresponse()
    assert response.status == 200
    response.read()
    conn.request("POST", "/login", body="token=wrong", headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    assert response.status == 401
    assert "令牌无效" in response.read().decode()
    conn.close()


def test_open_mode_without_access_file_on_memory(tmp_path: Path) -> None:
    running = start_worker(None)
    try:
        status, body = running.call("GET", "/api/dashboard")
        assert status == 200
    finally:
        running.stop()
