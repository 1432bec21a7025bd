"""Web views on the worker's port: `/metrics` for Prometheus and `/api/status` for a quick look."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from streams.agents import Agents

__all__ = ["register_views"]


def register_views(app: faust.App, agents: Agents) -> None:
    """Declare the worker's read-only views, then the API and the pages."""
    from streams.api import register_api
    from streams.pages import register_pages

    register_api(app, agents)
    register_pages(app, agents)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(agents.runtime.metrics.exposition(), content_type="text/plain; version=0.0.4")

    @app.page("/api/status")
    class StatusView(View):
        async def get(self, request: Request) -> Response:
            return self.json(status(agents))


def status(agents: Agents) -> dict[str, Any]:
    """Counts, rules version and refusals of this worker."""
    rt = agents.runtime
    return {
        "rules_version": rt.rules_version,
        "rules_source": rt.rules_source,
        "regions": len(rt.regions),
        "places": len(rt.places),
        "counts": dict(agents.counts),
        "refusals": list(rt.refusals[-10:]),
    }
