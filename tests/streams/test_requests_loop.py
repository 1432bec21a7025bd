"""Requests from a person under management on a running worker, on memory:// and on the real Kafka broker: posted
for the person, a `request` message on the community's topic, answered with its response time; an unanswered one
escalated to the street past its answer deadline with no further event; both in the dashboard and the daily report."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.events import CaseEvent, Reason, TriageMessage
from pipeline.identity import check_character
from pipeline.requests import request_id_for
from streams.agents import read_case
from streams.topics import street_topic_name, triage_topic_name
from tests.streams.api_helpers import COMMUNITY_A, RunningWorker, start_worker
from tests.streams.harness import Bus, cleanup, deployment_settings, running_worker, wait_until


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningWorker]:
    overrides: dict[str, object] = {"data_dir": tmp_path / "data", "topic_prefix": f"t{uuid.uuid4().hex[:10]}"}
    if request.param == "kafka":
        overrides.update(broker="kafka://" + request.getfixturevalue("kafka_bootstrap"), insecure_demo_secret=True)
    running = start_worker(tmp_path / "access.toml", ready_within=120, **overrides)
    try:
        yield running
    finally:
        running.stop()
        cleanup(running.worker.settings)


def _id(serial: int) -> str:
    first17 = f"33010619900101{serial:03d}"
    return first17 + check_character(first17)


def _declaration(id_number: str, submitted: datetime) -> dict:
    """A trip from a place of no risk with no NAT report: `test_within_24h` of arrival, managed until tested."""
    return {
        "type": "declaration", "event_id": f"d-{uuid.uuid4().hex[:10]}", "submitted_at": submitted.isoformat(),
        "person": {"id_number": id_number, "name": "测试", "phone": "13800138000"},
        "arrival_at": (submitted + timedelta(hours=2)).isoformat(),
        "destination": {"lon": COMMUNITY_A[1], "lat": COMMUNITY_A[2], "address": "兰学社区1幢101室"},
        "itinerary": [{"lon": 112.9, "lat": 28.2, "place": "长沙市岳麓区", "from": (submitted - timedelta(days=2)).isoformat(),
                       "to": (submitted - timedelta(days=1)).isoformat()}],
    }


def _until(predicate: Callable[[], object], timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_a_request_is_posted_told_answered_timed_and_an_unanswered_one_escalated(site: RunningWorker) -> None:
    settings = site.worker.settings
    bus = Bus(settings)
    queue = triage_topic_name(settings.topic_prefix, COMMUNITY_A[0])
    street = street_topic_name(settings.topic_prefix, site.worker.runtime.communities.street_of(COMMUNITY_A[0]) or "")
    tokens = site.tokens

    def messages(topic: str, kind: str) -> list[dict]:
        return [m for r in bus.records(topic) if (m := orjson.loads(r.value)).get("kind") == kind]

    status, _ = site.call("POST", "/api/declarations", _declaration(_id(41), datetime.now(UTC)), token=tokens["admin"])
    assert status == 202
    triage = _until(lambda: messages(queue, "triage"))
    assert triage, "the declaration reached the community's queue"
    person, case_id = triage[0]["person_key"], triage[0]["case_id"]
    assert _until(lambda: person.encode() in site.worker.agents.managed), "the person is under management"
    path = f"/api/persons/{person}/requests"

    status, body = site.call("POST", path, b"kind=medical", token=tokens["site"], headers={"Content-Type": "text/plain"})
    assert status == 415, body
    status, body = site.call("POST", path, {"kind": "food", "text": "米"}, token=tokens["site"])
    assert status == 422 and [f["field"] for f in body["fields"]] == ["kind"], body
    status, body = site.call("POST", path, {"kind": "medical", "text": "x" * 501}, token=tokens["site"])
    assert status == 422 and body["fields"][0]["field"] == "text" and "500" in body["fields"][0]["problem"], body
    status, _ = site.call("POST", path, {"kind": "medical", "text": "发热"}, token=tokens["community_b"])
    assert status == 403, "another community may not post for this person"
    status, body = site.call("POST", f"/api/persons/{'0' * 64}/requests", {"kind": "medical", "text": "发热"},
                             token=tokens["site"])
    assert status == 404 and "not under management" in body["problem"], body

    status, posted = site.call("POST", path, {"kind": "medical", "text": "需要降压药"}, token=tokens["site"])
    assert status == 202 and posted["case_id"] == case_id and posted["request_id"].startswith(case_id + "."), posted
    told = _until(lambda: messages(queue, "request"))
    assert told and told[0]["detail"]["step"] == "posted" and told[0]["detail"]["text"] == "需要降压药"
    assert told[0]["case_id"] == case_id and told[0]["masked_id"] == triage[0]["masked_id"]

    answer = f"/api/requests/{posted['request_id']}/answer"
    status, answered = site.call("POST", answer, {"answer": "已联系社区医生送药"}, token=tokens["community_a"])
    assert status == 202 and answered["response_minutes"] >= 0, answered
    told = _until(lambda: [m for m in messages(queue, "request") if m["detail"]["step"] == "answered"])
    assert told and told[0]["detail"]["answer"] == "已联系社区医生送药"
    assert told[0]["detail"]["response_minutes"] is not None and told[0]["message_id"] != posted["request_id"]

    def shown() -> dict:
        status, body = site.call("GET", f"/api/communities/{COMMUNITY_A[0]}/cases", token=tokens["community_a"])
        assert status == 200
        return next(c for c in body["cases"] if c["case_id"] == case_id)

    row = _until(lambda: (r := shown()) and r["requests"] and r["requests"][0]["status"] == "answered" and r)
    assert row["requests"][0]["response_minutes"] == told[0]["detail"]["response_minutes"]
    status, body = site.call("POST", answer, {"answer": "再答一次"}, token=tokens["site"])
    assert status == 409 and "was answered" in body["problem"]

    # a supplies request (4 h to answer) nobody answers: escalated once its deadline passes, with no event arriving
    status, unanswered = site.call("POST", f"/api/cases/{case_id}/requests", {"kind": "supplies", "text": "米面油"},
                                   token=tokens["community_a"])
    assert status == 202
    assert _until(lambda: len(shown()["requests"]) == 2)
    joined = site.worker.agents.counts["joined"]
    later = datetime.now(UTC) + timedelta(hours=4, minutes=1)
    ticking = site.worker.runtime.clock
    site.worker.runtime.clock = lambda: later
    escalated = _until(lambda: [m for m in messages(street, "request") if m["detail"]["step"] == "escalated"])
    assert escalated and escalated[0]["detail"]["request_id"] == unanswered["request_id"]
    assert [m["detail"]["request_id"] for m in messages(queue, "request") if m["detail"]["step"] == "escalated"] == \
        [unanswered["request_id"]]
    assert site.worker.agents.counts["joined"] == joined, "no new event reached the join"
    time.sleep(2.5)  # further timer ticks must not escalate it again
    assert len([m for m in messages(street, "request") if m["detail"]["step"] == "escalated"]) == 1

    site.worker.runtime.clock = ticking
    status, board = site.call("GET", "/api/dashboard", token=tokens["admin"])
    assert status == 200
    assert (board["requests"]["open"], board["requests"]["answered"]) == (1, 1)
    assert board["requests"]["median_response_minutes"] == told[0]["detail"]["response_minutes"]
    day = datetime.fromisoformat(posted["posted_at"]).date().isoformat()
    status, report = site.call("GET", f"/reports/daily?format=json&date={day}", token=tokens["admin"])
    assert status == 200
    assert report["totals"]["requests_posted"] == 2 and report["totals"]["requests_answered"] == 1
    assert report["totals"]["requests_open"] == 1
    assert report["totals"]["median_response_minutes"] == told[0]["detail"]["response_minutes"]
    assert _id(41) not in orjson.dumps([r.value.decode() for r in bus.records(queue)]).decode()


def test_an_unanswered_request_survives_a_restart_and_is_escalated_by_the_restarted_worker(tmp_path: Path) -> None:
    settings = deployment_settings("memory", data_dir=tmp_path / "first")
    restarted = settings.model_copy(update={"data_dir": tmp_path / "second"})  # from the changelog alone
    bus = Bus(settings)
    now = datetime.now(UTC)
    case_id = "case-request-restart"
    message = TriageMessage(
        message_id="msg-request-restart", case_id=case_id, person_key="k-request-restart", masked_id="330***********555X",
        name="周九", phone="13900139005", community=COMMUNITY_A[0], action="home_isolation", previous_action=None,
        severity=40, due_at=None, reasons=[Reason(rule="medium-risk", text="中风险地区旅居")],
        rules_version="", flagged_at=now, source_event_ids=[])
    request_id = request_id_for(case_id, "medical", "发热", now)
    asked = CaseEvent(case_id=case_id, kind="request", by="site:s1", at=now, note="发热", request_id=request_id,
                      request_kind="medical", due_at=now + timedelta(hours=1))
    clock = [now]

    async def first_run() -> tuple:
        async with running_worker(settings, clock=lambda: clock[0]) as worker:
            bus.send("cases", message.model_dump_json().encode(), key=case_id.encode())
            assert await wait_until(lambda: worker.agents.cases.get(case_id.encode()) is not None, 30)
            bus.send("case-events", asked.model_dump_json().encode(), key=case_id.encode())
            assert await wait_until(lambda: bool(read_case(worker.agents.cases.get(case_id.encode()))[0].requests), 30)
            return read_case(worker.agents.cases.get(case_id.encode()))[0].requests

    async def second_run() -> tuple:
        clock[0] = now + timedelta(hours=1, minutes=1)
        async with running_worker(restarted, clock=lambda: clock[0]) as worker:
            street = street_topic_name(settings.topic_prefix, worker.runtime.communities.street_of(COMMUNITY_A[0]) or "")

            def escalated() -> list[dict]:
                return [m for r in bus.records(street) if (m := orjson.loads(r.value)).get("kind") == "request"]

            assert await wait_until(lambda: bool(escalated()), 30), "the restarted worker escalates the request"
            held = read_case(worker.agents.cases.get(case_id.encode()))[0].requests
            return held, escalated()

    try:
        before = asyncio.run(first_run())
        after, told = asyncio.run(second_run())
    finally:
        cleanup(settings)
    assert before[0][:6] == after[0][:6] and before[0][0] == request_id
    assert after[0][9], "the escalation is recorded on the request"
    assert [(m["detail"]["step"], m["detail"]["request_id"]) for m in told] == [("escalated", request_id)]
