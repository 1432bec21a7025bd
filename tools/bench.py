"""`make bench`: run every benchmark in one session, collect their JSON into `bench/results.json`, update the README.

``python -m tools.bench [--quick] [--only SECTION ...] [--out PATH]``. Each section runs one or more
benchmark commands as subprocesses on the test Kafka broker (held for the whole run), and keeps each
command's JSON with the exact command line, so every figure in the README can name what made it.
With ``--only`` the other sections of an existing results file are kept as they were. Writing the
default results file also regenerates the README's performance section (`tools/readme_perf.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["SECTIONS", "Section", "main", "run_section"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results.json"
LOG_DIR = REPO / "test-output" / "bench"
SHARED_NOTE = (
    "2-core machine shared with other engineers running tests and drills at the same time; "
    "figures carry that noise (see machine.load_before/load_after)."
)


@dataclass(frozen=True)
class Section:
    """A named group of benchmark commands; `commands(quick)` gives each command's arguments after `python`."""

    name: str
    title: str
    commands: Callable[[bool], list[list[str]]]
    timeout_s: float = 3600.0


def _worker_people(quick: bool) -> str:
    return "3000" if quick else "100000"


def _state_runs(people: str) -> list[list[str]]:
    """One worker drained of `people` people on each store, then restarted to time its table recovery."""
    return [["-m", "tools.bench_worker", "run", "--workers", "1", "--people", people, "--fractions", "", "--store", store,
             "--restart"] for store in ("memory://", "rocksdb://")]


SECTIONS: tuple[Section, ...] = (
    Section("raw_ceiling", "raw aiokafka consume → produce, no processing",
            lambda q: [["-m", "tools.raw_ceiling", "--records", "50000" if q else "300000"]]),
    Section("worker_1", "one worker: sustained person-events/s, latency at 25/50/100 %, memory",
            lambda q: [["-m", "tools.bench_worker", "run", "--workers", "1", "--people", _worker_people(q),
                        "--seconds", "8" if q else "20"]]),
    Section("worker_2", "two workers in one consumer group on this 2-core machine",
            lambda q: [["-m", "tools.bench_worker", "run", "--workers", "2", "--people", _worker_people(q),
                        "--fractions", ""]]),
    Section("state_100k", "state per tracked person at 100,000 people, memory and RocksDB stores, and recovery",
            lambda q: _state_runs("3000" if q else "100000")),
    Section("state_1m", "state per tracked person at 1,000,000 people, memory and RocksDB stores, and recovery",
            lambda q: _state_runs("10000" if q else "1000000"), timeout_s=3 * 3600.0),
    Section("naive", "naive baseline: one message at a time, flush per message",
            lambda q: [["-m", "tools.bench_worker", "naive", "--records", "500" if q else "3000"]]),
    Section("transport", "one-agent Faust pipeline, memory:// vs Kafka",
            lambda q: [["-m", "tools.bench_transport", "--records", "5000" if q else "20000"]]),
    Section("sweep", "retroactive sweep time against the number of places held",
            lambda q: [["-m", "geo.bench", "--points", "20000" if q else "200000", "--naive-points", "2000",
                        "--places", str(n)] for n in ((10_000, 100_000) if q else (100_000, 1_000_000, 10_000_000))]),
    Section("contacts", "contact tracing: one index case against held places; positive to the last contact's triage",
            lambda q: [["-m", "tools.bench_contacts", "search", "--places", "100000" if q else "10000000"],
                       ["-m", "tools.bench_contacts", "latency", "--tracked", "10000" if q else "1000000"],
                       ["-m", "tools.bench_contacts", "latency", "--tracked", "10000" if q else "1000000",
                        "--broker", "kafka://{bootstrap}"]]),
    Section("pipeline", "offline evaluate throughput (epiflow evaluate)",
            lambda q: [["-m", "pipeline.bench", "--events", "50000" if q else "1000000"]]),
    Section("key_groups", "key-group compliance offline: roster rows/s, NAT inputs folded/s, one count over every member",
            lambda q: [["-m", "tools.bench_key_groups", "--members", "2000" if q else "20000"]]),
    Section("api", "checkpoint API latency (POST /api/checkpoints/{id}/scans) on Kafka",
            lambda q: [["-m", "tools.bench_api", "--broker", "kafka://{bootstrap}", "--rate", "200",
                        "--seconds", "5" if q else "20"]] if (REPO / "tools" / "bench_api.py").exists() else []),
    Section("pages", "community page latency on two workers: one community's cases among the district's",
            lambda q: [["-m", "tools.bench_pages", "--district", "10000" if q else "100000",
                        "--community", "500" if q else "2000", "--requests", "50" if q else "100"]]),
)


def _parse_json(stdout: str) -> dict[str, Any]:
    """The command's JSON object: the whole output, else the last line or indented block that parses."""
    text = stdout.strip()
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    starts = [i for i in range(len(text)) if text[i] == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            value = json.loads(text[start:])
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError(f"no JSON object in the command's output (last 200 characters: {text[-200:]!r})")


def _run(args: list[str], bootstrap: str, timeout_s: float, log_name: str) -> dict[str, Any]:
    """Run one benchmark command; its stderr goes to a log file, its JSON comes back with the command."""
    args = [a.replace("{bootstrap}", bootstrap) for a in args]
    shown = "python " + " ".join(shlex.quote(a) for a in args)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{log_name}.log"
    env = {**os.environ, "EPIFLOW_TEST_BROKER": bootstrap}
    started = time.perf_counter()
    with log_path.open("w") as err:
        child = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            stdout, _ = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(child)
            return {"command": shown, "ok": False, "error": f"timed out after {timeout_s:.0f} s", "log": _rel(log_path)}
        except BaseException:
            _stop(child)
            raise
    wall = round(time.perf_counter() - started, 1)
    if child.returncode != 0:
        lines = log_path.read_text(errors="replace").strip().splitlines()
        tail = [line for line in lines if "Error" in line or line.startswith("error")][-1:] or lines[-1:] or [""]
        return {"command": shown, "ok": False, "error": f"exit {child.returncode}: {tail[0][:300]}",
                "wall_s": wall, "log": _rel(log_path)}
    try:
        result = _parse_json(stdout)
    except ValueError as error:
        return {"command": shown, "ok": False, "error": str(error), "wall_s": wall, "log": _rel(log_path)}
    return {"command": shown, "ok": True, "wall_s": wall, "result": result}


def _stop(child: subprocess.Popen[str]) -> None:
    """SIGTERM, so the benchmark stops its workers and deletes its topics; SIGKILL if it does not exit."""
    child.terminate()
    try:
        child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def run_section(section: Section, quick: bool, bootstrap: str, progress: Any = None, task: Any = None) -> dict[str, Any]:
    """Every command of `section`, in order; a failed command is recorded with its error, not hidden."""
    commands = section.commands(quick)
    runs = []
    for index, args in enumerate(commands):
        if progress is not None:
            progress.update(task, description=f"{section.name} ({index + 1}/{len(commands)}): python {' '.join(args)}")
        runs.append(_run(args, bootstrap, section.timeout_s, f"{section.name}-{index}"))
        if progress is not None:
            progress.advance(task)
    out: dict[str, Any] = {"title": section.title, "runs": runs}
    if not commands:
        out["gap"] = "not measured: tools/bench_api.py did not exist when this run was made"
    return out


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _machine(kafka_version: str) -> dict[str, Any]:
    import psutil

    return {
        "nproc": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka_version": kafka_version,
        "shared": SHARED_NOTE,
        "load_before": _load_average(),
    }


def _git_commit() -> str:
    """HEAD of the checkout the benchmarks ran from, with `+dirty` when tracked files had local changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True, check=False)
    return (head.stdout.strip() or "unknown") + ("+dirty" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tools.kafka_broker import kafka_version, shared_broker

    names = [s.name for s in SECTIONS]
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for trying the bench itself")
    parser.add_argument("--only", action="append", choices=names, metavar="SECTION",
                        help=f"run only this section (repeatable): {', '.join(names)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the running benchmark cleanly
    chosen = [s for s in SECTIONS if not args.only or s.name in args.only]
    console = Console(stderr=True)

    previous: dict[str, Any] = {}
    if args.only and args.out.exists():
        previous = json.loads(args.out.read_text())
    started = datetime.now(UTC)
    with shared_broker(start=True) as bootstrap:
        version = kafka_version()
        machine = _machine(version)
        sections: dict[str, Any] = dict(previous.get("sections", {}))
        total = sum(len(s.commands(args.quick)) or 1 for s in chosen)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("starting", total=total)
            for section in chosen:
                result = run_section(section, args.quick, bootstrap, progress, task)
                if not section.commands(args.quick):
                    progress.advance(task)
                result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
                result["git_commit"] = _git_commit()
                result["quick"] = args.quick
                sections[section.name] = result
                failed = [r for r in result["runs"] if not r["ok"]]
                for run in failed:
                    console.print(f"[red]{section.name}: {run['command']} failed: {run['error']}[/red]")
    machine["load_after"] = _load_average()
    document = {
        "generated_by": "python -m tools.bench" + (" --quick" if args.quick else "")
        + "".join(f" --only {n}" for n in (args.only or [])),
        "timestamp": started.isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": machine,
        "sections": {n: sections[n] for n in names if n in sections},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {args.out}")
    if args.out.resolve() == DEFAULT_OUT.resolve():
        from tools.readme_perf import main as readme_perf

        if readme_perf([]) == 0:
            console.print("README.md performance section regenerated from it")
    return 1 if any(not r["ok"] for s in document["sections"].values() for r in s["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
