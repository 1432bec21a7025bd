"""`epiflow report --date D --out DIR`: the daily report read from a Kafka broker's topics.

Writes report.html (totals, street subtotals, charts), report.json (the figures, as
`GET /reports/daily?format=json` gives them) and the CSVs (requests.csv and transfers.csv among them), then prints the totals and street subtotals.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import orjson
import typer

from pipeline.errors import PipelineError
from pipeline.settings import load_settings
from streams.daily_report import build_report, key_group_report, quiet_kafka_logs, read_report_inputs
from streams.runtime import Runtime

_ON_MEMORY = ("epiflow report reads the topics of a Kafka broker, and the broker is {broker!r}: on the demo open "
              "http://{host}:{port}/reports/daily?date={day} instead, or pass --broker kafka://HOST:PORT")


def _report(
    day: str = typer.Option(None, "--date", help="the day, YYYY-MM-DD, in the display time zone (default: today)"),
    out: Path = typer.Option(Path("out/report"), "--out", help="directory for report.html, report.json and the CSVs"),
    broker: str = typer.Option(None, help="kafka://host:port (default from settings)"),
    lang: str = typer.Option("zh", "--lang", help="zh (default) or en"),
) -> None:
    """Build the day's report (totals, street subtotals, timeliness, charts) from the topics of a Kafka broker."""
    quiet_kafka_logs()
    try:
        settings = load_settings(broker=broker)
    except PipelineError as exc:
        typer.echo(f"epiflow report: {exc}", err=True)
        raise typer.Exit(2) from None
    now = datetime.now(settings.zone)
    try:
        when = date.fromisoformat(day) if day else now.date()
    except ValueError:
        typer.echo(f"epiflow report: --date was {day!r} but is expected to be YYYY-MM-DD", err=True)
        raise typer.Exit(2) from None
    if lang not in ("zh", "en"):
        typer.echo(f"epiflow report: --lang was {lang!r} but is expected to be zh or en", err=True)
        raise typer.Exit(2)
    if settings.broker.startswith("memory://"):
        typer.echo(_ON_MEMORY.format(broker=settings.broker, host=settings.web_host, port=settings.web_port,
                                     day=when.isoformat()), err=True)
        raise typer.Exit(1)
    try:
        inputs = read_report_inputs(settings)
    except Exception as exc:  # the broker could not be read: one line, never a traceback
        typer.echo(f"epiflow report: could not read the topics of {settings.broker} ({type(exc).__name__}: {exc}); "
                   "check that the broker runs and --broker names it", err=True)
        raise typer.Exit(1) from None
    runtime = Runtime.from_settings(settings)
    reports, page = build_report(settings, inputs, when, runtime.communities, now=now, lang="en" if lang == "en" else "zh")
    out.mkdir(parents=True, exist_ok=True)
    figures = {**reports.figures(), "rules_version": inputs.rules_version, "generated_at": now.isoformat(),
               "key_groups": key_group_report(settings, inputs, when, runtime.communities, now)}
    (out / "report.json").write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    (out / "report.html").write_text(page, encoding="utf-8")
    reports.people.to_csv(out / "people.csv", index=False)
    reports.handling.to_csv(out / "case_handling.csv", index=False)
    reports.streets.to_csv(out / "streets.csv", index=False)
    reports.throughput.to_csv(out / "throughput.csv", index=False)
    reports.management.to_csv(out / "management.csv", index=False)
    reports.requests.to_csv(out / "requests.csv", index=False)
    reports.transfers.to_csv(out / "transfers.csv", index=False)
    t = reports.totals
    share = "—" if t["accepted_in_time_share"] is None else f"{100 * t['accepted_in_time_share']:.1f}%"
    typer.echo(f"{when.isoformat()} (rules {inputs.rules_version or '—'}): {t['cases']} cases, {t['open']} open, "
               f"{t['overdue']} overdue, {share} accepted within SLA, median "
               f"{'—' if t['median_minutes_to_accept'] is None else t['median_minutes_to_accept']} min to accept")
    typer.echo(f"  requests: {t['requests_posted']} posted, {t['requests_answered']} answered, {t['requests_open']} open "
               f"({t['requests_overdue']} past the deadline), median {_or_dash(t['median_response_minutes'])} min to answer; "
               f"transfers: {t['transfers_received']} received, {t['transfers_in_progress']} in progress, median "
               f"{_or_dash(t['median_transfer_minutes'])} min transfer, {_or_dash(t['median_reception_minutes'])} min reception")
    for row in figures["streets"]:
        typer.echo(f"  {row['street']}: {row['cases']} cases, {row['open']} open, {row['overdue']} overdue")
    typer.echo(f"→ {out / 'report.html'}")


def _or_dash(value: object) -> str:
    return "—" if value is None else str(value)


def register(root: typer.Typer) -> None:
    """Add `report`."""
    root.command("report")(_report)
