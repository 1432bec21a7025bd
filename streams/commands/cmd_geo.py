"""`epiflow geo` commands."""

import typer


def register(root: typer.Typer) -> None:
    """Add the `geo` commands to the root CLI (none yet)."""
