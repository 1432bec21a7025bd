"""The `epiflow` command: one Typer root, each command group registered from `streams.commands`."""

from __future__ import annotations

import logging
import os

import typer

from streams.commands import COMMAND_MODULES

root = typer.Typer(
    name="epiflow",
    help="Streaming triage for epidemic control: ingest, join, rules, routing, queues.",
    no_args_is_help=True,
    add_completion=False,
)

for _module in COMMAND_MODULES:
    _module.register(root)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(
        level=os.environ.get("EPIFLOW_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    root()


if __name__ == "__main__":
    main()
