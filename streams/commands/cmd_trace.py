"""`epiflow trace`: an index case's contact chain from a file of raw events, as the workers find it."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import typer


def _trace(
    person_key: str = typer.Argument(..., help="the index case's person key (64 hex, as in triage messages)"),
    events: Path = typer.Option(..., "--events", help="JSONL file of raw input events, any order"),
    at: str = typer.Option(..., "--at", help="evaluation time, ISO 8601 with offset"),
    rules: Path | None = typer.Option(None, "--rules", help="rules document (default: settings)"),
    geojson: bool = typer.Option(False, "--geojson", help="print a GeoJSON FeatureCollection instead of the chain"),
) -> None:
    """Print the index case's places and each close and secondary contact with its rule and shared place."""
    from datetime import timedelta

    from pipeline.contacts import Person, chain, chain_geojson, trace_states
    from pipeline.errors import PipelineError
    from pipeline.evaluate import build_states, parse_time, read_lines
    from pipeline.rules import load_rules
    from pipeline.settings import load_settings

    try:
        settings = load_settings()
        when = parse_time(at)
        compiled = load_rules(rules or settings.path(settings.rules))
        states = build_states(read_lines(events), lookback=timedelta(seconds=compiled.windows.lookback),
                              horizon=compiled.horizon, secret=settings.secret_bytes, at=when)
    except (PipelineError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    index = states.get(person_key)
    if index is None:
        typer.echo(f"error: no person with key {person_key[:12]}… has a valid event in {events}", err=True)
        raise typer.Exit(1)
    exposures = trace_states(states, compiled)
    people = {k: Person(k, states[k].masked_id, states[k].name) for k in exposures}
    found = chain(person_key, index.masked_id, index.places, exposures, people, compiled.tz)
    doc = chain_geojson(found) if geojson else found
    sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    c = found["counts"]
    typer.echo(f"index {index.masked_id}: {c['close']} close contacts, {c['secondary']} secondary contacts", err=True)


def register(root: typer.Typer) -> None:
    """Add `trace`."""
    root.command("trace")(_trace)
