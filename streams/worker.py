"""The composition root: settings → app, runtime, topics, agents, views. One call builds a worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust

from pipeline.settings import Settings
from streams.agents import Agents, register_agents
from streams.app import build_app
from streams.heap import limit_arenas, trim
from streams.metrics import Metrics
from streams.runtime import Runtime
from streams.topics import Topics, declare_topics
from streams.views import register_views

__all__ = ["HEAP_TRIM_INTERVAL_S", "FaustWorker", "Worker", "create_worker"]

log = logging.getLogger(__name__)

#: How often a worker hands freed heap back to the OS (seconds).
HEAP_TRIM_INTERVAL_S = 10.0


class FaustWorker(faust.Worker):
    """faust.Worker without its terminal spinner, whose log handler sets the root logger to DEBUG:
    every debug call in aiokafka, Faust and mode then built a log record per message, about a
    tenth of a busy worker's CPU, for a spinner that stops once the worker is up."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)


@dataclass
class Worker:
    """Everything one worker is made of; `app` is what Faust runs."""

    settings: Settings
    app: faust.App
    runtime: Runtime
    topics: Topics
    agents: Agents


def create_worker(settings: Settings, *, app_id: str | None = None, web_enabled: bool = True, **app_overrides: Any) -> Worker:
    """Wire a worker for `settings` (broker, store, topic prefix, files) without starting it."""
    if settings.broker.startswith("memory://") and app_overrides.get("processing_guarantee") == "exactly_once":
        raise ValueError("exactly_once is not available on memory:// (at-least-once only); use kafka://")
    for noisy in ("aiokafka", "kafka"):
        if logging.getLogger(noisy).getEffectiveLevel() < logging.WARNING:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    limit_arenas()
    app = build_app(settings, app_id=app_id, web_enabled=web_enabled, **app_overrides)
    runtime = Runtime.from_settings(settings, Metrics())
    topics = declare_topics(app, settings)
    agents = register_agents(app, runtime, topics)
    register_views(app, agents)

    @app.timer(interval=HEAP_TRIM_INTERVAL_S)
    async def heap_trim() -> None:
        trim()

    return Worker(settings=settings, app=app, runtime=runtime, topics=topics, agents=agents)
