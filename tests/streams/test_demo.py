"""`epiflow demo` and the first run of a fresh checkout: data directories with their parents, a readable screen."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console

from pipeline.settings import load_settings
from streams.commands.cmd_demo import demo_problems
from streams.demo import LOG_FILE_NAME, run_demo
from streams.memory import drop_broker
from streams.worker import create_worker
from tools.ports import free_port


def test_worker_creates_its_data_directory_with_parents(tmp_path: Path, run_async: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
    data_dir = tmp_path / "fresh-clone" / ".cache" / "epiflow-data"
    broker = f"memory://datadir-{uuid.uuid4().hex[:8]}"
    settings = load_settings(broker=broker, data_dir=str(data_dir), web_port=free_port())

    tables: list[Path] = []

    async def start_and_stop() -> bool:
        worker = create_worker(settings, web_enabled=False)
        tables.append(Path(worker.app.conf.tabledir))
        await worker.app.start()
        try:
            await asyncio.wait_for(worker.agents.control_ready.wait(), 60)
            return worker.runtime.rules is not None
        finally:
            await worker.app.stop()

    try:
        assert run_async(start_and_stop())
    finally:
        drop_broker(broker)
    assert data_dir.is_dir()
    assert tables[0].is_dir() and tables[0].is_relative_to(data_dir)


def test_demo_screen_shows_the_table_and_the_log_holds_the_dead_letters(
    run_async: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    broker = f"memory://demo-{uuid.uuid4().hex[:8]}"
    settings = load_settings(broker=broker, web_port=free_port())
    screen = io.StringIO()
    console = Console(file=screen, width=140, force_terminal=False)
    try:
        summary = run_async(run_demo(settings, duration=3.0, rate=300, seed=7, console=console))
    finally:
        drop_broker(broker)

    assert demo_problems(summary) == []
    assert summary["dead_lettered"] > 0 and summary["flagged"] > 0
    log_file = Path(summary["log_file"])
    assert log_file.name == LOG_FILE_NAME
    logged = log_file.read_text(encoding="utf-8")
    assert logged.count("dead letter topic=") == summary["dead_lettered"]
    shown = screen.getvalue()
    assert "dead letter topic=" not in shown
    assert f"log in {log_file}" in shown
    assert "dead letters by reason" in shown and "triage messages by action" in shown


def test_demo_fails_when_it_flags_nobody_or_does_not_catch_up() -> None:
    fine = {"events_in": 10, "forwarded": 9, "dead_lettered": 1, "sent": 10, "joined": 9, "person_events": 9,
            "drained": True, "drain_limit_s": 15.0, "flagged": 3, "log_file": "/tmp/demo.log"}
    assert demo_problems(fine) == []
    assert any("nobody was flagged" in p for p in demo_problems({**fine, "flagged": 0}))
    assert any("timed out" in p for p in demo_problems({**fine, "drained": False, "events_in": 8, "forwarded": 7}))
    assert any("accounting" in p for p in demo_problems({**fine, "forwarded": 8}))
