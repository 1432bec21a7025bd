"""`epiflow rules` commands."""

import typer


def register(root: typer.Typer) -> None:
    """Add the `rules` commands to the root CLI (none yet)."""
