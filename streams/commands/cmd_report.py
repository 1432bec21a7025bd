"""`epiflow report --date D --out DIR`: the three daily reports (CSV) and one HTML page, read from the topics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.progress import Progress

from pipeline.reports import daily_reports, reports_html
from pipeline.settings import Settings, load_settings
from streams.kafka_options import kafka_client_options
from streams.runtime import Runtime
from streams.topics import INPUT_KINDS


def _records(settings: Settings, topic: str) -> Iterator[Any]:
    """Every record of `topic` from the start to the end offsets seen when reading began (no consumer group)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **kafka_client_options(settings, "kafka-python"))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            for tp, batch in consumer.poll(timeout_ms=1000, max_records=5000).items():
                for record in batch:
                    yield record
                    if record.offset + 1 >= ends[tp]:
                        left.discard(tp)
    finally:
        consumer.close()


def _json(record: Any) -> dict[str, Any] | None:
    try:
        value = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _report(
    day: str = typer.Option(..., "--date", help="the day, YYYY-MM-DD, in the display time zone"),
    out: Path = typer.Option(..., "--out", help="directory for people.csv, case_handling.csv, throughput.csv, report.html"),
    broker: str = typer.Option(None, help="kafka://host:port (default from settings)"),
) -> None:
    """Build the people, case-handling and throughput reports for one day from the topics."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter(f"--date was {day!r} but is expected to be YYYY-MM-DD") from None
    settings = load_settings(broker=broker)
    from kafka import KafkaConsumer

    probe = KafkaConsumer(group_id=None, **kafka_client_options(settings, "kafka-python"))
    try:
        triage_topics = sorted(t for t in probe.topics() if t.startswith(f"{settings.topic_prefix}.triage."))
    finally:
        probe.close()
    messages: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    inputs: dict[str, list[datetime]] = {}
    with Progress() as progress:
        task = progress.add_task("reading topics", total=len(triage_topics) + 2 + len(INPUT_KINDS))
        for topic in triage_topics:
            messages += [m for r in _records(settings, topic) if (m := _json(r)) and m.get("kind") != "escalation"]
            progress.advance(task)
        events = [e for r in _records(settings, settings.topic("case-events")) if (e := _json(r))]
        progress.advance(task)
        dead = [d for r in _records(settings, settings.topic("dead-letters")) if (d := _json(r))]
        progress.advance(task)
        for kind in INPUT_KINDS:
            topic = settings.topic(kind)
            inputs[topic] = [datetime.fromtimestamp(r.timestamp / 1000, UTC) for r in _records(settings, topic)]
            progress.advance(task)
    streets = {c.code: c.street for c in Runtime.from_settings(settings).communities}
    reports = daily_reports(when, settings.zone, messages=messages, case_events=events, dead_letters=dead,
                            inputs=inputs, streets=streets)
    out.mkdir(parents=True, exist_ok=True)
    reports.people.to_csv(out / "people.csv", index=False)
    reports.handling.to_csv(out / "case_handling.csv", index=False)
    reports.throughput.to_csv(out / "throughput.csv", index=False)
    (out / "report.html").write_text(reports_html(reports), encoding="utf-8")
    typer.echo(f"{when.isoformat()}: {len(reports.people)} people rows, {len(reports.handling)} case-handling rows, "
               f"{len(reports.throughput)} throughput rows → {out}")


def register(root: typer.Typer) -> None:
    """Add `report`."""
    root.command("report")(_report)
