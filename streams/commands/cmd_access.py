"""`epiflow access add|list`: make API tokens (printed once, stored hashed in the access file) and list grants."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import typer

from pipeline.access import AccessError, AccessList, access_file_text, load_access, new_token
from pipeline.settings import load_settings

_app = typer.Typer(help="API tokens: checkpoints, labs, communities, the command centre.", no_args_is_help=True)


def _path(file: Path | None) -> Path:
    settings = load_settings()
    return file if file is not None else settings.path(settings.access)


def _write(path: Path, access: AccessList) -> None:
    """Write atomically (temp file + rename) so a running worker never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".access-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(access_file_text(access.grants))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@_app.command("add")
def add(
    checkpoint: str = typer.Option(None, "--checkpoint", help="checkpoint id the token may post scans for"),
    lab: str = typer.Option(None, "--lab", help="lab id the token may post NAT results for"),
    community: str = typer.Option(None, "--community", help="community code whose queue the token opens"),
    enterprise: str = typer.Option(None, "--enterprise", help="key enterprise id that may post its key-group rosters"),
    admin: bool = typer.Option(False, "--admin", help="command centre: dashboard, every queue, declarations"),
    label: str = typer.Option("", help="a note stored with the grant (who holds it)"),
    file: Path = typer.Option(None, "--file", help="access file (default: settings `access` / EPIFLOW_ACCESS)"),
) -> None:
    """Create a token; it is printed once and only its SHA-256 hash is stored."""
    options = (("checkpoint", checkpoint), ("lab", lab), ("community", community), ("enterprise", enterprise))
    chosen = [(r, s) for r, s in options if s]
    if admin:
        chosen.append(("admin", ""))
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --checkpoint ID, --lab ID, --community CODE, --enterprise ID, --admin")
    role, subject = chosen[0]
    path = _path(file)
    try:
        access = load_access(path) if path.exists() else AccessList(())
        token = new_token()
        _write(path, access.add(role, subject, token, created_at=datetime.now(UTC), label=label))
    except AccessError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(token)
    typer.echo(f"{role}{' ' + subject if subject else ''}: token above stored hashed in {path}; it is not shown again.", err=True)


@_app.command("list")
def list_grants(file: Path = typer.Option(None, "--file", help="access file")) -> None:
    """One line per grant: role, subject, created, label (never tokens)."""
    path = _path(file)
    try:
        access = load_access(path)
    except AccessError as exc:
        raise typer.BadParameter(str(exc)) from None
    for g in access.grants:
        typer.echo(f"{g.role}\t{g.subject or '-'}\t{g.grant_id}\t{g.created_at}\t{g.label}")


def register(root: typer.Typer) -> None:
    """Add `access`."""
    root.add_typer(_app, name="access")
