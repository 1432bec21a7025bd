"""epiflow on a secured broker (SASL_SSL, SCRAM-SHA-512, ACLs with nothing allowed by default).

Every step is the command the README's "Securing a deployment" gives: `kafka grant` per role,
`worker`, `rules publish`, `regions publish`, `produce` and `queue tail`, each as its own principal.
A worker with its grant processes simulated inputs end to end; a community reads its own triage
topic and nothing else; a checkpoint writes scans and nothing else; a client that does not
authenticate gets nowhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError

from pipeline.settings import load_settings
from streams.kafka_options import kafka_client_options
from tests.conftest import SecureKafka
from tools.drills import (
    READY_TIMEOUT_S,
    STREAM_FILES,
    compare,
    new_deployment,
    offline,
    triage_records,
    wait_drained,
)
from tools.ports import free_port
from tools.workers import start_worker

pytestmark = [pytest.mark.kafka]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _epiflow(env: dict[str, str], *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=REPO_ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, check=False)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr.strip()[-1500:]}"
    return result.stdout


def _grant(secure: SecureKafka, env: dict[str, str], *flags: str) -> tuple[str, str]:
    """`epiflow kafka grant FLAGS` as the super-user; returns the principal's user name and its one-time password."""
    out = _ok(_epiflow({**secure.admin_env, **env}, "kafka", "grant", *flags))
    user = re.search(r"^principal User:(\S+)", out, re.M)
    password = re.search(r"^password \(shown once, store it now\): (\S+)$", out, re.M)
    assert user and password, out
    return user.group(1), password.group(1)


def _options(env: dict[str, str]) -> dict[str, Any]:
    """kafka-python options for the principal in `env`, from the one options builder."""
    settings = load_settings(env={k: v for k, v in env.items() if k.startswith("EPIFLOW_")}, insecure_demo_secret=True)
    return kafka_client_options(settings, "kafka-python")


def _read_assigned(options: dict[str, Any], topic: str, group: str | None = None) -> list[bytes]:
    """Every record of partition 0 of `topic`, read by assignment (a refused topic raises at once)."""
    consumer = KafkaConsumer(**options, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
            if values:
                break
        return values
    finally:
        consumer.close()


def test_unauthenticated_clients_are_refused(secure_kafka: SecureKafka) -> None:
    log_file = Path(secure_kafka.admin_env["EPIFLOW_KAFKA_SSL_CAFILE"]).parents[1] / "logs" / "server.log"
    plaintext = {"bootstrap_servers": secure_kafka.bootstrap}
    tls_only = {**plaintext, "security_protocol": "SSL", "ssl_cafile": str(secure_kafka.ca_file)}
    wrong_password = _options(secure_kafka.env_as("admin", "not-the-password"))
    for options in (plaintext, tls_only, wrong_password):
        with pytest.raises(KafkaError, match="Unable to bootstrap|NoBrokersAvailable"):
            KafkaConsumer(**options, bootstrap_timeout_ms=4000, request_timeout_ms=4000).topics()
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in log_file.read_text()

    refused = _epiflow(secure_kafka.env_as("nobody", "guessed"), "produce", str(REPO_ROOT / "pyproject.toml"),
                       "--topic", "declarations", timeout=120)
    assert refused.returncode != 0


def test_community_reads_its_own_queue_and_nothing_else(secure_kafka: SecureKafka) -> None:
    admin_options = _options(secure_kafka.admin_env)
    prefix = f"sec{uuid.uuid4().hex[:8]}"
    env = {"EPIFLOW_TOPIC_PREFIX": prefix}
    own, other = "330106001", "330106002"
    topics = {name: f"{prefix}.{name}" for name in (f"triage.{own}", f"triage.{other}", "person-events")}
    admin = KafkaAdminClient(**admin_options)
    try:
        admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()])
    finally:
        admin.close()
    producer = KafkaProducer(**admin_options, acks="all")
    for name, topic in topics.items():
        producer.send(topic, key=b"k", value=b'{"kind": "triage", "action": "home_quarantine", "name": "%s"}' % name.encode())
    producer.flush(30)
    producer.close()

    operator, operator_password = _grant(secure_kafka, env, "--admin", "ops")
    assert operator == "admin-ops"
    user, password = _grant(SecureKafka(secure_kafka.bootstrap, secure_kafka.ca_file,
                                        secure_kafka.env_as(operator, operator_password)), env, "--community", own)
    assert user == f"community-{own}"
    listed = _ok(_epiflow({**secure_kafka.admin_env, **env}, "kafka", "grants"))
    granted = listed.split(f"User:{user}\n", 1)[1].split("User:", 1)[0].strip().splitlines()
    assert sorted(line.split() for line in granted) == [["allow", "READ", "group", f"community-{own}-*"],
                                                       ["allow", "READ", "topic", f"{prefix}.triage.{own}"]]

    community_env = {**secure_kafka.env_as(user, password), **env}
    tail = _ok(_epiflow(community_env, "queue", "tail", own, "--from-beginning", "--limit", "1", timeout=60))
    assert "home_quarantine" in tail and f"triage.{own}" in tail

    options = _options(community_env)
    group = f"community-{own}-desk"
    assert _read_assigned(options, topics[f"triage.{own}"], group=group)
    for forbidden in (topics[f"triage.{other}"], topics["person-events"]):
        with pytest.raises(TopicAuthorizationFailedError):
            _read_assigned(options, forbidden, group=group)
    with pytest.raises(GroupAuthorizationFailedError):
        consumer = KafkaConsumer(topics[f"triage.{own}"], **options, group_id=f"community-{other}-desk",
                                 auto_offset_reset="earliest", consumer_timeout_ms=5000)
        list(consumer)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_worker_with_its_grant_processes_simulated_inputs_end_to_end(
    secure_kafka: SecureKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"secured-deployment-{uuid.uuid4().hex}"
    monkeypatch.setenv("EPIFLOW_SECRET", secret)  # the offline evaluation keys people as the worker does
    for key, value in secure_kafka.admin_env.items():  # the drill helpers read the results as the super-user
        if key.startswith("EPIFLOW_KAFKA_"):
            monkeypatch.setenv(key, value)
    deployment = new_deployment(secure_kafka.bootstrap, tmp_path, people=1500, partitions=2)
    env = {**deployment.env, **{k: v for k, v in secure_kafka.admin_env.items() if k != "EPIFLOW_BROKER"}}
    worker_user, worker_password = _grant(secure_kafka, env, "--worker", "w1")
    checkpoint_user, checkpoint_password = _grant(secure_kafka, env, "--checkpoint", "cp-01")

    worker_env = {**env, "EPIFLOW_KAFKA_SASL_USERNAME": worker_user, "EPIFLOW_KAFKA_SASL_PASSWORD": worker_password,
                  "EPIFLOW_SECRET": secret, "EPIFLOW_INSECURE_DEMO_SECRET": "false",
                  "EPIFLOW_DATA_DIR": str(tmp_path / "worker-data")}
    worker = start_worker(worker_env, free_port(), log_dir=tmp_path / "logs", name="secured")
    deployment.workers.append(worker)
    try:
        worker.wait_ready(READY_TIMEOUT_S, min_regions=1)
        published = _ok(_epiflow(env, "rules", "publish"))
        assert "published rules version" in published
        assert "region record(s)" in _ok(_epiflow(env, "regions", "publish", str(deployment.folder / "risk_regions.geojson")))

        t0 = datetime.now(UTC)
        checkpoint_env = {**env, "EPIFLOW_KAFKA_SASL_USERNAME": checkpoint_user, "EPIFLOW_KAFKA_SASL_PASSWORD": checkpoint_password}
        sent = 0
        for kind, name in STREAM_FILES.items():
            out = _ok(_epiflow(checkpoint_env if kind == "checkpoint-scans" else env,
                               "produce", str(deployment.folder / name), "--topic", kind))
            sent += int(re.search(r"produced (\d+) record", out).group(1))
        refused = _epiflow(checkpoint_env, "produce", str(deployment.folder / "declarations.jsonl"),
                           "--topic", "declarations", timeout=120)
        assert refused.returncode != 0 and "TopicAuthorizationFailed" in refused.stderr + refused.stdout

        wait_drained(deployment, sent, 240)
        figures = compare(triage_records(deployment), offline(deployment, t0), offline(deployment, datetime.now(UTC)))
        counts = worker.counts()
    finally:
        deployment.stop()
    assert counts["inputs"] == sent == deployment.manifest["events"], counts
    assert counts["inputs"] == counts["forwarded"] + counts["dead_lettered"], counts
    assert figures["expected"] > 0, "the simulation should flag somebody"
    assert (figures["missing"], figures["unexpected"]) == (0, 0), figures["examples"]


