"""`epiflow rules check` and `epiflow rules backtest`: test a rules document before publishing it."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table


def _check(
    rules: Path = typer.Argument(None, help="rules document to check (default: settings `rules`)"),
    scenarios: Path = typer.Option(None, "--scenarios", help="scenario file to run (default: the one RULES names)"),
) -> None:
    """Validate RULES and run every scenario; exit non-zero on any problem or failed scenario."""
    from pipeline.backtest import load_scenarios, run_scenarios, scenarios_for
    from pipeline.errors import PipelineError
    from pipeline.rules import load_rules
    from pipeline.settings import load_settings

    console = Console()
    try:
        if rules is None:
            settings = load_settings()
            rules = settings.path(settings.rules)
        compiled = load_rules(rules)
        scenarios = scenarios or scenarios_for(rules, compiled)
        results = run_scenarios(compiled, load_scenarios(scenarios))
    except PipelineError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    table = Table(title=f"{rules} (version {compiled.version}) against {scenarios}")
    for column in ("", "scenario", "line", "expected", "got", "rules fired"):
        table.add_column(column)
    for r in results:
        expected = r.scenario.action + (f" [{', '.join(r.scenario.rules)}]" if r.scenario.rules else "")
        table.add_row(
            "[green]ok[/green]" if r.ok else "[red]FAIL[/red]",
            r.scenario.name,
            str(r.scenario.line),
            expected,
            r.action if r.ok else f"[red]{r.action}[/red] {r.detail}",
            ", ".join(r.rules),
        )
    console.print(table)
    failed = sum(not r.ok for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed or not results:
        raise typer.Exit(1)


def _backtest(
    events: Path = typer.Option(..., "--events", help="JSONL file of raw input events"),
    old: Path = typer.Option(..., "--old", help="rules document in force"),
    new: Path = typer.Option(..., "--new", help="proposed rules document"),
    at: str = typer.Option(..., "--at", help="evaluation time, ISO 8601 with offset"),
    regions: Path | None = typer.Option(None, "--regions", help="risk regions (default: settings)"),
    communities: Path | None = typer.Option(None, "--communities", help="communities (default: settings)"),
    examples: int = typer.Option(5, "--examples", min=0, help="how many changed people to show"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """How many people change action between OLD and NEW rules, by pair and by community."""
    from geo.errors import GeoError
    from pipeline.backtest import backtest
    from pipeline.errors import PipelineError
    from pipeline.evaluate import load_indexes, parse_time, read_lines
    from pipeline.rules import load_rules
    from pipeline.settings import load_settings

    try:
        settings = load_settings()
        when = parse_time(at)
        old_rules, new_rules = load_rules(old), load_rules(new)
        used = {"regions": regions or settings.path(settings.regions),
                "communities": communities or settings.path(settings.communities)}
        risk, comm = load_indexes(used["regions"], used["communities"])
        report = backtest(read_lines(events), old_rules, new_rules, risk, comm, when, secret=settings.secret_bytes, examples=examples)
    except (PipelineError, GeoError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if regions is None:
        typer.echo(f"risk regions from {used['regions']} (settings `regions`); pass --regions for the regions in force "
                   "at --at", err=True)
    if as_json:
        shown = {**report.to_json(), **{k: str(v) for k, v in used.items()}}
        typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return
    console = Console()
    console.print(f"risk regions: {used['regions']}; communities: {used['communities']}", highlight=False)
    console.print(f"{report.changed} of {report.people} people change action ({old_rules.version} -> {new_rules.version})")
    pairs = Table(title="by old -> new action")
    pairs.add_column("old")
    pairs.add_column("new")
    pairs.add_column("people", justify="right")
    for (a, b), n in report.by_pair.most_common():
        pairs.add_row(a, b, str(n))
    console.print(pairs)
    by_comm = Table(title="by community")
    by_comm.add_column("community")
    by_comm.add_column("people", justify="right")
    for code, n in report.by_community.most_common():
        by_comm.add_row(code, str(n))
    console.print(by_comm)
    for ex in report.examples:
        console.print(f"{ex['masked_id']} ({ex['community']}): {ex['old']} -> {ex['new']}; " + " | ".join(ex["reasons"]), highlight=False)


def register(root: typer.Typer) -> None:
    """Add `rules check` and `rules backtest`."""
    rules = typer.Typer(help="Rules documents: check against scenarios, back-test against events.", no_args_is_help=True)
    rules.command("check")(_check)
    rules.command("backtest")(_backtest)
    root.add_typer(rules, name="rules")
