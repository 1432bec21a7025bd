"""Topics of ARCHITECTURE.md, named from the topic prefix; raw bytes on the hot paths (we decode with orjson)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from pipeline.settings import Settings

__all__ = ["INPUT_KINDS", "Topics", "declare_topics", "triage_topic_name"]

#: Short names of the three input topics, as `epiflow produce --topic` takes them.
INPUT_KINDS = ("declarations", "checkpoint-scans", "nat-results")


def triage_topic_name(prefix: str, community: str) -> str:
    """`<prefix>.triage.<community>` — one topic per community, so access can be granted per community."""
    return f"{prefix}.triage.{community}"


@dataclass
class Topics:
    """Every topic the worker reads or writes, plus a cache of the per-community triage topics."""

    app: faust.App
    settings: Settings
    inputs: dict[str, Any]
    person_events: Any
    cases: Any
    case_events: Any
    dead_letters: Any
    risk_regions: str
    rules: str
    _triage: dict[str, Any] = field(default_factory=dict)

    async def triage(self, community: str) -> Any:
        """The triage topic of a community (or `street.<street>`, `unassigned`), declared on first use."""
        topic = self._triage.get(community)
        if topic is None:
            topic = _raw(self.app, triage_topic_name(self.settings.topic_prefix, community), self.settings.partitions)
            await topic.maybe_declare()
            self._triage[community] = topic
        return topic


def _raw(app: faust.App, name: str, partitions: int, **kwargs: Any) -> Any:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", partitions=partitions,
        internal=True, **kwargs,
    )


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Create the topic objects; `internal=True` makes Faust declare each with our partition count at start."""
    p = settings.partitions
    return Topics(
        app=app,
        settings=settings,
        inputs={kind: _raw(app, settings.topic(kind), p) for kind in INPUT_KINDS},
        person_events=_raw(app, settings.topic("person-events"), p),
        cases=_raw(app, settings.topic("cases"), p),
        case_events=_raw(app, settings.topic("case-events"), p),
        dead_letters=_raw(app, settings.topic("dead-letters"), p),
        risk_regions=settings.topic("risk-regions"),
        rules=settings.topic("rules"),
    )
