"""The person and case tables on both stores: written in batches with the event's partition, and back after a
restart — from the worker's own RocksDB files plus the changelog, or from the changelog alone (a new data dir)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings
from streams.memory import get_broker, key_partition
from streams.worker import Worker
from tests.streams.harness import cleanup, deployment_settings, running_worker, wait_until
from tests.streams.test_control_and_cases import _community, _declaration, _id

PEOPLE = 12


def _tables(worker: Worker) -> dict[str, dict[bytes, bytes]]:
    return {name: dict(table.items()) for name, table in (("persons", worker.agents.persons), ("cases", worker.agents.cases))}


@pytest.mark.parametrize("data_dir", ["kept", "new"])
def test_tables_come_back_after_a_restart(store: str, data_dir: str, tmp_path: Path, run_async: Any) -> None:
    settings = deployment_settings("memory", store=store, data_dir=tmp_path / "first")
    restarted = settings.model_copy(update={"data_dir": tmp_path / ("first" if data_dir == "kept" else "second")})
    _, _, lon, lat = _community(settings)
    now = datetime.now(UTC)
    broker = get_broker(settings.broker)

    async def first_run() -> tuple[dict[str, dict[bytes, bytes]], dict[bytes, int]]:
        async with running_worker(settings) as worker:
            for n in range(PEOPLE):
                broker.append(settings.topic("declarations"), None, _declaration(
                    # stays 1 km apart: people who stayed together would be each other's contacts
                    f"d-{n}", _id(60 + n), now, (lon, lat), (lon + 0.01 * n, lat), now - timedelta(days=1),
                    nat="positive" if n % 3 == 0 else "negative"))
            counts = worker.agents.counts
            assert await wait_until(lambda: counts["joined"] == PEOPLE, 30), counts
            assert await wait_until(lambda: len(worker.agents.case_agent.local_cases()) == PEOPLE // 3, 30)
            tables = _tables(worker)
            where = {key: worker.agents.persons.partition_for_key(key) for key in tables["persons"]}
            return tables, where

    async def second_run() -> dict[str, dict[bytes, bytes]]:
        async with running_worker(restarted) as worker:
            assert await wait_until(lambda: len(worker.agents.persons) == PEOPLE, 30)
            assert await wait_until(lambda: len(worker.agents.cases) == PEOPLE // 3, 30)
            return _tables(worker)

    try:
        before, where = run_async(first_run())
        after = run_async(second_run())
        changelog = broker.all_records(f"{settings.topic_prefix}-worker-persons-changelog")
    finally:
        cleanup(settings)
    assert len(before["persons"]) == PEOPLE and len(before["cases"]) == PEOPLE // 3
    assert after == before
    assert {r.key: r.partition for r in changelog} == where, "each state is in its key's partition of the changelog"
    assert all(where[k] == key_partition(k, settings.partitions) for k in where)


def test_rocksdb_data_lands_under_the_workers_data_dir(tmp_path: Path, run_async: Any) -> None:
    settings: Settings = deployment_settings("memory", store="rocksdb://", data_dir=tmp_path / "data")

    _, _, lon, lat = _community(settings)
    now = datetime.now(UTC)

    async def run() -> tuple[Path, set[int], set[str]]:
        async with running_worker(settings) as worker:
            for n in range(PEOPLE):
                get_broker(settings.broker).append(settings.topic("declarations"), None, _declaration(
                    f"d-{n}", _id(80 + n), now, (lon, lat), (lon, lat), now - timedelta(days=1)))
            assert await wait_until(lambda: worker.agents.counts["joined"] == PEOPLE, 30)
            tabledir = Path(worker.app.conf.tabledir)
            partitions = {worker.agents.persons.partition_for_key(k) for k in worker.agents.persons}
            return tabledir, partitions, {p.name for p in tabledir.glob("*.db")}

    try:
        tabledir, partitions, files = run_async(run())
    finally:
        cleanup(settings)
    assert tabledir.is_relative_to(tmp_path / "data" / f"{settings.topic_prefix}-worker")
    assert partitions and {f"persons-{n}.db" for n in partitions} <= files
