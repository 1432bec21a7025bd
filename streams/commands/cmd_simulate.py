"""`epiflow simulate`: seeded declarations, checkpoint scans and NAT results over the sample geography."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import typer


def _simulate(
    seed: int = typer.Option(..., "--seed", min=0, help="random seed; the same seed gives the same bytes"),
    people: int = typer.Option(..., "--people", min=1, help="how many people to simulate"),
    out: Path = typer.Option(..., "--out", help="folder for the JSONL files, regions and manifest"),
    at: str | None = typer.Option(None, "--at", help="anchor time, ISO 8601 with offset (default: now)"),
    bad_share: float = typer.Option(0.02, "--bad-share", min=0.0, max=1.0, help="share of deliberately bad records"),
) -> None:
    """Write one JSONL file per input kind (declarations.jsonl, ...), events.jsonl, risk_regions.geojson, manifest.json."""
    from rich.progress import Progress

    from geo.errors import GeoError
    from pipeline.errors import PipelineError
    from pipeline.evaluate import parse_time
    from pipeline.settings import load_settings
    from pipeline.simulate import load_sample_geography, write_simulation

    try:
        settings = load_settings()
        when = parse_time(at) if at else datetime.now(settings.zone).replace(microsecond=0)
        geo = load_sample_geography(settings.path(settings.regions), settings.path(settings.communities), settings.path(settings.checkpoints), when)
        with Progress(transient=True) as progress:
            task = progress.add_task("simulating", total=None)
            manifest = write_simulation(out, seed, people, when, geo, bad_share=bad_share, progress=lambda n: progress.update(task, completed=n))
    except (PipelineError, GeoError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(orjson.dumps(manifest, option=orjson.OPT_INDENT_2).decode())


def register(root: typer.Typer) -> None:
    """Add `simulate`."""
    root.command("simulate")(_simulate)
