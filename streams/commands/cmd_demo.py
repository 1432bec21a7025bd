"""`epiflow demo`: the pipeline on the embedded broker with simulated traffic (what `make demo` runs)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from pipeline.settings import load_settings


def _demo(
    duration: float = typer.Option(60.0, help="seconds of simulated traffic"),
    rate: int = typer.Option(500, help="input events per second"),
    seed: int = typer.Option(7, help="simulator seed"),
    web_port: int = typer.Option(None, help="web UI port (a free one if taken)"),
    json_summary: Path = typer.Option(None, help="write the summary as JSON to this file"),
) -> None:
    """Run embedded broker + worker + simulator in one process, with a live table and a summary."""
    from rich.console import Console

    from streams.demo import DemoNotReady, run_demo

    if duration <= 0 or rate <= 0:
        typer.echo(f"error: --duration and --rate must be positive (got {duration}, {rate})", err=True)
        raise typer.Exit(2)
    settings = load_settings(broker="memory://demo", web_port=web_port)
    console = Console()
    try:
        summary = asyncio.run(run_demo(settings, duration=duration, rate=rate, seed=seed, console=console))
    except DemoNotReady as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if not console.is_terminal:
        console.line()  # the last frame of the live view ends without a newline when output is not a terminal
    console.print_json(json.dumps(summary, ensure_ascii=False))
    if json_summary:
        json_summary.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    problems = demo_problems(summary)
    for text in problems:
        typer.echo(f"error: {text}", err=True)
    if problems:
        raise typer.Exit(1)


def demo_problems(summary: dict[str, Any]) -> list[str]:
    """What makes a finished demo a failure (the exit status `make demo` and `.ci/run` check)."""
    problems = []
    if summary["events_in"] != summary["forwarded"] + summary["dead_lettered"]:
        problems.append("accounting does not hold (events_in != forwarded + dead_lettered)")
    if not summary["drained"]:
        problems.append(f"timed out: {summary['events_in']} of {summary['sent']} inputs read, {summary['joined']} of "
                        f"{summary['person_events']} person events joined {summary['drain_limit_s']:.0f} s after the traffic stopped "
                        f"(log: {summary['log_file']})")
    if not summary["flagged"]:
        problems.append(f"nobody was flagged (log: {summary['log_file']})")
    return problems


def register(root: typer.Typer) -> None:
    """Add `demo`."""
    root.command("demo")(_demo)
