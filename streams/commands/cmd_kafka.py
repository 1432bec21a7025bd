"""`epiflow kafka grant|grants`: principals and ACLs on a secured Kafka cluster, one role at a time."""

from __future__ import annotations

import typer

from pipeline.errors import PipelineError
from pipeline.settings import load_settings

_app = typer.Typer(help="Principals and ACLs on a secured Kafka cluster (SASL SCRAM, ACLs).", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@_app.command("grant")
def grant(
    worker: str = typer.Option(None, "--worker", metavar="NAME", help="a worker: its group, its topics and internal topics"),
    community: str = typer.Option(None, "--community", metavar="CODE", help="a community: READ on its own triage topic only"),
    checkpoint: str = typer.Option(None, "--checkpoint", metavar="ID", help="a checkpoint: WRITE on checkpoint-scans"),
    admin: str = typer.Option(None, "--admin", metavar="NAME", help="an operator: grants, publishing, every epiflow topic"),
    broker: str = typer.Option(None, help="kafka://host:port (default from settings)"),
) -> None:
    """Create a principal with exactly the ACLs of its role, and print its new password once.

    Run with an administrator's credentials (EPIFLOW_KAFKA_SASL_USERNAME / _PASSWORD). Granting an
    existing principal again replaces its password.
    """
    from kafka.errors import KafkaError

    from streams.grants import apply_grant, grant_for

    chosen = [(role, name) for role, name in
              (("worker", worker), ("community", community), ("checkpoint", checkpoint), ("admin", admin)) if name]
    if len(chosen) != 1:
        _fail("give exactly one of --worker NAME, --community CODE, --checkpoint ID, --admin NAME")
    role, name = chosen[0]
    try:
        settings = load_settings(broker=broker, insecure_demo_secret=True)
        planned = grant_for(settings, role, name)
        password = apply_grant(settings, planned)
    except (PipelineError, KafkaError) as exc:
        _fail(str(exc))
    typer.echo(f"principal {planned.principal} ({role})")
    for acl in planned.acls:
        typer.echo(f"  allow {acl}")
    typer.echo(f"password (shown once, store it now): {password}")


@_app.command("grants")
def grants(broker: str = typer.Option(None, help="kafka://host:port (default from settings)")) -> None:
    """List every principal and the ACLs it holds (prefixed resources end in `*`)."""
    from kafka.errors import KafkaError

    from streams.grants import list_grants

    try:
        found = list_grants(load_settings(broker=broker, insecure_demo_secret=True))
    except (PipelineError, KafkaError) as exc:
        _fail(str(exc))
    for principal, acls in found.items():
        typer.echo(principal)
        for acl in acls:
            typer.echo(f"  allow {acl}")
        if not acls:
            typer.echo("  (no ACLs)")


def register(root: typer.Typer) -> None:
    """Add `kafka`."""
    root.add_typer(_app, name="kafka")
