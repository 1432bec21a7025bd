"""The drills themselves, one function each, and the command line that runs them."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tools.drills import deployment as deployment_module
from tools.drills.deployment import (
    READY_TIMEOUT_S,
    STREAM_FILES,
    Deployment,
    DrillFailed,
    Pusher,
    input_records,
    new_deployment,
)
from tools.drills.observe import read_topic, triage_records
from tools.drills.oracle import compare, offline, status_accounting, topic_accounting, wait_drained
from tools.kafka_clients import client_options
from tools.ports import free_port
from tools.workers import WorkerProcess

log = logging.getLogger(__name__)


@dataclass
class DrillContext:
    bootstrap: str
    workdir: Path
    quick: bool
    #: table store of the drill's workers: `memory://` or `rocksdb://`
    store: str = "memory://"


def _checked(result: dict[str, Any], figures: dict[str, Any]) -> None:
    """Common checks: nothing missing or unexpected, accounting holds on the topics and in /api/status."""
    result["figures"].update(figures)
    problems = []
    if figures["missing"]:
        problems.append(f"{figures['missing']} expected triage message(s) missing, e.g. {figures['examples'][:3]}")
    if figures["unexpected"]:
        problems.append(f"{figures['unexpected']} person(s) with a triage state offline does not give, e.g. {figures['examples'][:3]}")
    acct = figures.get("accounting", {})
    if acct and acct["inputs"] != acct["sent"]:
        problems.append(f"{acct['sent']} inputs sent but {acct['inputs']} on the input topics")
    if acct and acct["dead_letters_without_reason"]:
        problems.append(f"{acct['dead_letters_without_reason']} dead letter(s) without a reason")
    if acct and acct.get("expected_dead_lettered") is not None and acct["dead_lettered"] != acct["expected_dead_lettered"]:
        problems.append(f"{acct['dead_lettered']} distinct dead letters, expected {acct['expected_dead_lettered']}")
    if acct and acct.get("expected_forwarded_events") is not None and acct["forwarded_events"] != acct["expected_forwarded_events"]:
        problems.append(f"{acct['forwarded_events']} distinct person events forwarded, expected {acct['expected_forwarded_events']}")
    status = figures.get("status_counts", {})
    if status and status.get("inputs", 0) != status.get("forwarded", 0) + status.get("dead_lettered", 0):
        problems.append(f"/api/status: inputs {status.get('inputs')} != forwarded {status.get('forwarded')} + "
                        f"dead_lettered {status.get('dead_lettered')}")
    failed = {k: status.get(k, 0) for k in ("join_dead_lettered", "case_dead_lettered") if status.get(k, 0)}
    if failed:
        problems.append(f"/api/status: records the workers failed to process and dead-lettered: {failed}")
    if problems:
        raise DrillFailed("; ".join(problems))


def _offline_counts(deployment: Deployment, at: datetime) -> dict[str, int]:
    """How many records offline ingest rejects and how many person events it forwards, as of `at`."""
    from datetime import timedelta

    from pipeline.errors import RejectedEvent
    from pipeline.evaluate import Evaluation, build_states, read_lines
    from pipeline.ingest import ingest
    from pipeline.rules import load_rules

    settings = deployment.settings
    rules = load_rules(settings.path(settings.rules))
    ev = Evaluation([])
    build_states(read_lines(deployment.folder / "events.jsonl"), lookback=timedelta(seconds=rules.windows.lookback),
                 horizon=rules.horizon, secret=settings.secret_bytes, at=at, evaluation=ev)
    distinct: set[tuple[str, str]] = set()
    for line in read_lines(deployment.folder / "events.jsonl"):
        try:
            events = ingest(line, secret=settings.secret_bytes, now=at, lookback=timedelta(seconds=rules.windows.lookback))
        except RejectedEvent:
            continue
        distinct.update((e.person_key, e.event_id) for e in events)
    # The simulator repeats some event ids (a lab sending a result twice): the topic check counts
    # distinct (person, event id) pairs, so the expectation does too.
    return {"records": ev.records, "rejected": ev.invalid, "person_events": len(distinct)}


def finish(
    deployment: Deployment, pusher: Pusher, t0: datetime, timeout: float, *, extra_dead_letters: int = 0
) -> dict[str, Any]:
    """Wait for the end of the stream, then gather every figure the common checks need."""
    sent = pusher.join(timeout)
    quiet = wait_drained(deployment, sent, timeout)
    t1 = datetime.now(UTC)
    figures = compare(triage_records(deployment), offline(deployment, t0), offline(deployment, t1))
    counts = _offline_counts(deployment, t1)
    acct = topic_accounting(deployment, sent)
    acct["expected_dead_lettered"] = counts["rejected"] + extra_dead_letters
    acct["expected_forwarded_events"] = counts["person_events"]
    figures["accounting"] = acct
    figures["status_counts"] = status_accounting(deployment.live_workers())
    figures["stream_s"] = round(quiet - pusher.started_at, 2)
    return figures


DrillFn = Callable[[DrillContext, dict[str, Any]], None]


def drill_kill_worker(ctx: DrillContext, result: dict[str, Any]) -> None:
    """Two workers; SIGKILL one when the group has consumed about a third of the input; restart it."""
    deployment = new_deployment(ctx.bootstrap, ctx.workdir, people=4000 if ctx.quick else 12000, store=ctx.store)
    try:
        first, second = _two_workers(deployment)
        records = input_records(deployment.folder)
        t0 = datetime.now(UTC)
        pusher = Pusher(deployment, records).start()
        target = len(records) // 3
        first.wait_for(lambda s: s["counts"]["inputs"] + (second.counts().get("inputs", 0)) >= target, 120,
                       f"{target} inputs consumed")
        at_kill = first.counts().get("inputs", 0) + second.counts().get("inputs", 0)
        first.kill()
        killed_at = time.monotonic()
        restarted = deployment.start_worker("a-restarted", first.web_port)
        restarted.wait_ready(READY_TIMEOUT_S, min_regions=1)
        ready_at = time.monotonic()
        figures = finish(deployment, pusher, t0, 300)
        figures.update(killed_after_inputs=at_kill, of_inputs=len(records), recovery_s=round(ready_at - killed_at, 2))
        _checked(result, figures)
        if not at_kill < len(records):
            raise DrillFailed(f"the kill landed after the stream ({at_kill} of {len(records)} inputs consumed)")
    finally:
        deployment.stop()
        deployment.cleanup()


def _two_workers(deployment: Deployment) -> tuple[WorkerProcess, WorkerProcess]:
    first, second = deployment.start_worker("a"), deployment.start_worker("b")
    first.wait_ready(READY_TIMEOUT_S, min_regions=1)
    second.wait_ready(READY_TIMEOUT_S, min_regions=1)
    return first, second


def _consumed(workers: list[WorkerProcess]) -> int:
    return sum(w.counts().get("inputs", 0) for w in workers if w.alive)


def _wait_consumed(workers: list[WorkerProcess], target: int, timeout: float = READY_TIMEOUT_S) -> int:
    """Wait until the workers have consumed `target` inputs: the point where a drill does its hostile act."""
    deadline = time.monotonic() + timeout
    while (done := _consumed(workers)) < target:
        if time.monotonic() > deadline:
            raise DrillFailed(f"only {done} of {target} inputs consumed after {timeout:.0f} s")
        time.sleep(0.2)
    return done


def drill_poison(ctx: DrillContext, result: dict[str, Any]) -> None:
    """Poisoned records in each input topic mid-stream (broken JSON, invalid UTF-8, null value, 512 KiB,
    deep nesting, wrong types, NaN/1e308 coordinates): each becomes a dead letter with a reason and its
    source topic; the workers stay up and every expected triage message arrives."""
    deployment = new_deployment(ctx.bootstrap, ctx.workdir, people=2500 if ctx.quick else 10000, store=ctx.store)
    try:
        workers = list(_two_workers(deployment))
        records = input_records(deployment.folder)
        poison = _poison_records()
        middle = len(records) // 2
        mixed = records[:middle] + [(kind, raw) for kind in STREAM_FILES for raw in poison] + records[middle:]
        t0 = datetime.now(UTC)
        pusher = Pusher(deployment, mixed).start()
        per_topic = len(poison)
        figures = finish(deployment, pusher, t0, 300, extra_dead_letters=per_topic * len(STREAM_FILES))
        letters = [orjson.loads(r.value) for r in read_topic(deployment.bootstrap, deployment.topic("dead-letters"))]
        poisoned = {kind: sum(1 for letter in letters if letter["source_topic"] == deployment.topic(kind)
                              and letter["reason"] != "" and _is_poison(letter)) for kind in STREAM_FILES}
        figures.update(poison_per_topic=per_topic, poison_dead_lettered=poisoned,
                       workers_alive=sum(w.alive for w in workers))
        _checked(result, figures)
        if any(n < per_topic for n in poisoned.values()):
            raise DrillFailed(f"poisoned records dead-lettered per topic {poisoned}, expected {per_topic} each")
        if not all(w.alive for w in workers):
            raise DrillFailed("a worker exited after the poisoned records")
    finally:
        deployment.stop()
        deployment.cleanup()


_POISON_MARK = "drill-poison"


def _poison_records() -> list[bytes | None]:
    deep = b"[" * 5000 + b"]" * 5000
    return [
        b'{"drill-poison": ',
        b"\xff\xfe drill-poison \xc3\x28",
        None,
        b'{"kind": "drill-poison", "pad": "' + b"x" * (512 * 1024) + b'"}',
        deep,
        b'{"kind": 7, "drill-poison": [1, 2], "id_number": {"a": null}}',
        b'{"kind": "declaration", "drill-poison": 1, "lon": NaN, "lat": 1e308}',
    ]


def _is_poison(letter: dict[str, Any]) -> bool:
    payload = letter.get("payload") or ""
    if letter.get("payload_encoding") == "base64":
        import base64

        return _POISON_MARK.encode() in base64.b64decode(payload)
    return _POISON_MARK in payload or payload == "" or payload.startswith("[[[[")


def drill_rules_publish(ctx: DrillContext, result: dict[str, Any]) -> None:
    """`epiflow rules publish` of a new version while events stream in: every worker switches to it,
    messages after the switch carry it, and every expected triage message arrives."""
    deployment = new_deployment(ctx.bootstrap, ctx.workdir, people=2500 if ctx.quick else 10000, store=ctx.store)
    try:
        workers = list(_two_workers(deployment))
        records = input_records(deployment.folder)
        rules_text = deployment.settings.path(deployment.settings.rules).read_text(encoding="utf-8")
        old_version = workers[0].status()["rules_version"]
        new_version = f"{old_version}-drill"
        new_rules = deployment.folder / "rules.yaml"
        new_rules.write_text(rules_text.replace(f'version: "{old_version}"', f'version: "{new_version}"'), encoding="utf-8")
        t0 = datetime.now(UTC)
        # Paced over 60 s even when quick: a publish has taken 11-21 s to reach both loaded workers.
        pusher = Pusher(deployment, records, rate=len(records) / 60).start()
        _wait_consumed(workers, len(records) // 3)
        published = time.monotonic()
        deployment.epiflow("rules", "publish", str(new_rules))
        for worker in workers:
            worker.wait_for(lambda s: s["rules_version"] == new_version, 30, f"rules version {new_version}")
        switched = time.monotonic() - published
        consumed_at_switch = _consumed(workers)
        joined_at_switch = sum(w.counts().get("joined", 0) for w in workers if w.alive)
        figures = finish(deployment, pusher, t0, 300)
        versions: dict[str, int] = {}
        for record in triage_records(deployment):
            message = orjson.loads(record.value)
            if message.get("kind", "triage") != "triage":
                continue  # management and stage messages carry no rules version
            versions[message["rules_version"]] = versions.get(message["rules_version"], 0) + 1
        figures.update(switch_s=round(switched, 2), consumed_at_switch=consumed_at_switch, of_inputs=len(records),
                       joined_at_switch=joined_at_switch, messages_by_rules_version=versions)
        _checked(result, figures)
        # The join, not ingest, is where the rules apply: the switch counts as mid-stream while joining goes on.
        if not joined_at_switch < figures["accounting"]["forwarded_events"]:
            raise DrillFailed("the rules switch landed after the stream was joined")
        if versions.get(new_version, 0) == 0:
            raise DrillFailed(f"no triage message carries the new rules version {new_version}: {versions}")
    finally:
        deployment.stop()
        deployment.cleanup()


def drill_region_relist(ctx: DrillContext, result: dict[str, Any]) -> None:
    """`epiflow regions publish --lift ID` of a high-risk region while events stream in, then the region
    re-designated (`epiflow regions publish FILE`): every worker follows both, every expected triage
    message arrives (a visit counts as of the time the person was there)."""
    deployment = new_deployment(ctx.bootstrap, ctx.workdir, people=2500 if ctx.quick else 10000, store=ctx.store)
    try:
        workers = list(_two_workers(deployment))
        records = input_records(deployment.folder)
        feature = _active_region(deployment.folder / "risk_regions.geojson", at=datetime.fromisoformat(deployment.manifest["at"]))
        region_id = feature["properties"]["id"]
        relist = deployment.folder / "relist.geojson"
        relist.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": [feature]}))
        t0 = datetime.now(UTC)
        pusher = Pusher(deployment, records, rate=len(records) / (8 if ctx.quick else 20),
                        hold_after=len(records) * 3 // 4).start()
        _wait_consumed(workers, len(records) // 4)
        lifted = time.monotonic()
        deployment.epiflow("regions", "publish", "--lift", region_id)
        consumed_at_lift = _consumed(workers)
        time.sleep(2)
        deployment.epiflow("regions", "publish", str(relist))
        relisted = time.monotonic()
        consumed_at_relist = _consumed(workers)
        pusher.release()
        figures = finish(deployment, pusher, t0, 300)
        figures.update(region=region_id, consumed_at_lift=consumed_at_lift, consumed_at_relist=consumed_at_relist,
                       of_inputs=len(records), lifted_for_s=round(relisted - lifted, 2),
                       regions_per_worker=[w.status()["regions"] for w in workers])
        _checked(result, figures)
        if not consumed_at_relist < len(records):
            raise DrillFailed("the region was re-designated after the stream")
    finally:
        deployment.stop()
        deployment.cleanup()


def _active_region(path: Path, at: datetime) -> dict[str, Any]:
    """A high-risk region in force at `at` with no end date (the one a lift changes)."""
    for feature in orjson.loads(path.read_bytes())["features"]:
        props = feature["properties"]
        if props["level"] == "high" and props.get("effective_until") is None and datetime.fromisoformat(props["effective_from"]) <= at:
            return feature
    raise DrillFailed(f"{path} has no open-ended high-risk region in force at {at.isoformat()}")


def drill_slow_consumer(ctx: DrillContext, result: dict[str, Any]) -> None:
    """A kafka-python consumer on one community topic that sleeps between polls: the pipeline drains
    while it is still behind (not slowed down by it), and it then reads every message of that topic."""
    deployment = new_deployment(ctx.bootstrap, ctx.workdir, people=2500 if ctx.quick else 10000, store=ctx.store)
    slow: _SlowConsumer | None = None
    try:
        _two_workers(deployment)
        records = input_records(deployment.folder)
        t0 = datetime.now(UTC)
        topic = _busiest_community_topic(deployment, t0)
        pusher = Pusher(deployment, records).start()
        slow = _SlowConsumer(deployment.bootstrap, topic, group=f"{deployment.prefix}-slow").start()
        figures = finish(deployment, pusher, t0, 300)
        behind_at_drain = slow.behind()
        read_at_drain = len(slow.ids)
        slow.hurry()
        on_topic = {orjson.loads(r.value)["message_id"] for r in read_topic(deployment.bootstrap, topic)}
        caught_up = slow.wait_for(on_topic, 60)
        figures.update(slow_topic=topic, slow_read_at_drain=read_at_drain, slow_behind_at_drain=behind_at_drain,
                       slow_topic_messages=len(on_topic), slow_missing=len(on_topic - slow.ids),
                       slow_catch_up_s=round(caught_up, 2))
        _checked(result, figures)
        if behind_at_drain <= 0:
            raise DrillFailed("the slow consumer was not behind when the pipeline drained; the drill proves nothing")
        if on_topic - slow.ids:
            raise DrillFailed(f"the slow consumer never received {len(on_topic - slow.ids)} message(s) of {topic}")
    finally:
        if slow is not None:
            slow.stop()
        deployment.stop()
        deployment.cleanup()


def _busiest_community_topic(deployment: Deployment, at: datetime) -> str:
    """The queue topic of the community that offline evaluation flags most people for.

    Every community's topic exists from the start, so the first one listed may stay nearly empty;
    the slow consumer must watch a topic busy enough to fall behind.
    """
    from collections import Counter

    from streams.topics import triage_topic_name

    flagged = Counter(c for action, c in offline(deployment, at).values() if action != "clear" and c != "unassigned")
    if not flagged:
        raise DrillFailed("offline evaluation flags nobody in a community; the drill needs a busy queue")
    return triage_topic_name(deployment.prefix, flagged.most_common(1)[0][0])


class _SlowConsumer:
    """A community's consumer that takes 1 record per second, then stops reading after a few, until hurried.

    Stalling (rather than only reading slowly) keeps it behind however long the pipeline takes to drain.
    """

    STALL_AFTER = 3

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.ids: set[str] = set()
        self.received = 0
        self._slow = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-consumer", daemon=True)
        self._consumer: Any = None

    def start(self) -> _SlowConsumer:
        from kafka import KafkaConsumer

        self._consumer = KafkaConsumer(self.topic, **client_options(self.bootstrap, "kafka-python"), group_id=self.group,
                                       auto_offset_reset="earliest", max_poll_records=1, enable_auto_commit=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._slow and self.received >= self.STALL_AFTER:
                time.sleep(0.2)  # a desk that stopped reading; kafka-python keeps heartbeating meanwhile
                continue
            for messages in self._consumer.poll(timeout_ms=200).values():
                for message in messages:
                    self.received += 1
                    self.ids.add(orjson.loads(message.value)["message_id"])
            if self._slow:
                time.sleep(1.0)

    def behind(self) -> int:
        """Records on the topic this consumer has not received yet."""
        ends = read_topic(self.bootstrap, self.topic)
        return len(ends) - self.received

    def hurry(self) -> None:
        self._slow = False

    def wait_for(self, ids: set[str], timeout: float) -> float:
        started = time.monotonic()
        while not ids <= self.ids and time.monotonic() - started < timeout:
            time.sleep(0.2)
        return time.monotonic() - started

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        with contextlib.suppress(Exception):
            self._consumer.close()


def drill_broker_restart(ctx: DrillContext, result: dict[str, Any]) -> None:
    """Stop and restart the broker (a private one, data kept) while the workers are mid-stream: the
    workers carry on after it is back, and every expected triage message arrives."""
    from tools.kafka_broker import ensure_broker, restart_broker, stop_broker

    broker = _private_broker_settings(ctx.workdir)
    ensure_broker(settings=broker)
    deployment = new_deployment(broker.bootstrap, ctx.workdir, people=4000 if ctx.quick else 12000, store=ctx.store)
    try:
        workers = list(_two_workers(deployment))
        records = input_records(deployment.folder)
        t0 = datetime.now(UTC)
        pusher = Pusher(deployment, records).start()
        pusher.join(120)
        consumed_at_stop = _wait_consumed(workers, len(records) // 4)
        stopped = time.monotonic()
        restart_broker(settings=broker)
        back = time.monotonic()
        restarts = 0
        for i, worker in enumerate(list(workers)):
            if not worker.alive:  # a supervisor restarts a crashed worker; count it
                restarts += 1
                workers[i] = deployment.start_worker(f"{'ab'[i]}-restarted", worker.web_port)
        figures = finish(deployment, pusher, t0, 300)
        resumed = _consumed(workers)
        figures.update(consumed_at_stop=consumed_at_stop, of_inputs=len(records),
                       broker_down_s=round(back - stopped, 2), recovery_s=round(figures["stream_s"] - (back - pusher.started_at), 2),
                       worker_restarts=restarts, consumed_after=resumed)
        _checked(result, figures)
        if not consumed_at_stop < len(records):
            raise DrillFailed("the broker restart landed after the stream")
    finally:
        deployment.stop()
        stop_broker(settings=broker)


def _private_broker_settings(workdir: Path) -> Any:
    """A broker of the drill's own (own ports and data; jars shared), so the shared one is never disturbed."""
    from tools.kafka_broker import BrokerSettings, fetch_jars

    lib = fetch_jars()
    cache = Path(workdir) / "kafka-private"
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "lib").exists():
        (cache / "lib").symlink_to(lib, target_is_directory=True)
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    return BrokerSettings(cache_dir=cache, port=port, controller_port=controller)


#: name → (drill, fits the test suite's time budget)
DRILLS: dict[str, tuple[DrillFn, bool]] = {
    "kill-worker": (drill_kill_worker, True),
    "broker-restart": (drill_broker_restart, True),
    "poison": (drill_poison, True),
    "rules-publish": (drill_rules_publish, True),
    "region-relist": (drill_region_relist, True),
    "slow-consumer": (drill_slow_consumer, True),
}


def run_drill(name: str, ctx: DrillContext) -> dict[str, Any]:
    """Run one drill; its result dict has `drill`, `ok`, `checked`, `figures` and, on failure, `error`."""
    fn, _ = DRILLS[name]
    result: dict[str, Any] = {"drill": name, "ok": False, "checked": (fn.__doc__ or "").strip(), "figures": {}}
    started = time.monotonic()
    try:
        fn(ctx, result)
        result["ok"] = True
    except DrillFailed as exc:
        result["error"] = str(exc)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-2000:]
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


@contextlib.contextmanager
def _broker(external: str | None) -> Iterator[str]:
    if external:
        yield external
        return
    from tools.kafka_broker import shared_broker

    with shared_broker() as bootstrap:
        yield bootstrap


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.drills", description="Failure drills on the real Kafka broker (`make drills`).")
    parser.add_argument("--only", action="append", choices=sorted(DRILLS), help="run only this drill (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smaller simulations (what the test suite runs)")
    parser.add_argument("--broker", default=os.environ.get("EPIFLOW_TEST_BROKER"), help="host:port of a running broker")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (simulations, worker logs) and the topics")
    parser.add_argument("--store", choices=("memory://", "rocksdb://"), default=os.environ.get("EPIFLOW_STORE", "memory://"),
                        help="table store of the workers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    names = args.only or list(DRILLS)
    signal.signal(signal.SIGTERM, _terminated)  # run the drills' cleanup (stop workers, private broker) on SIGTERM
    workdir = Path(tempfile.mkdtemp(prefix="epiflow-drills-"))
    failed = 0
    deployment_module.KEEP_TOPICS = args.keep
    try:
        with _broker(args.broker) as bootstrap:
            ctx = DrillContext(bootstrap=bootstrap, workdir=workdir, quick=args.quick, store=args.store)
            for name in names:
                result = run_drill(name, ctx)
                failed += not result["ok"]
                print(orjson.dumps(result, default=str).decode(), flush=True)
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0

