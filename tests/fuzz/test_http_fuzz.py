"""The HTTP API under hostile bodies and queries: every answer is 2xx or 4xx with a problem, never 5xx.

A memory:// worker with an access file (real tokens per role, as `tests/streams/api_helpers.py` sets
up) serves the checkpoint, declaration and NAT endpoints and the policy look-up. Bodies come from the
same strategies as the topic fuzz, anchored at the real clock (the API validates against now), and
include bodies over 1 MiB and invalid UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import Sample, documents, hostile_documents, odd_text
from tests.streams.api_helpers import RunningWorker, start_worker

NOW = datetime.now(UTC).replace(microsecond=0)
ENDPOINTS = {
    "checkpoint-scans": ("/api/checkpoints/cp-01/scans", "checkpoint"),
    "declarations": ("/api/declarations", "admin"),
    "nat-results": ("/api/nat-results", "lab"),
}
_FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    running = start_worker(tmp_path_factory.mktemp("access") / "access.toml")
    try:
        yield running
    finally:
        running.stop()


def _check(status: int, body: Any, what: str) -> None:
    assert status < 500, f"{what}: {status} {body!r:.500}"
    assert 200 <= status < 300 or 400 <= status < 500, f"{what}: {status}"
    if status >= 400:
        assert isinstance(body, dict) and str(body.get("problem", "")).strip(), f"{what}: {status} without a problem: {body!r:.300}"


@pytest.mark.parametrize("kind", list(ENDPOINTS))
@_FUZZ
@given(data=st.data())
def test_posted_documents_get_2xx_or_4xx_never_5xx(api: RunningWorker, kind: str, data: st.DataObject) -> None:
    sample: Sample = data.draw(documents(NOW, (kind,)) | hostile_documents((kind,)))
    path, role = ENDPOINTS[kind]
    raw = sample.raw
    if sample.valid:  # the token is for checkpoint cp-01 and lab lab-1
        document = orjson.loads(raw)
        document.update({"checkpoint_id": "cp-01"} if kind == "checkpoint-scans" else {"lab_id": "lab-1"} if kind == "nat-results" else {})
        raw = orjson.dumps(document)
    status, body = api.call("POST", path, raw, token=api.tokens[role], headers={"Content-Type": "application/json"})
    event(f"HTTP {status}")
    _check(status, body, f"{kind}/{sample.mutation}")
    if sample.valid:
        assert status in (200, 202), f"valid {kind} refused: {status} {body!r:.300}"
    if len(sample.raw) > 1024 * 1024:
        assert status == 413


@pytest.mark.parametrize("raw", [b"\xff" * 2_000_000, b"{" * 1_100_000, b"[" * 500_000, b"\xed\xa0\x80", b"", b" "])
@pytest.mark.parametrize("kind", list(ENDPOINTS))
def test_oversized_and_undecodable_bodies(api: RunningWorker, kind: str, raw: bytes) -> None:
    path, role = ENDPOINTS[kind]
    status, body = api.call("POST", path, raw, token=api.tokens[role])
    _check(status, body, f"{kind} {raw[:8]!r}")
    assert 400 <= status < 500


@pytest.mark.parametrize("token", [None, "", "epf_" + "x" * 5000, "\u202e\u200b", "a b c"])
def test_bad_tokens_are_4xx(api: RunningWorker, token: str | None) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}".encode().decode("latin-1")}
    status, body = api.call("POST", ENDPOINTS["declarations"][0], b"{}", headers=headers)
    _check(status, body, f"token {token!r:.20}")
    assert status == 401


_QUERY_VALUES = st.sampled_from(["nan", "inf", "-inf", "1e308", "-1e308", "1e999", "-0", "0", "", "120.3", "30.4",
                                 "0x1p3", "1_000", "120,3", "\u0661\u0662\u0660"]) | odd_text()
_TIMES = st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01", "9999-12-31",
                          "2026-02-30T00:00:00Z", "2026-06-01T08:00:00", "2026-06-01T08:00:00+08:00", "now"]) | odd_text()


@_FUZZ
@given(lon=_QUERY_VALUES | st.none(), lat=_QUERY_VALUES | st.none(), at=_TIMES | st.none())
def test_policy_queries_get_2xx_or_4xx_never_5xx(api: RunningWorker, lon: str | None, lat: str | None, at: str | None) -> None:
    query = {k: v for k, v in (("lon", lon), ("lat", lat), ("at", at)) if v is not None}
    status, body = api.call("GET", "/api/policy?" + urlencode(query), token=api.tokens["admin"])
    event(f"HTTP {status}")
    _check(status, body, f"policy {query!r}")


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01", "2026-02-30T00:00:00Z"])
@pytest.mark.parametrize(("lon", "lat"), [("120.3005", "30.4357"), ("-180", "-90"), ("180", "90"), ("-0", "1e-320")])
def test_policy_at_the_edges_of_time_and_the_globe(api: RunningWorker, lon: str, lat: str, at: str) -> None:
    status, body = api.call("GET", "/api/policy?" + urlencode({"lon": lon, "lat": lat, "at": at}), token=api.tokens["admin"])
    _check(status, body, f"policy {lon},{lat} at {at}")
