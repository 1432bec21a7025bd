"""`epiflow evaluate`: triage a file of raw events offline, exactly as the live pipeline would."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import typer


def _evaluate(
    events: Path = typer.Option(..., "--events", help="JSONL file of raw input events, any order"),
    at: str = typer.Option(..., "--at", help="evaluation time, ISO 8601 with offset"),
    rules: Path | None = typer.Option(None, "--rules", help="rules document (default: settings)"),
    regions: Path | None = typer.Option(None, "--regions", help="risk regions (default: settings)"),
    communities: Path | None = typer.Option(None, "--communities", help="communities (default: settings)"),
    out: Path | None = typer.Option(None, "--out", help="write verdicts here instead of stdout"),
    dead_letters: Path | None = typer.Option(None, "--dead-letters", help="write rejected records here"),
    seen: str = typer.Option("events", "--seen", help="when a worker saw each event, which decides the management "
                             "an episode began with: `events` (each at its own time) or `at` (all at --at)"),
) -> None:
    """One JSON line per person with a valid event: action, severity, community, rules, reasons, due time, management."""
    from geo.errors import GeoError
    from pipeline.errors import PipelineError
    from pipeline.evaluate import evaluate_lines, load_indexes, parse_time, read_lines, verdict_line
    from pipeline.rules import load_rules
    from pipeline.settings import load_settings

    if seen not in ("events", "at"):
        typer.echo(f"error: --seen was {seen!r} but is expected to be 'events' or 'at'", err=True)
        raise typer.Exit(2)
    try:
        settings = load_settings()
        when = parse_time(at)
        compiled = load_rules(rules or settings.path(settings.rules))
        risk, comm = load_indexes(regions or settings.path(settings.regions), communities or settings.path(settings.communities))
    except (PipelineError, GeoError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    dl_handle = dead_letters.open("wb") if dead_letters else None
    try:
        def reject(letter) -> None:  # noqa: ANN001
            if dl_handle is not None:
                dl_handle.write(orjson.dumps(letter.model_dump(mode="json")) + b"\n")

        result = evaluate_lines(
            read_lines(events), rules=compiled, regions=risk, communities=comm, at=when,
            secret=settings.secret_bytes, source=events.name, on_reject=reject, seen=seen,
        )
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        if dl_handle is not None:
            dl_handle.close()
    sink = out.open("wb") if out else sys.stdout.buffer
    try:
        for verdict, management in zip(result.verdicts, result.management, strict=True):
            sink.write(verdict_line(verdict, management, compiled.tz))
    finally:
        if out:
            sink.close()
        else:
            sink.flush()
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.rejected.items()))
    typer.echo(
        f"{result.records} records: {result.valid} valid, {result.invalid} dead-lettered"
        + (f" ({reasons})" if reasons else "") + f"; {len(result.verdicts)} people",
        err=True,
    )


def register(root: typer.Typer) -> None:
    """Add `evaluate`."""
    root.command("evaluate")(_evaluate)
