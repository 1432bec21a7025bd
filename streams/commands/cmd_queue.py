"""`epiflow queue tail|accept|resolve`: follow a community's triage topic and close cases from a terminal (kafka-python)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import orjson
import typer

from pipeline.events import CaseEvent
from pipeline.settings import load_settings
from streams.kafka_options import kafka_client_options
from streams.publish import send_records
from streams.topics import triage_topic_name

_app = typer.Typer(help="A community's queue: follow it, accept and resolve cases.", no_args_is_help=True)


def _line(value: bytes | None) -> str:
    """One line per triage message: time, action, masked ID, name, due, case, first reason."""
    try:
        m = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return f"(not JSON: {len(value or b'')} bytes)"
    reasons = m.get("reasons") or [{}]
    return (f"{m.get('flagged_at', m.get('escalated_at', ''))}  {m.get('action', '?'):<22} {m.get('masked_id', '')}  "
            f"{m.get('name', '')}  due {m.get('due_at') or '-'}  {m.get('case_id', '')}  {reasons[0].get('text', '')}")


@_app.command("tail")
def tail(
    code: str = typer.Argument(..., help="community code (or street.<street>, unassigned)"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="print the whole topic first"),
    broker: str = typer.Option(None, help="kafka://host:port (default from settings)"),
    limit: int = typer.Option(0, help="stop after this many messages (0: follow until Ctrl-C)"),
) -> None:
    """Follow `epiflow.triage.<CODE>`, one line per message."""
    from kafka import KafkaConsumer

    settings = load_settings(broker=broker, insecure_demo_secret=True)  # a reader never needs the HMAC secret
    topic = triage_topic_name(settings.topic_prefix, code)
    consumer = KafkaConsumer(topic, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest" if from_beginning else "latest", **kafka_client_options(settings, "kafka-python"))
    seen = 0
    try:
        for record in consumer:
            typer.echo(_line(record.value))
            seen += 1
            if limit and seen >= limit:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def _step(kind: str, case_id: str, note: str, by: str | None, broker: str | None) -> None:
    settings = load_settings(broker=broker)
    now = datetime.now(UTC)
    who = by or f"cli:{getpass.getuser()}"
    events = [CaseEvent(case_id=case_id, kind=kind, by=who, at=now, note=note)]
    if note:
        events.append(CaseEvent(case_id=case_id, kind="note", by=who, at=now, note=note))
    send_records(settings, settings.topic("case-events"),
                 [(case_id.encode(), e.model_dump_json().encode()) for e in events])
    typer.echo(f"{kind} {case_id} by {who}")


@_app.command("accept")
def accept(
    case_id: str = typer.Argument(...),
    note: str = typer.Option("", help="a note kept with the case"),
    by: str = typer.Option(None, help="who accepts (default: cli:<user>)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Write an `accepted` case event."""
    _step("accepted", case_id, note, by, broker)


@_app.command("resolve")
def resolve(
    case_id: str = typer.Argument(...),
    note: str = typer.Option("", help="what was done"),
    by: str = typer.Option(None, help="who resolves (default: cli:<user>)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Write a `resolved` case event (and the note)."""
    _step("resolved", case_id, note, by, broker)


def register(root: typer.Typer) -> None:
    """Add `queue`."""
    root.add_typer(_app, name="queue")
