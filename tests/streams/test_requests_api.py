"""`POST /api/cases/{id}/requests` and `POST /api/requests/{id}/answer` refuse what they cannot use with a 4xx naming
the problem, never a 5xx."""

from __future__ import annotations

import time

import pytest

from tests.streams.api_helpers import RunningWorker
from tests.streams.test_stages_api import _case

CASE = "case-request-api-1"


@pytest.fixture(scope="module", autouse=True)
def _held(api: RunningWorker) -> None:
    _case(api, CASE, action="home_isolation")


@pytest.mark.parametrize(("path", "body", "token", "status", "words"), [
    (f"/api/cases/{CASE}/requests", b"kind=medical", "community_a", 415, "Content-Type: application/json"),
    (f"/api/cases/{CASE}/requests", b"{not json", "community_a", 400, "not JSON"),
    (f"/api/cases/{CASE}/requests", b"[1, 2]", "community_a", 400, "JSON object"),
    (f"/api/cases/{CASE}/requests", b'{"kind": ["medical"], "text": 7}', "community_a", 422, "kind was ['medical']"),
    (f"/api/cases/{CASE}/requests", b'{"kind": "medical", "text": "\\u53d1\\u70ed"}', "community_b", 403, "may not act"),
    (f"/api/cases/{CASE}/requests", b'{"kind": "medical", "text": "x"}', None, 401, "authentication required"),
    ("/api/cases/case-nowhere/requests", b'{"kind": "medical", "text": "x"}', "admin", 404, "no case 'case-nowhere'"),
    ("/api/requests/not-a-request/answer", b'{"answer": "x"}', "community_a", 404, "is expected to be '<case id>."),
    (f"/api/requests/{CASE}.000000000000/answer", b'{"answer": "x"}', "community_a", 404, "no request"),
    (f"/api/requests/case-nowhere.{'0' * 12}/answer", b'{"answer": "x"}', "admin", 404, "its case is on no worker"),
    (f"/api/persons/{'f' * 64}/requests", b'{"kind": "other", "text": "x"}', "checkpoint", 403, "may not act"),
])
def test_bad_requests_are_refused_naming_the_problem(api: RunningWorker, path: str, body: bytes, token: str | None,
                                                     status: int, words: str) -> None:
    headers = {"Content-Type": "text/plain"} if status == 415 else None
    got, answer = api.call("POST", path, body, token=api.tokens[token] if token else None, headers=headers)
    assert got == status and words in answer["problem"], answer


def test_an_answer_needs_text(api: RunningWorker) -> None:
    status, posted = api.call("POST", f"/api/cases/{CASE}/requests", {"kind": "other", "text": "快递代收"},
                              token=api.tokens["community_a"])
    assert status == 202
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = api.call("POST", f"/api/requests/{posted['request_id']}/answer", {"answer": " "},
                                token=api.tokens["site"])
        if status != 404:
            break
        time.sleep(0.05)
    assert status == 422 and body["fields"][0]["field"] == "answer", body
