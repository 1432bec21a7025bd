"""The failure drills of `tools/drills.py` that fit the test suite's time, on the real broker (`--quick` sizes).

kill-worker runs in `test_cluster.py` (e); broker-restart needs a private broker of its own and
runs with `make drills`. Each runs on the memory and on the RocksDB table store. Each drill asserts its own figures: 0 expected triage messages missing
after dropping repeats by `message_id`, accounting inputs = forwarded + dead-lettered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.drills import DrillContext, run_drill

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

IN_SUITE = ("poison", "rules-publish", "region-relist", "slow-consumer")


@pytest.mark.timeout(480)
@pytest.mark.parametrize("name", IN_SUITE)
def test_drill(name: str, store: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    result = run_drill(name, DrillContext(bootstrap=kafka_bootstrap, workdir=tmp_path, quick=True, store=store))
    print(result)

    assert result["ok"], result.get("error")
    figures = result["figures"]
    assert figures["missing"] == 0 and figures["expected"] > 0
    assert figures["accounting"]["inputs"] == figures["accounting"]["sent"]
