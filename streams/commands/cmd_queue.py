"""`epiflow queue tail|accept|resolve|stage|request|answer`: follow a community's triage topic and close cases from a terminal (kafka-python).

None of them hashes an ID number, so none needs the HMAC secret. A case step is sent only for a case the
workers hold: the CLI looks its id up in the cases table's changelog first and refuses an unknown one.
"""

from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime

import orjson
import typer

from pipeline.cases import Case, case_from_bytes
from pipeline.errors import SettingsError
from pipeline.events import CaseEvent
from pipeline.settings import Settings, load_settings
from streams.kafka_options import kafka_client_options
from streams.publish import send_records
from streams.topics import triage_topic_name

#: How long a case look-up may read the cases changelog before giving up.
LOOKUP_SECONDS = 20.0

_app = typer.Typer(help="A community's queue: follow it, accept and resolve cases, record stages, requests and answers.",
                   no_args_is_help=True)


def _line(value: bytes | None) -> str:
    """One line per triage message: time, action, masked ID, name, due, case, first reason."""
    try:
        m = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return f"(not JSON: {len(value or b'')} bytes)"
    reasons = m.get("reasons") or [{}]
    return (f"{m.get('flagged_at', m.get('escalated_at', ''))}  {m.get('action', m.get('kind', '?')):<22} {m.get('masked_id', '')}  "
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

    settings = _kafka_settings(broker, "queue tail", f"open /communities/{code} on the worker's web server")
    topic = triage_topic_name(settings.topic_prefix, code)
    consumer = KafkaConsumer(topic, group_id=None, enable_auto_commit=False, allow_auto_create_topics=False,
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


def _kafka_settings(broker: str | None, command: str, instead: str) -> Settings:
    """Settings of a kafka:// deployment (no secret needed: these commands never hash an ID number)."""
    settings = load_settings(broker=broker, insecure_demo_secret=True)
    if not settings.broker.startswith("kafka://"):
        raise SettingsError(
            f"broker was {settings.broker!r}: `epiflow {command}` talks to a kafka:// broker (EPIFLOW_BROKER or --broker); "
            f"the embedded memory:// broker lives inside its worker process, so {instead}"
        )
    return settings


def cases_changelog(settings: Settings) -> str:
    """The compacted changelog of the workers' cases table (Faust names it `<app id>-cases-changelog`)."""
    return f"{settings.topic_prefix}-worker-cases-changelog"


def find_case(settings: Settings, case_id: str, timeout_s: float = LOOKUP_SECONDS) -> Case | None:
    """The case as the workers last stored it, read from its changelog partition; None when there is none."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.partitioner.default import murmur2

    topic = cases_changelog(settings)
    key = case_id.encode()
    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, allow_auto_create_topics=False,
                             **kafka_client_options(settings, "kafka-python"))
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return None
        tp = TopicPartition(topic, (murmur2(key) & 0x7FFFFFFF) % len(partitions))
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        found: bytes | None = None
        deadline = time.monotonic() + timeout_s
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise SettingsError(f"could not read {topic} to its end within {timeout_s:.0f} s; try again")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == key:
                        found = record.value
    finally:
        consumer.close()
    return case_from_bytes(found)[0] if found else None


def _step(kind: str, case_id: str, note: str, by: str | None, broker: str | None) -> None:
    step = {"accepted": "accept", "resolved": "resolve"}[kind]
    settings = _kafka_settings(broker, f"queue {step}", "use the Accept and Resolve buttons of the community page")
    if find_case(settings, case_id) is None:
        typer.echo(f"error: no case {case_id!r} on {settings.broker}: check the id (`epiflow queue tail CODE` "
                   "lists a community's cases); nothing was sent", err=True)
        raise typer.Exit(1)
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


@_app.command("stage")
def stage(
    case_id: str = typer.Argument(...),
    stage_name: str = typer.Argument(..., metavar="STAGE", help="dispatched, picked_up or received"),
    site: str = typer.Option("", help="the hospital or isolation site (needed for received)"),
    arrived_at: str = typer.Option("", "--arrived-at", help="when the person reached the site, ISO 8601 with offset"),
    by: str = typer.Option(None, help="who records it (default: cli:<user>)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Write a transfer stage of a case (dispatched → picked_up → received) to `case-events`."""
    from pipeline.stages import stage_problem

    settings = _kafka_settings(broker, "queue stage", "use the stage buttons of the community page")
    case = find_case(settings, case_id)
    if case is None:
        typer.echo(f"error: no case {case_id!r} on {settings.broker}; nothing was sent", err=True)
        raise typer.Exit(1)
    problem = stage_problem(case.action, case.stages, stage_name, site)
    if problem is not None:
        typer.echo(f"error: {problem}; nothing was sent", err=True)
        raise typer.Exit(1)
    arrived = None
    if arrived_at:
        try:
            arrived = datetime.fromisoformat(arrived_at)
        except ValueError:
            arrived = None
        if arrived is None or arrived.tzinfo is None:
            typer.echo(f"error: --arrived-at was {arrived_at!r} but is expected to be ISO 8601 with an offset", err=True)
            raise typer.Exit(2)
    who = by or f"cli:{getpass.getuser()}"
    event = CaseEvent(case_id=case_id, kind=stage_name, by=who, at=datetime.now(UTC), site=site, arrived_at=arrived)
    send_records(settings, settings.topic("case-events"), [(case_id.encode(), event.model_dump_json().encode())])
    typer.echo(f"{stage_name} {case_id} by {who}" + (f" at {site}" if site else ""))


@_app.command("request")
def request(
    case_id: str = typer.Argument(...),
    kind: str = typer.Argument(..., help="supplies, medical or other"),
    text: str = typer.Argument(..., help="what the person asks for (at most 500 characters)"),
    by: str = typer.Option(None, help="who logs it (default: cli:<user>)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Log a request of the case's person to `case-events`, due within its kind's hours (`requests:` of the rules file)."""
    from pipeline.requests import answer_due, request_id_for, request_problems
    from pipeline.rules import load_rules

    problems = request_problems(kind, text)
    if problems:
        typer.echo("error: " + "; ".join(f"{f} {p}" for f, p in problems) + "; nothing was sent", err=True)
        raise typer.Exit(2)
    settings = _kafka_settings(broker, "queue request", "use the 登记诉求 button of the community page")
    if find_case(settings, case_id) is None:
        typer.echo(f"error: no case {case_id!r} on {settings.broker}; nothing was sent", err=True)
        raise typer.Exit(1)
    now = datetime.now(UTC)
    text = text.strip()
    due = answer_due(load_rules(settings.path(settings.rules)).document.requests, kind, now)
    who = by or f"cli:{getpass.getuser()}"
    request_id = request_id_for(case_id, kind, text, now)
    event = CaseEvent(case_id=case_id, kind="request", by=who, at=now, note=text, request_id=request_id,
                      request_kind=kind, due_at=due)
    send_records(settings, settings.topic("case-events"), [(case_id.encode(), event.model_dump_json().encode())])
    typer.echo(f"request {request_id} ({kind}) by {who}, to be answered by {due.astimezone(settings.zone).isoformat()}")


@_app.command("answer")
def answer(
    request_id: str = typer.Argument(...),
    text: str = typer.Argument(..., help="the answer (at most 500 characters)"),
    by: str = typer.Option(None, help="who answers (default: cli:<user>)"),
    broker: str = typer.Option(None, help="kafka://host:port"),
) -> None:
    """Record the answer to a request (its id as the request's messages and the community page give it)."""
    from pipeline.errors import CaseError
    from pipeline.requests import case_of_request, request_problems

    try:
        case_id = case_of_request(request_id)
    except CaseError as exc:
        typer.echo(f"error: {exc}; nothing was sent", err=True)
        raise typer.Exit(2) from None
    problems = [(f.replace("text", "answer"), p) for f, p in request_problems("other", text)]
    if problems:
        typer.echo("error: " + "; ".join(f"{f} {p}" for f, p in problems) + "; nothing was sent", err=True)
        raise typer.Exit(2)
    settings = _kafka_settings(broker, "queue answer", "use the 答复 button of the community page")
    case = find_case(settings, case_id)
    row = None if case is None else next((r for r in case.requests if r[0] == request_id), None)
    if row is None:
        typer.echo(f"error: no request {request_id!r} on {settings.broker}; nothing was sent", err=True)
        raise typer.Exit(1)
    if row[6]:
        typer.echo(f"error: request {request_id!r} was answered at {row[6]} by {row[7]}; nothing was sent", err=True)
        raise typer.Exit(1)
    who = by or f"cli:{getpass.getuser()}"
    event = CaseEvent(case_id=case_id, kind="answered", by=who, at=datetime.now(UTC), note=text.strip(),
                      request_id=request_id)
    send_records(settings, settings.topic("case-events"), [(case_id.encode(), event.model_dump_json().encode())])
    typer.echo(f"answered {request_id} by {who}")


def register(root: typer.Typer) -> None:
    """Add `queue`."""
    root.add_typer(_app, name="queue")
