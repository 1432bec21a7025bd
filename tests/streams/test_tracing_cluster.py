"""Contact tracing across two `epiflow worker` processes on the real broker: the partitions split the
people, so the index case and their contacts are held by different workers, and every worker searches
the places it holds for each trace request. Every expected contact's triage message names the rule and
the index case's masked ID."""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.identity import mask_id, person_key
from pipeline.settings import REPO_ROOT
from streams.memory import key_partition
from tests.pipeline.conftest import AT, scan, t
from tests.pipeline.test_contacts import INDEX, NEIGHBOUR, RIDER, RIDER2, _person, _trip
from tools.drills import READY_TIMEOUT_S, Deployment, triage_records

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KIND = {"declaration": "declarations", "checkpoint_scan": "checkpoint-scans", "nat_result": "nat-results"}
PARTITIONS = 4
#: More riders in the index case's vehicle, so the contacts fall in every partition, hence on both workers.
RIDERS = [_person(n) for n in range(20, 28)]


def _shifted(value: Any, delta) -> Any:  # noqa: ANN001
    """`value` with every ISO time moved by `delta` (the workers read the wall clock)."""
    if isinstance(value, dict):
        return {k: _shifted(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_shifted(v, delta) for v in value]
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        return (datetime.fromisoformat(value) + delta).isoformat()
    return value


def _docs() -> list[dict]:
    docs = _trip()
    docs.insert(0, scan("s-crowd", at=t("18 10:00"), people=[{**INDEX, "role": "driver"},
                                                             *({**p, "role": "passenger"} for p in RIDERS)]))
    return docs


@pytest.mark.timeout(600)
def test_two_workers_trace_contacts_held_by_either(kafka_bootstrap: str, tmp_path: Path) -> None:
    from kafka import KafkaProducer

    deployment = Deployment(bootstrap=kafka_bootstrap, prefix=f"trace{uuid.uuid4().hex[:10]}", folder=tmp_path,
                            manifest={}, partitions=PARTITIONS)
    shutil.copy(REPO_ROOT / "config" / "geo" / "risk_regions.geojson", tmp_path / "risk_regions.geojson")
    secret = deployment.settings.secret_bytes
    keys = {p["name"]: person_key(secret, p["id_number"]) for p in [INDEX, RIDER, NEIGHBOUR, RIDER2, *RIDERS]}
    assert {key_partition(keys[p["name"]].encode(), PARTITIONS) for p in RIDERS} == set(range(PARTITIONS))
    delta = datetime.now(UTC).replace(microsecond=0) - AT - (t("19 14:00") - t("19 09:00"))
    try:
        workers = [deployment.start_worker("a"), deployment.start_worker("b")]
        for w in workers:
            w.wait_ready(READY_TIMEOUT_S, min_regions=1)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for doc in _docs():
            producer.send(deployment.topic(KIND[doc["type"]]), orjson.dumps(_shifted(doc, delta)))
        producer.flush(30)
        producer.close()
        expected = {keys[p["name"]] for p in [RIDER, NEIGHBOUR, RIDER2, *RIDERS]}
        deadline = time.monotonic() + 240
        last: dict[str, dict] = {}
        while time.monotonic() < deadline:
            last = {}
            for record in triage_records(deployment):
                message = orjson.loads(record.value)
                last[message["person_key"]] = message
            if expected <= {k for k, m in last.items() if any("contact" in r["rule"] for r in m["reasons"])}:
                break
            time.sleep(2)
        per_worker = [w.status() for w in workers]
    finally:
        deployment.stop()
        deployment.cleanup()
    print("two workers tracing:", [(s["counts"]["joined"], s["tracing"]) for s in per_worker])
    assert all(s["counts"]["joined"] > 0 for s in per_worker), "one worker got no partitions"
    assert all(s["tracing"]["requests_read"] >= 2 for s in per_worker), "each worker reads every trace request"
    assert all(s["tracing"]["contact_records_sent"] > 0 for s in per_worker), "each worker found contacts it holds"
    index_masked = mask_id(INDEX["id_number"])
    for name, rule, action in [(RIDER["name"], "close-contact-vehicle", "centralized_isolation"),
                               (NEIGHBOUR["name"], "close-contact-place", "centralized_isolation"),
                               (RIDER2["name"], "secondary-contact-vehicle", "home_isolation"),
                               *((p["name"], "close-contact-vehicle", "centralized_isolation") for p in RIDERS)]:
        message = last.get(keys[name])
        assert message is not None, f"no triage message for {name}"
        assert message["action"] == action, message
        reason = next(r for r in message["reasons"] if r["rule"] == rule)
        assert index_masked in reason["text"], reason
