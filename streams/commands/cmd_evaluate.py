"""`epiflow evaluate` commands."""

import typer


def register(root: typer.Typer) -> None:
    """Add the `evaluate` commands to the root CLI (none yet)."""
