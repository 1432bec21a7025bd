"""Control topics and the case loop on a running worker, on memory:// and on the real Kafka broker.

(b) a newly designated high-risk region flags earlier visitors within 2 s of publishing;
(c) a broken rules document is refused and the previous version stays active;
(f) a case not accepted in time is escalated to its street's queue.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import shapely

from geo.load import load_communities
from pipeline.identity import check_character
from pipeline.settings import Settings
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


def _community(settings: Settings) -> tuple[str, str, float, float]:
    community = load_communities(settings.path(settings.communities))[0]
    point = community.geometry.representative_point()
    return community.code, community.street, point.x, point.y


def _declaration(event_id: str, id_number: str, now: datetime, dest: tuple[float, float], stop: tuple[float, float],
                 stop_at: datetime, nat: str | None = "negative") -> bytes:
    doc = {
        "type": "declaration", "event_id": event_id, "submitted_at": now.isoformat(),
        "person": {"id_number": id_number, "name": "测试", "phone": "13800138000"},
        "arrival_at": (now + timedelta(hours=2)).isoformat(),
        "destination": {"lon": dest[0], "lat": dest[1], "address": "test"},
        "itinerary": [{"lon": stop[0], "lat": stop[1], "place": "远方", "from": stop_at.isoformat(),
                       "to": (stop_at + timedelta(hours=6)).isoformat()}],
    }
    if nat:
        doc["nat_report"] = {"sampled_at": (now - timedelta(hours=5)).isoformat(), "result": nat, "lab": "lab-1"}
    return orjson.dumps(doc)


def test_new_high_risk_region_flags_earlier_visitors_within_two_seconds(deployment: Settings) -> None:
    code, _, lon, lat = _community(deployment)
    visit = (101.512345, 25.043210)

    async def scenario() -> tuple[float, dict]:
        bus = Bus(deployment)
        async with running_worker(deployment) as worker:
            now = datetime.now(UTC)
            bus.send("declarations", _declaration("d-visit", _id(1), now, (lon, lat), visit, now - timedelta(days=3)))
            bus.flush()
            assert await wait_until(lambda: worker.agents.counts["joined"] >= 1, 30)
            assert worker.runtime.regions.lookup(*visit, now - timedelta(days=3)) == []
            region = {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(shapely.Point(visit).buffer(0.01)),
                "properties": {"id": "R-NEW-1", "level": "high", "name": "新设高风险区",
                               "effective_from": (now - timedelta(days=4)).isoformat(), "effective_until": None},
            }
            published = time.monotonic()
            bus.send("risk-regions", orjson.dumps(region), key=b"R-NEW-1")
            bus.flush()
            topic = triage_topic_name(deployment.topic_prefix, code)
            flagged: list[dict] = []

            def seen() -> bool:
                flagged[:] = [m for m in map(orjson.loads, (r.value for r in bus.records(topic)))
                              if m["action"] == "centralized_isolation"]
                return bool(flagged)

            assert await wait_until(seen, 10, interval=0.05)
            return time.monotonic() - published, flagged[0]

    elapsed, message = asyncio.run(scenario())
    assert elapsed < 2.0, f"flagged {elapsed:.2f} s after publishing"
    assert message["community"] == code
    assert any(r.get("region_id") == "R-NEW-1" for r in message["reasons"])


def test_broken_rules_document_is_refused_and_previous_version_stays(deployment: Settings) -> None:
    async def scenario() -> tuple[str, str, list[dict]]:
        bus = Bus(deployment)
        async with running_worker(deployment) as worker:
            before = worker.runtime.rules_version
            good = deployment.path(deployment.rules).read_text(encoding="utf-8")
            broken = good.replace("lookback_days:", "lookbak_days:", 1)
            assert broken != good
            bus.send("rules", broken.encode(), key=b"active")
            bus.flush()
            assert await wait_until(lambda: bool(worker.runtime.refusals), 15)
            return before, worker.runtime.rules_version, list(worker.runtime.refusals)

    before, after, refusals = asyncio.run(scenario())
    assert before and after == before
    assert refusals[-1]["kind"] == "rules"
    assert re.search(r"rules:\d+: windows.lookbak_days: unknown key", refusals[-1]["detail"])


def test_case_not_accepted_in_time_is_escalated_to_its_street(deployment: Settings) -> None:
    code, street, lon, lat = _community(deployment)

    async def scenario() -> list[dict]:
        bus = Bus(deployment)
        async with running_worker(deployment) as worker:
            now = datetime.now(UTC)
            bus.send("declarations", _declaration("d-pos", _id(2), now, (lon, lat), (lon, lat), now - timedelta(days=1), nat="positive"))
            bus.flush()
            assert await wait_until(lambda: any(c.action == "transfer" for c, _ in worker.agents.case_agent.local_cases()), 30)
            case, _ = worker.agents.case_agent.local_cases()[0]
            assert case.community == code and case.due_at is not None
            worker.runtime.clock = lambda: case.due_at + timedelta(seconds=1)
            street_topic = street_topic_name(deployment.topic_prefix, street)
            assert await wait_until(lambda: bool(bus.records(street_topic)), 15)
            # the escalation is delivered before the case records it: give the case a moment to follow
            assert await wait_until(lambda: any(c.escalated_at is not None for c, _ in worker.agents.case_agent.local_cases()), 5)
            assert worker.runtime.metrics.cases_overdue._value.get() == 1
            return [orjson.loads(r.value) for r in bus.records(street_topic)]

    messages = asyncio.run(scenario())
    assert len(messages) == 1
    assert messages[0]["kind"] == "escalation" and messages[0]["community"] == code and messages[0]["street"] == street
