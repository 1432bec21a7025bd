"""`epiflow id check` and `epiflow schemas export`: resident-ID checks and contract schemas."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.identity import check_id, mask_id
from pipeline.schemas import write_schemas


def _check(id_number: str = typer.Argument(..., help="18-character resident ID number")) -> None:
    """Check a resident ID number; prints `valid <masked>` or `invalid <reason>` (never the full number)."""
    outcome = check_id(id_number)
    if outcome.valid and outcome.normalised:
        typer.echo(f"valid {mask_id(outcome.normalised)}")
        return
    typer.echo(f"invalid {outcome.reason}")
    raise typer.Exit(1)


def _export(out: Path = typer.Argument(Path("config/schemas"), help="folder for the JSON Schema files")) -> None:
    """Write the JSON Schema of every event contract into OUT."""
    for path in write_schemas(out):
        typer.echo(str(path))


def register(root: typer.Typer) -> None:
    """Add `id check` and `schemas export`."""
    ids = typer.Typer(help="Resident ID numbers.", no_args_is_help=True)
    ids.command("check")(_check)
    root.add_typer(ids, name="id")
    schemas = typer.Typer(help="JSON Schemas of the event contracts.", no_args_is_help=True)
    schemas.command("export")(_export)
    root.add_typer(schemas, name="schemas")
