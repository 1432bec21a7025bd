"""Fixtures for stream tests: one parametrised broker URL (memory:// and Kafka held to one behaviour) and one
in-memory worker with its web server per test module."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from streams.memory import drop_broker
from tests.streams.api_helpers import RunningWorker, start_worker


@pytest.fixture
def app_id(request: pytest.FixtureRequest) -> str:
    """An app id (and topic-name prefix) no other test or run uses."""
    return f"t-{request.node.originalname.replace('_', '-')[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker_url(request: pytest.FixtureRequest, app_id: str) -> Iterator[str]:
    """``memory://<own broker>`` or ``kafka://<test broker>``; the test's topics are removed afterwards."""
    if request.param == "memory":
        url = f"memory://{app_id}"
        yield url
        drop_broker(url)
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    yield f"kafka://{bootstrap}"
    _delete_kafka_topics(bootstrap, app_id)


def _delete_kafka_topics(bootstrap: str, prefix: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="epiflow-tests-cleanup")
    try:
        ours = [name for name in admin.list_topics() if name.startswith(prefix)]
        if ours:
            admin.delete_topics(ours, timeout_ms=10_000, raise_errors=False)
    finally:
        admin.close()


@pytest.fixture(params=["memory://", "rocksdb://"], ids=["memory-store", "rocksdb-store"])
def store(request: pytest.FixtureRequest) -> str:
    """The table store a worker runs on: Faust's in-memory store or its RocksDB store (rocksdict)."""
    return request.param


@pytest.fixture
def run_async() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on a fresh event loop (each Faust app gets its own loop)."""

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run(coro)

    return run


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    """One memory:// worker serving HTTP for the test module, with a token of every role in `api.tokens`."""
    running = start_worker(tmp_path_factory.mktemp("worker") / "access.toml")
    try:
        yield running
    finally:
        running.stop()
