"""Key groups on a running worker (memory:// and the real Kafka broker): a roster loaded and NAT results
streamed give the dashboard the figures `epiflow groups status` prints; a member passing their cadence
gets one `test_reminder` on their community's topic with no new event of theirs."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.rosters import roster_rows
from pipeline.settings import Settings
from streams.cli import root
from tests.key_group_data import GROUPS_YAML, A, results, roster_csv
from tests.streams.api_helpers import write_access
from tests.streams.harness import Bus, cleanup, deployment_settings, running_worker, wait_until

COMMUNITY = "330106001"


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory"
    return "kafka://" + request.getfixturevalue("kafka_bootstrap")


@pytest.fixture
def deployment(broker: str, tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    (tmp_path / "kg.yaml").write_text(GROUPS_YAML, encoding="utf-8")
    tokens = write_access(tmp_path / "access.toml")
    settings = deployment_settings(broker, data_dir=tmp_path / "data", key_groups=tmp_path / "kg.yaml",
                                   access=tmp_path / "access.toml")
    yield settings, tokens
    cleanup(settings)


def _dashboard(settings: Settings, token: str) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{settings.web_port}/api/dashboard",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return orjson.loads(response.read())


def _load_roster(settings: Settings, bus: Bus, path: Path) -> None:
    """On Kafka through `epiflow groups load`; on memory:// the same rows straight onto the embedded broker."""
    if bus.is_memory:
        for row in roster_rows(path.read_text(encoding="utf-8"), path.name, submitted_at=datetime.now(UTC)):
            bus.send("rosters", row)
        return
    result = CliRunner().invoke(root, ["groups", "load", str(path), "--broker", settings.broker],
                                env={"EPIFLOW_TOPIC_PREFIX": settings.topic_prefix})
    assert result.exit_code == 0, result.output
    assert "produced 7 roster row(s)" in result.stdout


def _offline(tmp_path: Path, at: datetime) -> dict[str, Any]:
    result = CliRunner().invoke(root, [
        "groups", "status", "--groups", str(tmp_path / "kg.yaml"), "--roster", str(tmp_path / "roster.csv"),
        "--events", str(tmp_path / "results.jsonl"), "--at", at.isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def _reminders(bus: Bus, settings: Settings, person_key: str) -> list[dict[str, Any]]:
    records = bus.records(settings.topic(f"triage.{COMMUNITY}"))
    found = [orjson.loads(r.value) for r in records if r.value]
    return [m for m in found if m.get("kind") == "test_reminder" and m["person_key"] == person_key]


def test_dashboard_figures_equal_the_offline_command_and_a_reminder_comes_once(
    deployment: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, tokens = deployment
    at = datetime.now(UTC).replace(microsecond=0)
    clock = [at]
    (tmp_path / "roster.csv").write_text(roster_csv(COMMUNITY), encoding="utf-8")
    (tmp_path / "results.jsonl").write_bytes(b"\n".join(results(at)) + b"\n")

    async def scenario() -> None:
        bus = Bus(settings)
        async with running_worker(settings, web=True, clock=lambda: clock[0], ready_within=300) as worker:
            kg = worker.agents.key_groups
            assert await wait_until(lambda: kg.groups is not None, 30)
            _load_roster(settings, bus, tmp_path / "roster.csv")
            for value in results(at):
                bus.send("nat-results", value)
            bus.flush()
            counts = worker.agents.counts
            assert await wait_until(lambda: kg.counts["enrolled"] == 5 and counts["roster_dead_lettered"] == 2
                                    and counts["joined"] == 4, 60), (kg.counts, counts)
            shown = await asyncio.to_thread(_dashboard, settings, tokens["admin"])
            offline = _offline(tmp_path, at)
            assert shown["key_groups"]["groups"] == offline["groups"]
            cold = next(g for g in shown["key_groups"]["groups"] if g["id"] == "cold_chain")
            assert (cold["enrolled"], cold["on_time"]) == (3, 1)

            letters = [orjson.loads(r.value) for r in await asyncio.to_thread(bus.records, settings.topic("dead-letters"))]
            assert sorted((d["reason"], d["detail"].split(":")[0]) for d in letters) == [
                ("id_checksum", "roster.csv line 7"), ("unknown_group", "roster.csv line 8")]
            assert all(A not in d["payload"] for d in letters)

            person_a = next(key.decode() for key, e in kg.local_entries() if e.masked_id.endswith(A[-4:])
                            and e.group == "cold_chain")
            await asyncio.sleep(2 * 1.0)
            assert await asyncio.to_thread(_reminders, bus, settings, person_a) == []
            clock[0] = at + timedelta(hours=19, minutes=1)  # A's negative was sampled 5 h before `at`: 24 h are up
            assert await wait_until(lambda: bool(_reminders(bus, settings, person_a)), 30)
            await asyncio.sleep(3 * 1.0)  # three more looks at the members: still one reminder for this period
            reminders = await asyncio.to_thread(_reminders, bus, settings, person_a)
            assert [(m["group"], m["community"]) for m in reminders] == [("cold_chain", COMMUNITY)]
            later = await asyncio.to_thread(_dashboard, settings, tokens["admin"])
            assert later["key_groups"]["groups"] == _offline(tmp_path, clock[0])["groups"]
            bus.close()

    asyncio.run(scenario())
