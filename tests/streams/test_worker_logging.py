"""The worker process's logging: a debug call on the per-message path must cost no log record."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from pipeline.settings import load_settings
from streams.worker import FaustWorker, create_worker


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Faust's logging setup replaces the root logger's handlers and level; put them back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _debug_enabled_after_setup(worker_type: type[faust.Worker]) -> bool:
    worker = create_worker(load_settings(broker="memory://logging-test"), web_enabled=False)
    worker_type(worker.app, loglevel="warning")._setup_logging()
    return logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)


def test_faust_worker_with_its_spinner_turns_on_debug_records(restored_logging: None) -> None:
    assert _debug_enabled_after_setup(faust.Worker)


def test_our_worker_at_warning_builds_no_debug_records(restored_logging: None) -> None:
    assert not _debug_enabled_after_setup(FaustWorker)
    assert logging.getLogger().level == logging.WARNING
