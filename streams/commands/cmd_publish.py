"""`epiflow rules publish`, `epiflow regions publish`, `epiflow produce`: validated pushes to Kafka."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import orjson
import typer

from pipeline.errors import PipelineError
from pipeline.settings import load_settings
from streams.topics import INPUT_KINDS

T = TypeVar("T")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _kafka_failure(exc: Exception) -> None:
    """A broker that cannot be reached, refused the credentials or the ACLs: one line naming the error."""
    _fail(f"Kafka refused or did not answer: {type(exc).__name__}: {exc}")


def publish_active(file: Path | None, broker: str | None, setting: str, parse: Callable[..., T], topic: str) -> tuple[T, str]:
    """Validate a document (`file`, or the one the settings' `setting` names) with `parse`, then publish it as the
    active one on the compacted `topic`; returns the document and the topic's name, or exits naming the problem."""
    from kafka.errors import KafkaError

    from streams.publish import TopicMissing, send_records

    try:
        settings = load_settings(broker=broker, insecure_demo_secret=True)
        path = file or settings.path(getattr(settings, setting))
        text = path.read_text(encoding="utf-8")
        document = parse(text, source=str(path))
        name = settings.topic(topic)
        send_records(settings, name, [(b"active", text.encode("utf-8"))])
    except (PipelineError, OSError, TopicMissing) as exc:
        _fail(str(exc))
    except KafkaError as exc:
        _kafka_failure(exc)
    return document, name


def _publish_rules(
    file: Path = typer.Argument(None, help="rules document (default: settings `rules`)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Validate a rules document, then publish it as the active rules on the compacted rules topic."""
    from pipeline.rules import parse_rules

    rules, topic = publish_active(file, broker, "rules", parse_rules, "rules")
    typer.echo(f"published rules version {rules.version} to {topic}")


def _publish_regions(
    file: Path = typer.Argument(None, help="GeoJSON / GeoPackage / Shapefile of risk regions to upsert"),
    lift: list[str] = typer.Option(None, "--lift", help="region id to lift now (sets effective_until)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Validate and upsert risk regions (keyed by id), or lift regions by id."""
    from kafka.errors import KafkaError

    from geo.errors import GeoError
    from geo.load import load_regions, region_from_feature, region_to_feature
    from streams.publish import TopicMissing, latest_records, send_records

    try:
        settings = load_settings(broker=broker, insecure_demo_secret=True)
        topic = settings.topic("risk-regions")
        records: list[tuple[bytes, bytes]] = []
        if file is not None:
            records += [(r.id.encode(), orjson.dumps(region_to_feature(r))) for r in load_regions(file)]
        if lift:
            current = latest_records(settings, topic)
            now = datetime.now(UTC)
            for region_id in lift:
                raw = current.get(region_id.encode())
                if raw is None:
                    _fail(f"--lift {region_id!r}: no such region on {topic}")
                region = region_from_feature(orjson.loads(raw)).lifted(now)
                records.append((region.id.encode(), orjson.dumps(region_to_feature(region))))
        if not records:
            _fail("nothing to publish: give a FILE and/or --lift ID")
        count = send_records(settings, topic, records)
    except (PipelineError, GeoError, OSError, TopicMissing) as exc:
        _fail(str(exc))
    except KafkaError as exc:
        _kafka_failure(exc)
    typer.echo(f"published {count} region record(s) to {topic}")


def _produce(
    file: Path = typer.Argument(..., help="JSONL file, one input document per line (or a .json file: one document or an array)"),
    topic: str = typer.Option(..., help="|".join(INPUT_KINDS)),
    broker: str = typer.Option(None, help="kafka://host:port"),
    now: bool = typer.Option(False, "--now", help="re-date the records so the latest event time is now (intervals kept)"),
    out: Path | None = typer.Option(None, "--out", help="write the records here ('-': stdout) instead of sending them"),
) -> None:
    """Push recorded or simulated events, one line per record (ingest validates and dead-letters)."""
    from kafka.errors import KafkaError

    from pipeline.replay import read_records, redate
    from streams.publish import TopicMissing, produce_lines, send_records

    if topic not in INPUT_KINDS:
        _fail(f"--topic was {topic!r} but is expected to be one of {', '.join(INPUT_KINDS)}")
    try:
        records = None
        if now or out is not None or file.suffix.lower() == ".json":
            records = read_records(file)
            if now:
                records = redate(records, datetime.now(UTC))
        if out is not None:
            text = b"".join(r + b"\n" for r in records)
            if str(out) == "-":
                typer.echo(text.decode("utf-8"), nl=False)
            else:
                out.write_bytes(text)
                typer.echo(f"wrote {len(records)} record(s) to {out}", err=True)
            return
        settings = load_settings(broker=broker, insecure_demo_secret=True)
        if records is None:
            count = produce_lines(settings, settings.topic(topic), file)
        else:
            count = send_records(settings, settings.topic(topic), [(None, r) for r in records])
    except (PipelineError, OSError, TopicMissing) as exc:
        _fail(str(exc))
    except KafkaError as exc:
        _kafka_failure(exc)
    typer.echo(f"produced {count} record(s) to {settings.topic(topic)}")


def register(root: typer.Typer) -> None:
    """Add `rules publish`, `regions publish` and `produce` (the `rules` group is shared)."""
    rules_group = next((g.typer_instance for g in root.registered_groups if g.name == "rules"), None)
    if rules_group is None:
        rules_group = typer.Typer(help="Rules documents.", no_args_is_help=True)
        root.add_typer(rules_group, name="rules")
    rules_group.command("publish")(_publish_rules)
    regions = typer.Typer(help="Risk regions on the compacted control topic.", no_args_is_help=True)
    regions.command("publish")(_publish_regions)
    root.add_typer(regions, name="regions")
    root.command("produce")(_produce)
