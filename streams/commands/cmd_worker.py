"""`epiflow worker`: run one Faust worker on kafka:// or the embedded memory:// broker."""

from __future__ import annotations

import typer

from pipeline.settings import load_settings


def _worker(
    broker: str = typer.Option(None, help="kafka://host:port or memory:// (default from settings)"),
    store: str = typer.Option(None, help="table store: memory:// or rocksdb://"),
    web_port: int = typer.Option(None, help="port of the worker's web server"),
    web_host: str = typer.Option(None, help="address the web server binds"),
    insecure_demo_secret: bool = typer.Option(False, "--insecure-demo-secret", help="allow the demo secret on kafka://"),
    loglevel: str = typer.Option("info", help="log level"),
) -> None:
    """Run a worker until SIGINT/SIGTERM; state comes back from changelogs on restart."""
    from streams.worker import FaustWorker, create_worker

    settings = load_settings(broker=broker, store=store, web_port=web_port, web_host=web_host,
                             insecure_demo_secret=insecure_demo_secret or None)
    worker = create_worker(settings)
    # web host and port are app settings (build_app); faust.Worker takes no such arguments
    FaustWorker(worker.app, loglevel=loglevel).execute_from_commandline()


def register(root: typer.Typer) -> None:
    """Add `worker`."""
    root.command("worker")(_worker)
