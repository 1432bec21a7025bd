"""Key-group compliance cost, offline: roster rows validated per second, NAT inputs folded per second, and the
time of one compliance count over every member (what `epiflow groups status` and the dashboard do). Prints JSON.

``python -m tools.bench_key_groups [--members N] [--nats-per-member K]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson

from pipeline.compliance import group_status, last_negatives_of_inputs
from pipeline.identity import check_character
from pipeline.key_groups import load_key_groups
from pipeline.rosters import roster_entry, roster_rows
from pipeline.settings import REPO_ROOT

SECRET = b"bench-key-groups-secret-0123456789"


def _id(n: int) -> str:
    first17 = f"330106{1960 + n % 40}0{1 + n % 9}1{n % 9}{n % 1000:03d}"[:14] + f"{n // 1000 % 1000:03d}"
    return first17 + check_character(first17)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--nats-per-member", type=int, default=3)
    args = parser.parse_args(argv)
    rng = random.Random(19)
    groups = load_key_groups(REPO_ROOT / "config" / "key_groups.yaml")
    at = datetime.now(UTC).replace(microsecond=0)
    people = [_id(n) for n in range(args.members)]
    lines = ["group,id_number,name,phone,community"] + [
        f"{rng.choice(groups.ids)},{who},某人,13900139000,330106001" for who in people]
    rows = roster_rows("\n".join(lines) + "\n", "bench.csv", submitted_at=at)
    started = time.perf_counter()
    entries = [roster_entry(row, secret=SECRET, groups=groups) for row in rows]
    rows_s = time.perf_counter() - started
    nats = [orjson.dumps({
        "type": "nat_result", "event_id": f"n-{i}-{k}", "person": {"id_number": who, "name": "某人", "phone": "13900139000"},
        "sampled_at": (at - timedelta(hours=rng.uniform(3, 200))).isoformat(),
        "reported_at": (at - timedelta(hours=2)).isoformat(), "result": "negative", "lab_id": "lab-1",
    }) for i, who in enumerate(people) for k in range(args.nats_per_member)]
    started = time.perf_counter()
    last, refused = last_negatives_of_inputs(nats, secret=SECRET, at=at, lookback=timedelta(days=14),
                                             horizon=timedelta(days=16))
    fold_s = time.perf_counter() - started
    started = time.perf_counter()
    statuses = group_status(groups, entries, last, at)
    count_s = time.perf_counter() - started
    json.dump({
        "members": len(entries), "nat_inputs": len(nats), "nat_refused": refused,
        "roster_rows_per_s": round(len(rows) / rows_s), "nat_inputs_per_s": round(len(nats) / fold_s),
        "status_seconds": round(count_s, 4), "on_time": sum(s.on_time for s in statuses),
    }, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
