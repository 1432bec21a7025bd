"""Several `epiflow worker` processes in one consumer group on the real broker: (d) two workers split the
partitions and together produce what one worker does; (e) a worker killed with SIGKILL mid-stream and
restarted loses no expected triage message, on the memory and on the RocksDB table store (the restarted
worker keeps its data dir: RocksDB recovers from its own files plus the changelog written since).

Both compare every person's last triage message with `pipeline.evaluate` on the same input, as
`test_pipeline_e2e.py` does; the workers read the wall clock, so offline runs at the start and at the
end of processing, and a verdict that changes in between may be either (the count is printed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tools.drills import (
    READY_TIMEOUT_S,
    DrillContext,
    Pusher,
    finish,
    input_records,
    new_deployment,
    run_drill,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.mark.timeout(480)
def test_two_workers_split_partitions_and_match_offline(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = new_deployment(kafka_bootstrap, tmp_path, people=4000, partitions=4)
    try:
        first, second = deployment.start_worker("a"), deployment.start_worker("b")
        first.wait_ready(READY_TIMEOUT_S, min_regions=1)
        second.wait_ready(READY_TIMEOUT_S, min_regions=1)
        records = input_records(deployment.folder)
        pusher = Pusher(deployment, records).start()
        figures = finish(deployment, pusher, datetime.now(UTC), 300)
        per_worker = [first.counts(), second.counts()]
    finally:
        deployment.stop()
        deployment.cleanup()
    print("two workers:", figures, per_worker)

    assert all(c["inputs"] > 0 and c["joined"] > 0 for c in per_worker), f"one worker got no partitions: {per_worker}"
    assert sum(c["inputs"] for c in per_worker) == len(records)
    for counts in per_worker:
        assert counts["inputs"] == counts["forwarded"] + counts["dead_lettered"], counts
    acct = figures["accounting"]
    assert acct["dead_lettered"] == acct["expected_dead_lettered"] and acct["dead_letters_without_reason"] == 0
    assert acct["forwarded_events"] == acct["expected_forwarded_events"]
    assert figures["expected"] > 0, "the simulation should flag somebody"
    assert (figures["missing"], figures["unexpected"]) == (0, 0), figures["examples"]
    assert figures["delivered"] == figures["expected"]


@pytest.mark.timeout(400)
def test_worker_killed_mid_stream_and_restarted_misses_nothing(store: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    result = run_drill("kill-worker", DrillContext(bootstrap=kafka_bootstrap, workdir=tmp_path, quick=True, store=store))
    figures = result["figures"]
    print("kill -9 and restart:", result)

    assert result["ok"], result.get("error")
    assert figures["killed_after_inputs"] < figures["of_inputs"]
    assert figures["missing"] == 0 and figures["unexpected"] == 0
    assert figures["unique_messages"] + figures["duplicates"] == figures["messages"]
