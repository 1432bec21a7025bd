"""`epiflow groups …`: key groups' testing cadences (check, publish), rosters (load) and compliance (status)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipeline.key_groups import KeyGroups
    from pipeline.rosters import RosterEntry
    from pipeline.settings import Settings


#: How far back a checkpoint scan still counts when coverage is computed for a past day.
REPORT_LOOKBACK = timedelta(days=366)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _produce(
    broker: str | None, name: str, records: Callable[[Settings], list[tuple[bytes | None, bytes | None]]]
) -> tuple[str, int]:
    """Send what `records` builds from the settings to topic `name`; a bad input, a missing topic or a broker that
    refuses or does not answer exits with one error line. Returns the full topic name and the count sent."""
    from kafka.errors import KafkaError

    from pipeline.errors import PipelineError
    from pipeline.settings import load_settings
    from streams.publish import TopicMissing, send_records

    try:
        settings = load_settings(broker=broker, insecure_demo_secret=True)
        built = records(settings)
        topic = settings.topic(name)
        count = send_records(settings, topic, built)
    except (PipelineError, OSError, UnicodeDecodeError, TopicMissing) as exc:
        _fail(str(exc))
    except KafkaError as exc:
        _fail(f"Kafka refused or did not answer: {type(exc).__name__}: {exc}")
    return topic, count


def _check(file: Path = typer.Argument(None, help="key-groups document (default: settings `key_groups`)")) -> None:
    """Validate a key-groups document; exit non-zero naming file, line and problem."""
    from pipeline.errors import PipelineError
    from pipeline.key_groups import load_key_groups
    from pipeline.settings import load_settings

    try:
        path = file or load_settings().path(load_settings().key_groups)
        groups = load_key_groups(path)
    except PipelineError as exc:
        _fail(str(exc), 2)
    typer.echo(f"{path}: version {groups.version}, {len(groups.groups)} group(s) valid")


def _publish(
    file: Path = typer.Argument(None, help="key-groups document (default: settings `key_groups`)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Validate a key-groups document, then publish it as the active one on the compacted key-groups topic."""
    from pipeline.key_groups import parse_key_groups
    from streams.commands.cmd_publish import publish_active

    groups, topic = publish_active(file, broker, "key_groups", parse_key_groups, "key-groups")
    typer.echo(f"published key groups version {groups.version} to {topic}")


def _load(
    file: Path = typer.Argument(..., help="roster CSV: group,id_number,name,phone,community"),
    enterprise: str = typer.Option("", "--enterprise", help="the key enterprise this roster is from (reminders also go to its queue)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Push every row of a roster onto the roster topic; the workers validate, pseudonymise and dead-letter bad rows."""
    from pipeline.rosters import roster_rows

    def records(settings: Settings) -> list[tuple[bytes | None, bytes | None]]:
        rows = roster_rows(file.read_text(encoding="utf-8"), file.name, enterprise=enterprise, submitted_at=datetime.now(UTC))
        return [(None, row) for row in rows]

    topic, count = _produce(broker, "rosters", records)
    typer.echo(f"produced {count} roster row(s) to {topic}")


def _status(
    groups: Path = typer.Option(None, "--groups", help="key-groups document (default: settings `key_groups`)"),
    roster: list[Path] = typer.Option(..., "--roster", help="roster CSV (repeatable)"),
    events: Path = typer.Option(..., "--events", help="JSONL file of raw input events (NAT results, declarations…)"),
    at: str = typer.Option(..., "--at", help="the moment to assess, ISO 8601 with offset"),
    as_json: bool = typer.Option(False, "--json", help='print {"groups": [...]} as JSON'),
) -> None:
    """Per key group: enrolled, on time, rate and the masked IDs of the overdue, offline, as the workers count them."""
    from geo.errors import GeoError
    from geo.load import load_communities
    from pipeline.compliance import group_status, last_negatives_of_inputs, status_json
    from pipeline.errors import PipelineError
    from pipeline.evaluate import parse_time, read_lines
    from pipeline.key_groups import load_key_groups
    from pipeline.rules import load_rules
    from pipeline.settings import load_settings

    try:
        settings = load_settings(insecure_demo_secret=True)
        document = load_key_groups(groups or settings.path(settings.key_groups))
        when = parse_time(at)
        rules = load_rules(settings.path(settings.rules))
        codes = {c.code for c in load_communities(settings.path(settings.communities))}
        entries, refused = _roster_entries(roster, document, settings.secret_bytes, when, codes)
        lookback = timedelta(seconds=rules.windows.lookback)
        last, _ = last_negatives_of_inputs(read_lines(events), secret=settings.secret_bytes, at=when,
                                           lookback=lookback, horizon=rules.horizon)
    except (PipelineError, GeoError, OSError) as exc:
        _fail(str(exc))
    statuses = group_status(document, entries, last, when)
    for row in refused:
        typer.echo(f"refused: {row['source']} line {row['line']}: {row['reason']}: {row['detail']}", err=True)
    if as_json:
        sys.stdout.write(orjson.dumps({**status_json(statuses), "refused": refused}).decode() + "\n")
        return
    typer.echo(f"key groups {document.version} at {when.isoformat()}")
    typer.echo(f"{'group':<22}{'enrolled':>9}{'on_time':>9}{'rate':>8}  overdue")
    for s in statuses:
        rate = "-" if s.rate is None else f"{100 * s.rate:.1f}%"
        typer.echo(f"{s.id:<22}{s.enrolled:>9}{s.on_time:>9}{rate:>8}  {' '.join(s.overdue)}")


def _roster_entries(
    paths: list[Path], document: KeyGroups, secret: bytes, when: datetime, communities: set[str]
) -> tuple[list[RosterEntry], list[dict[str, object]]]:
    """Every valid enrolment of the roster files, and each refused row with its file, line and reason."""
    from pipeline.errors import RejectedEvent
    from pipeline.rosters import roster_entry, roster_rows

    entries: list[RosterEntry] = []
    refused: list[dict[str, object]] = []
    for path in paths:
        for row in roster_rows(path.read_text(encoding="utf-8"), path.name, submitted_at=when):
            try:
                entries.append(roster_entry(row, secret=secret, groups=document, communities=communities))
            except RejectedEvent as exc:
                line = orjson.loads(row)["line"]
                refused.append({"source": path.name, "line": line, "reason": exc.reason, "detail": exc.detail})
    return entries, refused


def _register(
    file: Path = typer.Argument(..., help="registry CSV: enterprise,enterprise_name,kind,value,name (kind vehicle|staff)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Validate a key-enterprise registry (fleet plates, staff), then publish one record per enterprise."""
    from pipeline.coverage import enterprise_to_json, parse_registry

    def records(settings: Settings) -> list[tuple[bytes | None, bytes | None]]:
        enterprises, refused = parse_registry(file.read_text(encoding="utf-8"), file.name, secret=settings.secret_bytes)
        if refused:
            for row in refused:
                typer.echo(f"refused: {row['detail']} ({row['reason']})", err=True)
            _fail(f"{file}: registry refused ({len(refused)} bad row(s)); nothing was published")
        return [(e.id.encode(), enterprise_to_json(e)) for e in enterprises]

    topic, count = _produce(broker, "key-enterprises", records)
    typer.echo(f"published {count} enterprise registration(s) to {topic}")


def _coverage(
    registry: Path = typer.Option(..., "--registry", help="registry CSV: enterprise,enterprise_name,kind,value,name"),
    events: Path = typer.Option(..., "--events", help="JSONL file of raw input events (checkpoint scans)"),
    day: str = typer.Option(..., "--day", help="YYYY-MM-DD in the display zone"),
    as_json: bool = typer.Option(False, "--json", help='print {"coverage": [...]} as JSON'),
) -> None:
    """Per key enterprise, on DAY: vehicles and staff checked at a checkpoint, and the unchecked ones."""
    from datetime import date

    from pipeline.coverage import check_of_scan, coverage, coverage_json, parse_registry
    from pipeline.errors import PipelineError
    from pipeline.evaluate import read_lines
    from pipeline.settings import load_settings

    try:
        settings = load_settings(insecure_demo_secret=True)
        when = date.fromisoformat(day)
        enterprises, refused = parse_registry(registry.read_text(encoding="utf-8"), registry.name,
                                              secret=settings.secret_bytes)
        now = datetime.now(UTC)
        checks = [c for raw in read_lines(events) if (c := check_of_scan(
            raw, secret=settings.secret_bytes, now=now, lookback=REPORT_LOOKBACK)) is not None]
    except ValueError:
        _fail(f"--day was {day!r} but is expected to be YYYY-MM-DD")
    except (PipelineError, OSError) as exc:
        _fail(str(exc))
    for row in refused:
        typer.echo(f"refused: {row['detail']} ({row['reason']})", err=True)
    rows = coverage(enterprises, checks, when, settings.zone)
    if as_json:
        sys.stdout.write(orjson.dumps({"coverage": coverage_json(rows), "refused": refused}).decode() + "\n")
        return
    for c in rows:
        typer.echo(f"{c.enterprise:<16} vehicles {c.vehicles_checked}/{c.vehicles}  people {c.people_checked}/{c.people}"
                   f"  unchecked: {' '.join(c.unchecked_plates + c.unchecked_people) or '-'}")


def register(root: typer.Typer) -> None:
    """Add the `groups` command group."""
    groups = typer.Typer(help="Key groups: testing cadences, rosters and compliance.", no_args_is_help=True)
    groups.command("check")(_check)
    groups.command("publish")(_publish)
    groups.command("load")(_load)
    groups.command("status")(_status)
    groups.command("register")(_register)
    groups.command("coverage")(_coverage)
    root.add_typer(groups, name="groups")
