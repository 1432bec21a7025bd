"""Regenerate the README's performance section from `bench/results.json`, every figure with its command.

``python -m tools.readme_perf`` rewrites the text between ``<!-- perf:begin -->`` and ``<!-- perf:end -->``
in README.md; ``--check`` only reports whether it is up to date (exit 1 if not).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["BEGIN", "END", "ReadmePerfError", "render", "replace_section"]

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"
README = REPO / "README.md"
BEGIN = "<!-- perf:begin -->"
END = "<!-- perf:end -->"
GOAL_PERSON_EVENTS_PER_S = 10_000
#: this round's goals: the share of the equivalent-work ceiling, and p99 latency at half the sustained rate
GOAL_CEILING_SHARE = 0.25
GOAL_P99_AT_HALF_MS = 500
GOAL_EVALUATE_EVENTS_PER_S = 50_000


class ReadmePerfError(ValueError):
    """The README has no (or broken) performance markers, or the results file is unusable."""


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def _cmd(run: dict[str, Any] | None) -> str:
    return f"`{run['command']}`" if run else "—"


def _ok(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's JSON result, or None when the run is missing or failed."""
    return run.get("result") if run and run.get("ok") else None


def _failed(run: dict[str, Any] | None) -> str:
    if run is None:
        return "not measured in this run"
    return f"failed: {run.get('error', 'unknown error')}"


def _runs(results: dict[str, Any], section: str) -> list[dict[str, Any]]:
    return list(results.get("sections", {}).get(section, {}).get("runs", []))


def _first(results: dict[str, Any], section: str) -> dict[str, Any] | None:
    runs = _runs(results, section)
    return runs[0] if runs else None


def _yes(flag: bool | None) -> str:
    return "n/a" if flag is None else ("yes" if flag else "**no**")


def _commits(results: dict[str, Any]) -> str:
    """Which commit each section measured, when they differ (sections re-run with --only)."""
    by_commit: dict[str, list[str]] = {}
    for name, section in results.get("sections", {}).items():
        by_commit.setdefault(section.get("git_commit") or results.get("git_commit", "unknown"), []).append(name)
    if len(by_commit) <= 1:
        return ""
    return " Sections by commit: " + "; ".join(f"{c}: {', '.join(n)}" for c, n in by_commit.items()) + "."


def _latency_at(worker: dict[str, Any] | None, fraction: float) -> dict[str, Any] | None:
    """The latency phase of `worker` sent at `fraction` of its sustained rate, if it ran."""
    phases = worker.get("latency", []) if worker else []
    return next((p for p in phases if abs(p.get("fraction", 0) - fraction) < 1e-9), None)


def _goals(results: dict[str, Any]) -> list[str]:
    worker = _ok(_first(results, "worker_1"))
    pair = _ok(_first(results, "worker_2"))
    rate = worker.get("sustained_person_events_per_s") if worker else None
    ceiling = worker.get("equivalent_ceiling_person_events_per_s") if worker else None
    share = worker.get("sustained_to_ceiling") if worker else None
    two = pair.get("sustained_person_events_per_s") if pair else None
    scaling = two / rate if two and rate else None
    half = _latency_at(worker, 0.5)
    p99 = half.get("latency_p99_ms") if half else None
    offline = _ok(_first(results, "pipeline"))
    evaluate = offline.get("events_per_s") if offline else None
    return [
        "| goal (issue) | measured | met |",
        "|---|---|---|",
        f"| ≥ {_n(GOAL_PERSON_EVENTS_PER_S)} person-events/s per worker | {_n(rate)} person-events/s | "
        f"{_yes(None if rate is None else rate >= GOAL_PERSON_EVENTS_PER_S)} |",
        f"| ≥ {GOAL_CEILING_SHARE:.0%} of the equivalent-work ceiling measured in the same run | "
        f"{'n/a' if share is None else f'{share:.0%}'} of {_n(ceiling)} person-events/s | "
        f"{_yes(None if share is None else share >= GOAL_CEILING_SHARE)} |",
        f"| two workers scale (ratio to one) | {'n/a' if scaling is None else f'{scaling:.2f}×'} "
        f"({_n(two)} / {_n(rate)} person-events/s) | {_yes(None if scaling is None else scaling > 1)} |",
        f"| p99 ingest→triage < {_n(GOAL_P99_AT_HALF_MS)} ms at 50 % of the sustained rate | {_n(p99)} ms | "
        f"{_yes(None if p99 is None else p99 < GOAL_P99_AT_HALF_MS)} |",
        f"| ≥ {_n(GOAL_EVALUATE_EVENTS_PER_S)} events/s for offline `epiflow evaluate` on one core | {_n(evaluate)} events/s | "
        f"{_yes(None if evaluate is None else evaluate >= GOAL_EVALUATE_EVENTS_PER_S)} |",
    ]


def _row(label: str, run: dict[str, Any] | None, figure: Callable[[dict[str, Any]], str]) -> str:
    r = _ok(run)
    return f"| {label} | {figure(r) if r else _failed(run)} | {_cmd(run)} |"


def _throughput(results: dict[str, Any]) -> list[str]:
    rows = ["| what | figure | command |", "|---|---|---|"]
    rows.append(_row("raw ceiling: aiokafka consume → produce, no processing", _first(results, "raw_ceiling"),
                     lambda r: f"{_n(r.get('records_per_s'))} records/s ({_n(r.get('records'))} records of {r.get('value_bytes')} B)"))
    for section, label in (("worker_1", "one worker"), ("worker_2", "two workers, one consumer group")):
        run = _first(results, section)
        r = _ok(run)
        if r:
            figure = (f"{_n(r.get('sustained_person_events_per_s'))} person-events/s sustained "
                      f"({_n(r.get('inputs_per_s'))} inputs/s ingest; whole backlog of {_n(r.get('person_events'))} "
                      f"person events in {_n(r.get('drain_s'), 1)} s; accounting holds: {_yes(r.get('accounting_holds'))})")
            if r.get("equivalent_ceiling_person_events_per_s"):
                figure += (f"; equivalent-work ceiling in the same run {_n(r['equivalent_ceiling_person_events_per_s'])} "
                           f"person-events/s, the worker at {r.get('sustained_to_ceiling', 0):.0%} of it")
        else:
            figure = _failed(run)
        rows.append(f"| {label} | {figure} | {_cmd(run)} |")
    rows.append(_row("naive baseline: one message at a time, ingest + join step, flush per message", _first(results, "naive"),
                     lambda r: f"{_n(r.get('person_events_per_s'))} person-events/s ({_n(r.get('inputs_per_s'))} inputs/s)"))
    run = _first(results, "transport")
    r = _ok(run)
    for transport in ("memory", "kafka"):
        part = r.get(transport) if r else None
        if isinstance(part, dict) and part.get("records_per_s") is not None:
            figure = f"{_n(part.get('records_per_s'))} records/s"
        elif isinstance(part, dict):
            figure = f"not measured: {part.get('skipped') or part.get('error') or 'no figure'}"
        else:
            figure = _failed(run) if not r else "not measured"
        rows.append(f"| one-agent Faust forward on {transport}:// (no domain work) | {figure} | {_cmd(run)} |")
    rows.append(_row("offline `epiflow evaluate`, one core", _first(results, "pipeline"),
                     lambda r: f"{_n(r.get('events_per_s'))} events/s ({_n(r.get('events'))} events)"))
    return rows


def _latency(results: dict[str, Any]) -> list[str]:
    run = _first(results, "worker_1")
    r = _ok(run)
    if not r or not r.get("latency"):
        return [f"Not measured: {_failed(run) if not r else 'no latency phases in this run'}."]
    rows = [
        f"Ingest→triage latency of one worker at fractions of its sustained rate, each phase "
        f"{_n(r['latency'][0].get('send_s'), 0)} s of fresh simulated inputs sent at a fixed pace; latency is the "
        f"broker timestamp of each triage record minus that of the input record that triggered it "
        f"(command: {_cmd(run)}). The worker's own `epiflow_ingest_to_triage_seconds` histogram over the same "
        f"phase is shown as the bucket bound holding p50 / p99 (≤ ms; n/a when it is past the largest bucket or absent).",
        "",
        "| share of sustained rate | inputs/s sent | person-events/s | triage messages | p50 ms | p99 ms | max ms | "
        "histogram p50 / p99 ≤ ms | caught up after sending (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for phase in r["latency"]:
        rows.append(
            f"| {phase.get('fraction', 0):.0%} | {_n(phase.get('achieved_inputs_per_s'))} | {_n(phase.get('person_events_per_s'))} | "
            f"{_n(phase.get('triage_messages'))} | {_n(phase.get('latency_p50_ms'))} | {_n(phase.get('latency_p99_ms'))} | "
            f"{_n(phase.get('latency_max_ms'))} | {_n(phase.get('histogram_p50_le_ms'))} / {_n(phase.get('histogram_p99_le_ms'))} | "
            f"{_n(phase.get('caught_up_after_send_s'), 1)} |"
        )
    return rows


def _memory(results: dict[str, Any]) -> list[str]:
    rows = ["Resident memory of the worker processes before the backlog and after every person event was joined "
            "(person table, place store for sweeps, buffers), scaled linearly to 100,000 people from the number tracked.",
            "",
            "| workers | tracked people | RSS idle → loaded (MB) | RSS growth per 100,000 people | command |",
            "|---|---|---|---|---|"]
    for section in ("worker_1", "worker_2"):
        run = _first(results, section)
        r = _ok(run)
        if not r:
            rows.append(f"| {section[-1]} | {_failed(run)} | | | {_cmd(run)} |")
            continue
        idle = " + ".join(_n(v) for v in r.get("rss_idle_mb", []))
        loaded = " + ".join(_n(v) for v in r.get("rss_loaded_mb", []))
        rows.append(f"| {r.get('workers')} | {_n(r.get('tracked_people'))} | {idle} → {loaded} | "
                    f"{_n(r.get('rss_growth_per_100k_people_mb'))} MB | {_cmd(run)} |")
    return rows


GOAL_PERSON_BYTES = {"memory://": 2048, "rocksdb://": 1024}


def _state(results: dict[str, Any]) -> list[str]:
    rows = ["One worker drained of a simulated district on each table store (every person event joined), then "
            "stopped and started again on the same data directory: RSS growth per tracked person against the goal "
            f"(≤ {GOAL_PERSON_BYTES['memory://']:,} bytes on the memory store, ≤ {GOAL_PERSON_BYTES['rocksdb://']:,} "
            "with RocksDB), the store's disk, and the time until the restarted worker has its tables recovered.",
            "",
            "| store | tracked people | joined all / accounting | RSS idle → loaded (MB) | bytes per person (goal) | "
            "store disk (MB) | recovery (s) | RSS after recovery (MB) | command |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in ("state_100k", "state_1m"):
        gap = results.get("sections", {}).get(name, {}).get("gap")
        if not _runs(results, name) or gap:
            rows.append(f"| | {'not measured: ' + gap if gap else 'not measured in this run'} | | | | | | | "
                        f"`python -m tools.bench --only {name}` |")
    for run in _runs(results, "state_100k") + _runs(results, "state_1m"):
        r = _ok(run)
        if not r:
            rows.append(f"| | {_failed(run)} | | | | | | | {_cmd(run)} |")
            continue
        store = r.get("store", "memory://")
        per = r.get("rss_growth_per_person_bytes")
        goal = GOAL_PERSON_BYTES.get(store)
        met = "n/a" if per is None or goal is None else ("met" if per <= goal else "**not met**")
        restart = r.get("restart") or {}
        idle = " + ".join(_n(v) for v in r.get("rss_idle_mb", []))
        loaded = " + ".join(_n(v) for v in r.get("rss_loaded_mb", []))
        rows.append(f"| {store} | {_n(r.get('tracked_people'))} | {_yes(r.get('joined_all'))} / "
                    f"{_yes(r.get('accounting_holds'))} | {idle} → {loaded} | {_n(per)} (≤ {_n(goal)}: {met}) | "
                    f"{_n(r.get('store_disk_mb'), 1)} | {_n(restart.get('recovery_s'), 1)} | "
                    f"{' + '.join(_n(v) for v in restart.get('rss_recovered_mb', [])) or 'n/a'} | {_cmd(run)} |")
    return rows


def _sweep(results: dict[str, Any]) -> list[str]:
    rows = ["| places held | regions swept | sweep (s) | rows found | people found | command |", "|---|---|---|---|---|---|"]
    runs = _runs(results, "sweep")
    if not runs:
        return ["Not measured in this run."]
    for run in runs:
        r = _ok(run)
        if not r:
            rows.append(f"| | | {_failed(run)} | | | {_cmd(run)} |")
            continue
        rows.append(f"| {_n(r.get('sweep_places'))} | {_n(r.get('sweep_regions'))} | {_n(r.get('sweep_s'), 3)} | "
                    f"{_n(r.get('sweep_rows'))} | {_n(r.get('sweep_people'))} | {_cmd(run)} |")
    return rows


def _contacts(results: dict[str, Any]) -> list[str]:
    runs = _runs(results, "contacts")
    if not runs:
        return ["Not measured in this run."]
    search = [r for r in runs if " search " in f"{r['command']} "]
    latency = [r for r in runs if " latency " in f"{r['command']} "]
    rows = ["| places held | index places | search wall s (best / median) | search CPU s | contacts found / planted | command |",
            "|---|---|---|---|---|---|"]
    for run in search:
        r = _ok(run)
        if not r:
            rows.append(f"| | | {_failed(run)} | | | {_cmd(run)} |")
            continue
        rows.append(f"| {_n(r.get('places'))} | {_n(r.get('index_places'))} | {_n(r.get('search_s_best'), 3)} / "
                    f"{_n(r.get('search_s_median'), 3)} | {_n(r.get('search_cpu_s_median'), 3)} | "
                    f"{_n(r.get('contacts'))} / {_n(r.get('planted_contacts'))} | {_cmd(run)} |")
    rows += ["", "| broker | tracked people | places held | contacts triaged / expected | positive → first contact (s) | "
             "positive → last contact (s) | command |", "|---|---|---|---|---|---|---|"]
    for run in latency:
        r = _ok(run)
        if not r:
            rows.append(f"| | | | {_failed(run)} | | | {_cmd(run)} |")
            continue
        rows.append(f"| {r.get('broker', 'n/a')} | {_n(r.get('tracked_people'))} | {_n(r.get('places_held'))} | "
                    f"{_n(r.get('contacts_triaged'))} / {_n(r.get('contacts_expected'))} | "
                    f"{_n(r.get('positive_to_first_contact_s'), 3)} | {_n(r.get('positive_to_last_contact_s'), 3)} | "
                    f"{_cmd(run)} |")
    rows += ["", "The tracked people beyond the scenario's are synthetic places (three each) held in the worker's place "
             "store, which is what the search scans; their person states are not in the table."]
    return rows


def _api(results: dict[str, Any]) -> list[str]:
    section = results.get("sections", {}).get("api", {})
    if section.get("gap"):
        return [f"**Gap:** {section['gap']}."]
    run = _first(results, "api")
    r = _ok(run)
    if not r:
        return [f"Not measured: {_failed(run)}."]
    return [
        "| broker | requests | rate sent (/s) | statuses | p50 ms | p99 ms | max ms | command |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r.get('broker', 'n/a')} | {_n(r.get('requests'))} | {_n(r.get('achieved_send_rate_per_s'), 1)} | "
        f"{', '.join(f'{k}: {v}' for k, v in r.get('statuses', {}).items())} | {_n(r.get('p50_ms'), 1)} | "
        f"{_n(r.get('p99_ms'), 1)} | {_n(r.get('max_ms'), 1)} | {_cmd(run)} |",
    ]


def _pages(results: dict[str, Any]) -> list[str]:
    run = _first(results, "pages")
    r = _ok(run)
    if not r:
        return [f"Not measured: {_failed(run)}."]
    return [
        f"`GET /api/communities/{{code}}/cases` asked one request at a time on each of {r.get('workers')} workers "
        f"({r.get('partitions')} partitions); each answer gathers every worker's share of that community through "
        "the router, from each worker's by-community index. Worst worker shown.",
        "",
        "| district's open cases | community's cases | requests per worker | p50 ms | p99 ms | "
        "another community (its cases): p50 / p99 ms | command |",
        "|---|---|---|---|---|---|---|",
        f"| {_n(r.get('district_cases'))} | {_n(r.get('community_cases'))} | {_n(r.get('requests_per_worker'))} | "
        f"{_n(r.get('p50_ms'), 1)} | {_n(r.get('p99_ms'), 1)} | {_n(r.get('small_community_cases'))} cases: "
        f"{_n(r.get('small_p50_ms'), 1)} / {_n(r.get('small_p99_ms'), 1)} | {_cmd(run)} |",
    ]


def render(results: dict[str, Any]) -> str:
    """The Markdown between the markers (without them) for a results document."""
    if not isinstance(results, dict) or "sections" not in results or "machine" not in results:
        raise ReadmePerfError("results must be the JSON object `python -m tools.bench` writes (with 'machine' and 'sections')")
    m = results["machine"]
    quick = any(s.get("quick") for s in results["sections"].values())
    lines = [
        f"_Generated by `python -m tools.readme_perf` from `bench/results.json`, which `{results.get('generated_by')}` "
        f"wrote at {results.get('timestamp')} (commit {results.get('git_commit')}).{_commits(results)} "
        f"Do not edit by hand; `make bench` regenerates it._",
        "",
        f"Machine: {m.get('nproc')} cores, {m.get('ram_gb')} GB RAM, Python {m.get('python')}, Apache Kafka "
        f"{m.get('kafka_version')} (single local broker). {m.get('shared', '')} Load average before / after: "
        f"{m.get('load_before')} / {m.get('load_after')}."
        + (" **Quick run: small sizes, not the capacity figures.**" if quick else ""),
        "",
        "### Goals",
        "",
        *_goals(results),
        "",
        "### Throughput",
        "",
        *_throughput(results),
        "",
        "### Latency",
        "",
        *_latency(results),
        "",
        "### Memory",
        "",
        *_memory(results),
        "",
        "### State per tracked person",
        "",
        *_state(results),
        "",
        "### Retroactive sweep against places held",
        "",
        *_sweep(results),
        "",
        "### Contact tracing",
        "",
        *_contacts(results),
        "",
        "### Checkpoint API latency",
        "",
        *_api(results),
        "",
        "### Community page latency in a cluster",
        "",
        *_pages(results),
    ]
    return "\n".join(lines) + "\n"


def replace_section(readme: str, body: str) -> str:
    """`readme` with the text between the markers replaced by `body`."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise ReadmePerfError(f"README must hold exactly one {BEGIN!r} followed by one {END!r}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{body}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.readme_perf", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--check", action="store_true", help="exit 1 if the README section is out of date")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text(encoding="utf-8"))
        current = args.readme.read_text(encoding="utf-8")
        updated = replace_section(current, render(results))
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        if updated != current:
            print(f"{args.readme} is out of date with {args.results}; run python -m tools.readme_perf", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        args.readme.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
