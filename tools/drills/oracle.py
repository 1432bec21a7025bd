"""What a drill expects (`pipeline.evaluate` on the same input) against what the topics hold; accounting."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tools.drills.deployment import STREAM_FILES, Deployment, DrillFailed
from tools.drills.observe import Message, read_topic
from tools.kafka_clients import client_options
from tools.workers import WorkerProcess

log = logging.getLogger(__name__)


def offline(deployment: Deployment, at: datetime, rules_path: Path | None = None) -> dict[str, tuple[str, str]]:
    """person_key → (action, community) as `epiflow evaluate` decides on the same input at `at`."""
    from geo.communities import CommunityIndex
    from geo.load import load_communities, load_regions
    from geo.regions import RiskIndex
    from pipeline.evaluate import evaluate_lines, read_lines
    from pipeline.rules import load_rules

    settings = deployment.settings
    evaluation = evaluate_lines(
        read_lines(deployment.folder / "events.jsonl"),
        rules=load_rules(rules_path or settings.path(settings.rules)),
        regions=RiskIndex(load_regions(deployment.folder / "risk_regions.geojson")),
        communities=CommunityIndex(load_communities(settings.path(settings.communities))),
        at=at,
        secret=settings.secret_bytes,
    )
    return {v.person_key: (v.action, v.community) for v in evaluation.verdicts}


def compare(
    records: list[Message], expected_early: dict[str, tuple[str, str]], expected_late: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """Figures of delivered triage messages against offline verdicts at the start and end of processing.

    A person passes when their last message (by broker time, then offset; repeats dropped by
    `message_id`) carries the offline action and community at either moment — the worker reads the
    wall clock, so a verdict that changes in between may legitimately be either. Those are counted.
    """
    unique: dict[str, Message] = {}
    last: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
    for record in records:
        message = orjson.loads(record.value)
        unique.setdefault(message["message_id"], record)
        order = (record.timestamp, record.offset)
        key = message["person_key"]
        if key not in last or order > last[key][0]:
            last[key] = (order, message)
    missing: list[tuple[str, Any, Any]] = []
    unexpected: list[tuple[str, Any, Any]] = []
    time_sensitive = 0
    for person, late in expected_late.items():
        early = expected_early.get(person, late)
        if early != late:
            time_sensitive += 1
        got = last.get(person)
        live = (got[1]["action"], got[1]["community"]) if got else ("clear", None)
        options = {early, late}
        if live in options or (live[0] == "clear" and any(o[0] == "clear" for o in options)):
            continue
        entry = (got[1]["masked_id"] if got else person[:12], sorted(options), live)
        (missing if late[0] != "clear" else unexpected).append(entry)
    strangers = [p for p in last if p not in expected_late]
    expected = sum(1 for action, _ in expected_late.values() if action != "clear")
    return {
        "expected": expected,
        "delivered": sum(1 for _, m in last.values() if m["action"] != "clear"),
        "messages": len(records),
        "unique_messages": len(unique),
        "duplicates": len(records) - len(unique),
        "missing": len(missing),
        "unexpected": len(unexpected) + len(strangers),
        "time_sensitive": time_sensitive,
        "examples": (missing + unexpected)[:5],
    }


def topic_accounting(deployment: Deployment, sent: int) -> dict[str, Any]:
    """inputs = forwarded + dead-lettered from the topics: distinct dead letters and distinct forwarded events."""
    dead = read_topic(deployment.bootstrap, deployment.topic("dead-letters"))
    letters = {}
    for record in dead:
        letter = orjson.loads(record.value)
        letters[(letter["source_topic"], letter["partition"], letter["offset"])] = letter
    inputs = sum(len(read_topic(deployment.bootstrap, deployment.topic(k))) for k in STREAM_FILES)
    forwarded_ids: set[tuple[str, str]] = set()
    for record in read_topic(deployment.bootstrap, deployment.topic("person-events")):
        event = orjson.loads(record.value) if record.value else {}
        if "event_id" in event:  # sweep re-evaluation requests carry no event
            forwarded_ids.add((event["person_key"], event["event_id"]))
    return {
        "sent": sent,
        "inputs": inputs,
        "dead_lettered": len(letters),
        "dead_letters_without_reason": sum(1 for letter in letters.values() if not letter.get("reason")),
        "forwarded_events": len(forwarded_ids),
    }


def status_accounting(workers: list[WorkerProcess]) -> dict[str, int]:
    """Summed /api/status counts of the running workers (each restart starts its counts at zero)."""
    total: dict[str, int] = {}
    for worker in workers:
        for key, value in worker.counts().items():
            total[key] = total.get(key, 0) + value
    return total


def wait_drained(deployment: Deployment, sent: int, timeout: float, quiet_s: float = 3.0) -> float:
    """Wait until the workers' group has consumed every input and person event and nothing moved for `quiet_s`.

    Uses committed offsets of the consumer group (`<prefix>-worker`) against end offsets, so it holds
    across worker restarts. Returns the monotonic time the pipeline went quiet.
    """
    from kafka import KafkaConsumer, TopicPartition

    group = f"{deployment.prefix}-worker"
    watched = [deployment.topic(k) for k in STREAM_FILES] + [deployment.topic("person-events")]
    ends_reader = KafkaConsumer(**client_options(deployment.bootstrap, "kafka-python"), group_id=None, enable_auto_commit=False)
    offsets_reader = KafkaConsumer(**client_options(deployment.bootstrap, "kafka-python"), group_id=group, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        last_seen: tuple[Any, ...] | None = None
        quiet_since = time.monotonic()
        behind, inputs_end = -1, 0
        while True:
            try:
                tps = [TopicPartition(t, p) for t in watched for p in (ends_reader.partitions_for_topic(t) or ())]
                ends = ends_reader.end_offsets(tps)
                committed = {tp: offsets_reader.committed(tp) or 0 for tp in tps}
                inputs_end = sum(v for tp, v in ends.items() if tp.topic != deployment.topic("person-events"))
                behind = sum(max(0, end - committed[tp]) for tp, end in ends.items())
            except Exception as exc:  # the broker may be restarting
                log.info("offsets not readable yet: %r", exc)
                tps, ends = [], {}
            snapshot = (tuple(sorted((str(k), v) for k, v in ends.items())), behind)
            now = time.monotonic()
            if snapshot != last_seen:
                last_seen, quiet_since = snapshot, now
            if tps and inputs_end >= sent and behind == 0 and now - quiet_since >= quiet_s:
                return quiet_since
            if now > deadline:
                raise DrillFailed(f"pipeline not drained after {timeout:.0f} s: {behind} records behind, "
                                  f"{inputs_end} of {sent} inputs on the topics")
            time.sleep(0.5)
    finally:
        ends_reader.close()
        offsets_reader.close()
