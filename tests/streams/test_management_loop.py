"""Closing the loop on a running worker, on memory:// and on the real Kafka broker: a missed test raises
`test_overdue` on the community's topic (and the street's) with no further event for the person; a person
whose tests are met gets `released`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from geo.load import load_communities
from pipeline.identity import check_character
from pipeline.settings import Settings
from streams.api import dashboard_data
from streams.daily_report import build_report, read_report_inputs
from streams.topics import street_topic_name, triage_topic_name
from tests.streams.harness import Bus, cleanup, deployment_settings, running_worker, wait_until


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def deployment(request: pytest.FixtureRequest) -> Iterator[Settings]:
    broker = "memory" if request.param == "memory" else "kafka://" + request.getfixturevalue("kafka_bootstrap")
    settings = deployment_settings(broker)
    yield settings
    cleanup(settings)


def _id(serial: int) -> str:
    first17 = f"33010619900101{serial:03d}"
    return first17 + check_character(first17)


def _declaration(event_id: str, id_number: str, submitted: datetime, dest: tuple[float, float]) -> bytes:
    """A declared trip from a place of no risk with no NAT report: `test_within_24h` of arrival (2 h later)."""
    return orjson.dumps({
        "type": "declaration", "event_id": event_id, "submitted_at": submitted.isoformat(),
        "person": {"id_number": id_number, "name": "测试", "phone": "13800138000"},
        "arrival_at": (submitted + timedelta(hours=2)).isoformat(),
        "destination": {"lon": dest[0], "lat": dest[1], "address": "兰学社区1幢101室"},
        "itinerary": [{"lon": 112.9, "lat": 28.2, "place": "长沙市岳麓区", "from": (submitted - timedelta(days=2)).isoformat(),
                       "to": (submitted - timedelta(days=1)).isoformat()}],
    })


def _nat(event_id: str, id_number: str, sampled: datetime, reported: datetime) -> bytes:
    return orjson.dumps({
        "type": "nat_result", "event_id": event_id, "person": {"id_number": id_number, "name": "测试", "phone": "13800138000"},
        "sampled_at": sampled.isoformat(), "reported_at": reported.isoformat(), "result": "negative", "lab_id": "lab-hz-01",
    })


def test_a_missed_test_is_announced_without_a_new_event_and_a_met_schedule_releases(deployment: Settings) -> None:
    community = load_communities(deployment.path(deployment.communities))[0]
    point = community.geometry.representative_point()
    start = datetime.now(UTC).replace(microsecond=0)
    clock = [start]
    topic = triage_topic_name(deployment.topic_prefix, community.code)
    street = street_topic_name(deployment.topic_prefix, community.street)

    def messages(bus: Bus, name: str) -> list[dict]:
        return [orjson.loads(r.value) for r in bus.records(name)]

    def kinds(bus: Bus, name: str, kind: str) -> list[dict]:
        return [m for m in messages(bus, name) if m.get("kind") == kind]

    async def scenario() -> tuple[list[dict], list[dict], dict, dict]:
        bus = Bus(deployment)
        async with running_worker(deployment, clock=lambda: clock[0]) as worker:
            bus.send("declarations", _declaration("d-miss", _id(11), start, (point.x, point.y)))
            bus.send("declarations", _declaration("d-meet", _id(12), start, (point.x, point.y)))
            bus.flush()
            assert await wait_until(lambda: worker.agents.counts["joined"] >= 2, 60), worker.agents.counts
            assert await wait_until(lambda: len(kinds(bus, topic, "triage")) >= 2, 30)
            joined = worker.agents.counts["joined"]

            clock[0] = start + timedelta(hours=26, seconds=1)  # arrival + 24 h has passed: both tests are missed
            assert await wait_until(lambda: len(kinds(bus, topic, "test_overdue")) >= 2, 60)
            assert worker.agents.counts["joined"] == joined, "no new event reached the join"
            assert await wait_until(lambda: len(kinds(bus, street, "test_overdue")) >= 2, 30)

            # a test sampled inside the window but reported late still counts: that person is released
            bus.send("nat-results", _nat("n-meet", _id(12), start + timedelta(hours=25), start + timedelta(hours=26)))
            bus.flush()
            assert await wait_until(lambda: bool(kinds(bus, topic, "released")), 60)
            await asyncio.sleep(2.5)  # further timer ticks must not repeat a message
            board = dashboard_data(worker.agents)["management"]
            inputs = await asyncio.get_running_loop().run_in_executor(None, read_report_inputs, deployment)
            reports, page = build_report(deployment, inputs, clock[0].astimezone(deployment.zone).date(),
                                         worker.runtime.communities, now=clock[0])
            report = {**reports.figures(), "page": page}
            return messages(bus, topic), messages(bus, street), board, report

    queue, escalated, board, report = asyncio.run(scenario())
    assert {m["action"] for m in queue if m["kind"] == "triage"} == {"test_within_24h"}
    released = [m for m in queue if m["kind"] == "released"]
    overdue = [m for m in queue if m["kind"] == "test_overdue"]
    assert len(released) == 1 and len(overdue) == 2 and len({m["message_id"] for m in overdue}) == 2
    assert released[0]["management"]["status"] == "released"
    assert released[0]["management"]["tests"][0]["status"] == "met"
    assert all(m["management"]["status"] == "overdue" and m["test"]["test"] == 1 for m in overdue)
    assert _id(11) not in orjson.dumps(queue).decode() and _id(12) not in orjson.dumps(queue).decode()
    assert sorted(m["message_id"] for m in escalated if m.get("kind") == "test_overdue") == sorted(m["message_id"] for m in overdue)

    assert board["by_status"] == {"active": 0, "overdue": 1, "released_today": 1}
    assert board["streets"] == [{"street": community.street, "active": 0, "overdue": 1, "released_today": 1}]
    assert report["totals"]["people_released"] == 1 and report["totals"]["people_overdue"] == 1
    assert report["totals"]["tests_missed"] == 2
    assert report["management"] == [{"street": community.street, "released": 1, "tests_missed": 2, "people_overdue": 1}]
    assert "管控人员（按街道）" in report["page"]
