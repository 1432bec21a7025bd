"""`epiflow produce`, `rules publish` and `regions publish` create no topic: a missing one is refused, nothing sent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from pipeline.settings import REPO_ROOT
from streams.cli import root

pytestmark = pytest.mark.kafka

EXAMPLE = REPO_ROOT / "config" / "examples" / "declaration__valid.json"
REGIONS = REPO_ROOT / "config" / "geo" / "risk_regions.geojson"


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A topic prefix nobody else uses; whatever exists under it afterwards is deleted."""
    from kafka import KafkaAdminClient

    name = f"pub{uuid.uuid4().hex[:10]}"
    yield name
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="epiflow-tests-cleanup")
    try:
        ours = [t for t in admin.list_topics() if t.startswith(name + ".")]
        if ours:
            admin.delete_topics(ours, timeout_ms=10_000, raise_errors=False)
    finally:
        admin.close()


def _topics(bootstrap: str, prefix: str) -> dict[str, int]:
    """Topic → partition count of every topic under `prefix`."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="epiflow-tests")
    try:
        names = [t for t in admin.list_topics() if t.startswith(prefix + ".")]
        return {d["name"]: len(d["partitions"]) for d in admin.describe_topics(names)} if names else {}
    finally:
        admin.close()


def _run(bootstrap: str, prefix: str, *args: str) -> tuple[int, str]:
    env = {"EPIFLOW_TOPIC_PREFIX": prefix, "EPIFLOW_INSECURE_DEMO_SECRET": "true"}
    result = CliRunner().invoke(root, [*args, "--broker", f"kafka://{bootstrap}"], env=env)
    return result.exit_code, result.output


def test_sends_to_missing_topics_are_refused_and_create_none(kafka_bootstrap: str, prefix: str) -> None:
    assert REGIONS.is_file() and EXAMPLE.is_file()
    for args, topic in ((("produce", str(EXAMPLE), "--topic", "declarations"), "declarations"),
                        (("rules", "publish"), "rules"),
                        (("regions", "publish", str(REGIONS)), "risk-regions")):
        code, output = _run(kafka_bootstrap, prefix, *args)
        assert code == 1, output
        assert f"topic '{prefix}.{topic}' does not exist" in output and "nothing was sent" in output
    assert _topics(kafka_bootstrap, prefix) == {}


def test_sends_to_declared_topics_keep_their_partitions(kafka_bootstrap: str, prefix: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="epiflow-tests")
    try:
        admin.create_topics([NewTopic(f"{prefix}.declarations", 4, 1), NewTopic(f"{prefix}.rules", 1, 1)],
                            timeout_ms=10_000, wait_for_metadata=True)
    finally:
        admin.close()
    code, output = _run(kafka_bootstrap, prefix, "produce", str(EXAMPLE), "--topic", "declarations")
    assert code == 0 and "produced 1 record(s)" in output, output
    code, output = _run(kafka_bootstrap, prefix, "rules", "publish")
    assert code == 0 and "published rules version" in output, output
    assert _topics(kafka_bootstrap, prefix) == {f"{prefix}.declarations": 4, f"{prefix}.rules": 1}
