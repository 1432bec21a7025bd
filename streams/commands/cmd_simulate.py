"""`epiflow simulate` commands."""

import typer


def register(root: typer.Typer) -> None:
    """Add the `simulate` commands to the root CLI (none yet)."""
