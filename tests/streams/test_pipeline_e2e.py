"""The whole worker, end to end, on memory:// and on the real Kafka broker, each on the memory and the RocksDB
table store (one test body for all four)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from geo.communities import CommunityIndex
from geo.load import load_communities, load_regions
from geo.regions import RiskIndex
from pipeline.evaluate import evaluate_lines, read_lines
from pipeline.rules import load_rules
from pipeline.settings import Settings
from streams.views import status
from tests.streams.harness import Bus, cleanup, deployment_settings, running_worker, simulation, wait_until

STREAM_FILES = {
    "declarations": "declarations.jsonl",
    "checkpoint-scans": "checkpoint_scans.jsonl",
    "nat-results": "nat_results.jsonl",
}


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory"
    return "kafka://" + request.getfixturevalue("kafka_bootstrap")


@pytest.fixture
def simulated(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, simulation(tmp_path, people=6000, seed=11)


@pytest.fixture
def deployment(broker: str, store: str, simulated: tuple[Path, dict]) -> Iterator[Settings]:
    folder, _ = simulated
    settings = deployment_settings(broker, store=store, data_dir=folder / "data", regions=folder / "risk_regions.geojson")
    yield settings
    cleanup(settings)


def _push_all(bus: Bus, folder: Path) -> int:
    sent = 0
    for kind, name in STREAM_FILES.items():
        for line in read_lines(folder / name):
            bus.send(kind, line)
            sent += 1
    bus.flush()
    return sent


async def traced(counts: dict[str, int], timeout: float) -> bool:
    """Every trace request read and every contact record joined, and still so a second later (a joined
    contact may publish a request of its own)."""
    def idle() -> bool:
        return counts["requests_read"] >= counts["requests_published"] and (
            counts["contact_records_joined"] >= counts["contact_records_sent"])

    while await wait_until(idle, timeout):
        before = dict(counts)
        await asyncio.sleep(1.0)
        if idle() and counts == before:
            return True
    return False


def _last_messages(bus: Bus) -> dict[str, dict]:
    """Each person's latest triage message across community topics (by broker time, then offset)."""
    last: dict[str, tuple[tuple[float, int], dict]] = {}
    topics = [t for t in bus.topics("triage.") if ".triage.street." not in t]
    for records in bus.records_of(topics).values():
        for record in records:
            message = orjson.loads(record.value)
            order = (record.timestamp, record.offset)
            if message["person_key"] not in last or order > last[message["person_key"]][0]:
                last[message["person_key"]] = (order, message)
    return {key: message for key, (_, message) in last.items()}


def test_simulated_events_match_offline_evaluation(
    deployment: Settings, simulated: tuple[Path, dict]
) -> None:
    folder, manifest = simulated
    assert manifest["events"] >= 9_000

    at = datetime.fromisoformat(manifest["at"])

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        bus = Bus(deployment)
        async with running_worker(deployment, clock=lambda: at) as worker:
            counts = worker.agents.counts
            sent = _push_all(bus, folder)
            assert await wait_until(lambda: counts["inputs"] == sent, 120), counts
            assert await wait_until(
                lambda: counts["joined"] + counts["join_dead_lettered"] >= counts["person_events"], 120
            ), counts
            assert await traced(worker.agents.tracing.counts, 120), worker.agents.tracing.counts
            await asyncio.sleep(0.5)
            bus.close()
            managed.update(worker.agents.managed)
            return status(worker.agents)["counts"], dict(worker.agents.tracing.counts)

    managed: dict[bytes, tuple] = {}
    counts, tracing = asyncio.run(scenario())
    assert counts["inputs"] == manifest["events"]
    assert counts["inputs"] == counts["forwarded"] + counts["dead_lettered"]
    assert counts["person_events"] == counts["joined"] + counts["join_dead_lettered"], counts
    assert counts["join_dead_lettered"] == 0, counts

    bus = Bus(deployment)
    dead = bus.records(deployment.topic("dead-letters"))
    person_events = bus.records(deployment.topic("person-events"))
    assert len(dead) == counts["dead_lettered"] and all(orjson.loads(r.value)["reason"] for r in dead)
    # besides the ingested person events, the topic carries one re-evaluation record per contact found
    assert len(person_events) == counts["person_events"] + tracing["contact_records_sent"], tracing

    rules = load_rules(deployment.path(deployment.rules))
    offline = evaluate_lines(
        read_lines(folder / "events.jsonl"),
        rules=rules,
        regions=RiskIndex(load_regions(folder / "risk_regions.geojson")),
        communities=CommunityIndex(load_communities(deployment.path(deployment.communities))),
        at=at,
        secret=deployment.secret_bytes,
        seen="at",  # the worker's clock stood at `at` for every event
    )
    live = _last_messages(bus)
    flagged = {v.person_key: v for v in offline.verdicts if v.action != "clear"}
    assert flagged, "the simulation should flag somebody"
    traced_rules = {rule for v in offline.verdicts for rule in v.rules if "contact" in rule}
    assert {"close-contact-vehicle", "secondary-contact-vehicle"} <= traced_rules, traced_rules
    mismatches = []
    for verdict in offline.verdicts:
        message = live.get(verdict.person_key)
        live_action = message["action"] if message else "clear"
        if live_action != verdict.action or (live_action != "clear" and message["community"] != verdict.community):
            mismatches.append((verdict.masked_id, verdict.action, live_action, verdict.community, message and message["community"]))
    kinds = {}
    for m in mismatches:
        kinds.setdefault((m[1], m[2], m[3] == m[4] if len(m) > 4 else None), []).append(m)
    assert mismatches == [], f"{len(mismatches)} of {len(offline.verdicts)} differ: " + "; ".join(
        f"{k}: {len(v)} e.g. {v[0]}" for k, v in kinds.items()
    )

    live_management = {key.decode(): (status, action, next_due) for key, (status, action, _, next_due, _) in managed.items()}
    offline_management = {
        v.person_key: (m.status, m.action, None if m.next_due is None else float(m.next_due))
        for v, m in zip(offline.verdicts, offline.management, strict=True) if m.status != "none"
    }
    assert offline_management, "the simulation should put somebody under management"
    differ = {k: (offline_management.get(k), live_management.get(k))
              for k in offline_management.keys() | live_management.keys()
              if offline_management.get(k) != live_management.get(k)}
    assert differ == {}, f"{len(differ)} people differ in management, e.g. {list(differ.items())[:3]}"
