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
    from streams.contact_views import register_contact_views
    from streams.daily_report import register_report_views
    from streams.pages import register_pages

    register_api(app, agents)
    register_pages(app, agents)
    register_report_views(app, agents)
    register_contact_views(app, agents)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(agents.runtime.metrics.exposition(), content_type="text/plain; version=0.0.4")

    @app.page("/api/status")
    class StatusView(View):
        async def get(self, request: Request) -> Response:
            return self.json(status(agents))

    @app.page("/api/offsets")
    class OffsetsView(View):
        async def get(self, request: Request) -> Response:
            return self.json(consumer_offsets(app))


def status(agents: Agents) -> dict[str, Any]:
    """Counts, rules version and refusals of this worker, and whether its tables have been recovered."""
    rt = agents.runtime
    return {
        "rules_version": rt.rules_version,
        "rules_source": rt.rules_source,
        "regions": len(rt.regions),
        "places": len(rt.places),
        "recovered": agents.app.tables.recovery.completed.is_set(),
        "counts": dict(agents.counts),
        "tracing": dict(agents.tracing.counts) if agents.tracing is not None else {},
        "refusals": list(rt.refusals[-10:]),
    }


def consumer_offsets(app: faust.App) -> list[dict[str, Any]]:
    """Per assigned partition, the consumer's bookkeeping: read, committed, acked but uncommitted, in flight.

    What an operator looks at when a group's lag stops shrinking although the worker is idle.
    """
    consumer = app.consumer
    in_flight: dict[Any, list[int]] = {}
    for message in list(consumer.unacked):
        if not message.acked:
            in_flight.setdefault(message.tp, []).append(message.offset)
    rows = []
    for tp in sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition)):
        acked = sorted(consumer._acked.get(tp, ()))
        flying = in_flight.get(tp, [])
        rows.append({
            "topic": tp.topic, "partition": tp.partition,
            "read": consumer._read_offset.get(tp), "committed": consumer._committed_offset.get(tp),
            "acked_uncommitted": len(acked), "acked_min": acked[0] if acked else None,
            "acked_max": acked[-1] if acked else None,
            "in_flight": len(flying), "in_flight_min": min(flying) if flying else None,
        })
    return rows
