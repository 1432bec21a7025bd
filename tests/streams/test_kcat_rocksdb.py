"""Held-out style check on the RocksDB store: inputs produced by an independent Kafka client (kcat, librdkafka)
land on the right community topics with the actions `epiflow evaluate` decides offline."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tools.drills import (
    READY_TIMEOUT_S,
    STREAM_FILES,
    compare,
    new_deployment,
    offline,
    triage_records,
    wait_drained,
)

pytestmark = pytest.mark.kafka


def _kcat() -> str:
    """kcat's path; a missing kcat fails the test (it is in the CI's package list), it does not skip it."""
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed (Debian package `kcat`; .ci/run installs it)", pytrace=False)
    return path


def _produce(kcat: str, bootstrap: str, topic: str, file: Path) -> int:
    """Produce every line of `file` as one record with kcat; returns the number of lines."""
    lines = sum(1 for line in file.read_bytes().splitlines() if line)
    subprocess.run([kcat, "-P", "-b", bootstrap, "-t", topic, "-l", str(file)], check=True, timeout=120,
                   capture_output=True)
    return lines


@pytest.mark.timeout(600)
def test_kcat_inputs_on_rocksdb_reach_the_right_community_topics(kafka_bootstrap: str, tmp_path: Path) -> None:
    kcat = _kcat()
    deployment = new_deployment(kafka_bootstrap, tmp_path, people=1500, partitions=4, store="rocksdb://")
    worker = deployment.start_worker("rocksdb")
    try:
        status = worker.wait_ready(READY_TIMEOUT_S, min_regions=1)
        t0 = datetime.now(UTC)
        sent = sum(_produce(kcat, kafka_bootstrap, deployment.topic(kind), deployment.folder / name)
                   for kind, name in STREAM_FILES.items())
        wait_drained(deployment, sent, 300)
        figures = compare(triage_records(deployment), offline(deployment, t0), offline(deployment, datetime.now(UTC)))
        counts = worker.counts()
    finally:
        deployment.stop()
        deployment.cleanup()
    assert status["counts"]["inputs"] == 0, status
    assert sent == deployment.manifest["events"] == counts["inputs"], counts
    assert counts["inputs"] == counts["forwarded"] + counts["dead_lettered"], counts
    assert counts["person_events"] == counts["joined"] + counts["join_dead_lettered"], counts
    assert counts["join_dead_lettered"] == 0, counts
    assert any(deployment.folder.glob("data-*/**/*persons*.db")), "the person table lives in RocksDB databases"
    assert figures["expected"] > 0, "the simulation should flag somebody"
    assert (figures["missing"], figures["unexpected"]) == (0, 0), figures["examples"]
