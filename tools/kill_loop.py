"""The kill-and-restart test, N times in a row: ``python -m tools.kill_loop [--runs 20] [--store memory://]``.

Each run is what `tests/streams/test_cluster.py::test_worker_killed_mid_stream_and_restarted_misses_nothing`
runs (the quick `kill-worker` drill: a worker SIGKILLed mid-stream and restarted) with the same checks.
One JSON line per run, then the tally as one JSON object: runs, passed, expected triage messages missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["check", "main"]


def check(result: dict[str, Any]) -> list[str]:
    """What the test asserts of one drill result; the problems found (none: the run passed)."""
    figures = result.get("figures", {})
    problems = [] if result.get("ok") else [str(result.get("error"))]
    if figures:
        if not figures.get("killed_after_inputs", 0) < figures.get("of_inputs", 0):
            problems.append("the worker was not killed mid-stream")
        if figures.get("missing") or figures.get("unexpected"):
            problems.append(f"missing={figures.get('missing')} unexpected={figures.get('unexpected')}")
        if figures.get("unique_messages", 0) + figures.get("duplicates", 0) != figures.get("messages"):
            problems.append("unique messages + duplicates != messages")
    elif not problems:
        problems.append("the drill reported no figures")
    return problems


def main(argv: list[str] | None = None) -> int:
    from tools.drills.drills import DrillContext, run_drill
    from tools.kafka_broker import shared_broker

    parser = argparse.ArgumentParser(prog="python -m tools.kill_loop", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--store", default="memory://", help="memory://, rocksdb://, or 'both' (alternating)")
    parser.add_argument("--keep-going", action="store_true", help="run all N even after a failure")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs is {args.runs}, expected at least 1")
    stores = ["memory://", "rocksdb://"] if args.store == "both" else [args.store]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    tally: dict[str, Any] = {"runs": 0, "passed": 0, "missing": 0, "unexpected": 0, "failures": []}
    with shared_broker() as bootstrap:
        for n in range(args.runs):
            store = stores[n % len(stores)]
            workdir = Path(tempfile.mkdtemp(prefix="epiflow-kill-loop-"))
            try:
                result = run_drill("kill-worker", DrillContext(bootstrap=bootstrap, workdir=workdir, quick=True, store=store))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            figures = result.get("figures", {})
            problems = check(result)
            tally["runs"] += 1
            tally["passed"] += not problems
            tally["missing"] += int(figures.get("missing") or 0)
            tally["unexpected"] += int(figures.get("unexpected") or 0)
            if problems:
                tally["failures"].append({"run": n + 1, "store": store, "problems": problems})
            print(json.dumps({"run": n + 1, "store": store, "passed": not problems, "missing": figures.get("missing"),
                              "seconds": result.get("seconds"), "problems": problems}), flush=True)
            if problems and not args.keep_going:
                break
    print(json.dumps(tally))
    return 0 if tally["passed"] == tally["runs"] == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
