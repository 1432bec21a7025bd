"""`epiflow geo` commands."""

from __future__ import annotations

from pathlib import Path

import typer


def register(root: typer.Typer) -> None:
    """Add the `geo` commands to the root CLI."""
    geo_app = typer.Typer(
        help="Sample geography: communities, risk regions, checkpoints.", no_args_is_help=True
    )

    @geo_app.command("generate")
    def generate(
        seed: int = typer.Option(
            7, "--seed", min=0, help="Random seed; the same seed gives byte-identical files."
        ),
        out: Path = typer.Option(
            Path("config/geo"), "--out", help="Directory to write the GeoJSON files into."
        ),
        communities: int = typer.Option(
            180, "--communities", min=9, help="Number of communities in the district."
        ),
        regions: int = typer.Option(2400, "--regions", min=1, help="Number of national risk regions."),
    ) -> None:
        """Write district.geojson, risk_regions.geojson and checkpoints.geojson for SEED."""
        from geo.errors import GeoError
        from geo.generate import write_sample

        try:
            paths = write_sample(out, seed, n_communities=communities, n_regions=regions)
        except GeoError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        for path in paths:
            typer.echo(f"{path} ({path.stat().st_size:,} bytes)")

    root.add_typer(geo_app, name="geo")
