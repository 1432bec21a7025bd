"""The `epiflow` command: one Typer root, each command group registered from `streams.commands`."""

from __future__ import annotations

import logging
import os
import sys

import typer

from geo.errors import GeoError
from pipeline.errors import PipelineError
from pipeline.identity import redact_ids
from streams.commands import COMMAND_MODULES

root = typer.Typer(
    name="epiflow",
    help="Streaming triage for epidemic control: ingest, join, rules, routing, queues.",
    no_args_is_help=True,
    add_completion=False,
)

for _module in COMMAND_MODULES:
    _module.register(root)


def error_line(exc: BaseException) -> str | None:
    """One line saying what went wrong and what to do, for the error types a command may meet; None for others."""
    text = redact_ids(" ".join(str(exc).split())) or type(exc).__name__
    if isinstance(exc, (PipelineError, GeoError)):
        return f"error: {text}"
    if isinstance(exc, OSError):
        return f"error: {text}; check the path and its permissions"
    if type(exc).__module__.startswith("kafka."):
        name = type(exc).__name__
        return (f"error: Kafka: {text if text.startswith(name) else f'{name}: {text}'}; check that the broker runs "
                "and that EPIFLOW_BROKER or --broker names it")
    return None


def main() -> None:
    """Console-script entry point: a known error is one line on stderr and exit status 1, never a traceback."""
    logging.basicConfig(
        level=os.environ.get("EPIFLOW_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if "EPIFLOW_LOG_LEVEL" not in os.environ:
        # kafka-python logs every reconnect attempt; a command that fails says so itself, in one line
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        root()
    except Exception as exc:
        line = error_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
