"""Session-wide fixtures: the real Kafka broker that tests marked ``kafka`` run against.

``EPIFLOW_TEST_BROKER=host:port`` points the tests at a broker someone else runs (which then
must answer); otherwise the single-node broker from ``tools.kafka_broker`` is used if running,
or started and stopped again when the last session holding it ends. If it cannot start, Kafka
tests skip, unless ``EPIFLOW_REQUIRE_KAFKA=1`` makes that a failure. Tests that stop, kill or
restart a broker use ``private_kafka_broker`` so they never disturb the shared one; tests of
authentication and ACLs use ``secure_kafka``, a secured broker of their own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from tools.ports import free_port

_HOW_TO_ENABLE = (
    "to run them install Java 17+ and Maven (the broker is fetched from Maven Central) or set "
    "EPIFLOW_TEST_BROKER=host:port; set EPIFLOW_REQUIRE_KAFKA=1 to make a missing broker fail the run"
)


def _require_kafka() -> bool:
    return os.environ.get("EPIFLOW_REQUIRE_KAFKA", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str, required: bool = False) -> NoReturn:
    """Fail the run when Kafka is required, otherwise skip the test that needed it."""
    if required or _require_kafka():
        pytest.fail(f"Kafka broker required but unavailable: {reason}", pytrace=False)
    pytest.skip(f"Kafka tests skipped: {reason}; {_HOW_TO_ENABLE}")


def _external_broker(bootstrap: str) -> str:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=10_000)
        try:
            consumer.topics()
        finally:
            consumer.close()
    except (KafkaError, OSError) as error:
        _unavailable(f"EPIFLOW_TEST_BROKER={bootstrap!r} does not answer: {error}", required=True)
    return bootstrap


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address ``host:port`` of a healthy Kafka broker for this test session."""
    external = os.environ.get("EPIFLOW_TEST_BROKER", "").strip()
    if external:
        yield _external_broker(external)
        return
    from tools.kafka_broker import BrokerError, shared_broker

    with contextlib.ExitStack() as stack:
        try:
            bootstrap = stack.enter_context(shared_broker())
        except BrokerError as error:
            _unavailable(str(error))
        yield bootstrap


@pytest.fixture
def kafka_topic_factory(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics for one test and delete them afterwards.

    ``make(prefix, partitions=1, configs=None)`` returns the topic name, which ends in a
    random suffix so tests running at the same time never share a topic.
    """
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="epiflow-tests")
    created: list[str] = []

    def make(prefix: str = "test", partitions: int = 1, configs: dict[str, str] | None = None) -> str:
        if partitions < 1:
            raise ValueError(f"partitions={partitions!r} must be at least 1")
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        spec = {"num_partitions": partitions, "replication_factor": 1, "configs": dict(configs or {})}
        admin.create_topics({name: spec}, timeout_ms=10_000, wait_for_metadata=True)
        created.append(name)
        return name

    try:
        yield make
    finally:
        if created:
            admin.delete_topics(created, timeout_ms=10_000, raise_errors=False)
        admin.close()


@pytest.fixture
def private_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running broker of this test's own (own ports, data and log) that it may stop, kill or restart.

    Yields its ``tools.kafka_broker.BrokerSettings``; pass it as ``settings=`` to ``stop_broker``,
    ``ensure_broker`` and ``restart_broker``. The jars are shared with the session broker.
    """
    from tools.kafka_broker import BrokerError, BrokerSettings, ensure_broker, fetch_jars, stop_broker

    try:
        lib = fetch_jars()
    except BrokerError as error:
        _unavailable(str(error))
    cache = tmp_path_factory.mktemp("kafka-private")
    (cache / "lib").symlink_to(lib, target_is_directory=True)
    port = free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    settings = BrokerSettings(cache_dir=cache, port=port, controller_port=controller_port)
    try:
        ensure_broker(settings=settings)
    except BrokerError as error:
        stop_broker(settings=settings)
        _unavailable(str(error))
    try:
        yield settings
    finally:
        stop_broker(settings=settings)


@dataclass(frozen=True)
class SecureKafka:
    """The secured test broker: its bootstrap, CA certificate and the super-user's ``EPIFLOW_*`` settings."""

    bootstrap: str
    ca_file: Path
    admin_env: dict[str, str] = field(repr=False)

    def env_as(self, user: str, password: str) -> dict[str, str]:
        """The same settings for another principal."""
        return {**self.admin_env, "EPIFLOW_KAFKA_SASL_USERNAME": user, "EPIFLOW_KAFKA_SASL_PASSWORD": password}


def _broker_cli(env: dict[str, str], *args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.kafka_broker", *args], cwd=Path(__file__).resolve().parent.parent,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A secured broker of this session's own (SASL_SSL, SCRAM-SHA-512, ACLs), started and stopped with the
    same `python -m tools.kafka_broker up --secure` / `down --secure` the README gives; a broker that cannot
    start skips its tests, or fails them under ``EPIFLOW_REQUIRE_KAFKA=1``."""
    port = free_port()
    controller_port = free_port()
    while controller_port == port:
        controller_port = free_port()
    env = {"EPIFLOW_KAFKA_SECURE_CACHE": str(tmp_path_factory.mktemp("kafka-secure")),
           "EPIFLOW_KAFKA_SECURE_PORT": str(port), "EPIFLOW_KAFKA_SECURE_CONTROLLER_PORT": str(controller_port)}
    started = _broker_cli(env, "up", "--secure")
    try:
        if started.returncode != 0:
            _unavailable(f"`python -m tools.kafka_broker up --secure` exited {started.returncode}: {started.stderr.strip()[-2000:]}")
        admin_env = dict(line.split("=", 1) for line in
                         (Path(env["EPIFLOW_KAFKA_SECURE_CACHE"]) / "admin.env").read_text().splitlines() if line)
        yield SecureKafka(bootstrap=f"127.0.0.1:{port}", ca_file=Path(admin_env["EPIFLOW_KAFKA_SSL_CAFILE"]),
                          admin_env=admin_env)
    finally:
        _broker_cli(env, "down", "--secure", timeout=60)
