"""Topics of ARCHITECTURE.md, named from the topic prefix; raw bytes on the hot paths (we decode with orjson)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import faust

from pipeline.inputs import TOPICS
from pipeline.settings import Settings

__all__ = ["INPUT_KINDS", "Topics", "declare_topics", "street_topic_name", "topic_part", "triage_topic_name"]

#: Short names of the three input topics, as `epiflow produce --topic` takes them.
INPUT_KINDS = TOPICS


_TOPIC_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def topic_part(name: str) -> str:
    """A name as Kafka allows it in a topic (ASCII letters, digits, `._-`): as is, or `x` + a stable digest.

    Community codes are already safe; street names are often Chinese, so `翠苑街道` becomes `x3f0c…`.
    """
    if _TOPIC_SAFE.match(name) and len(name) <= 100:
        return name
    return "x" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]


def triage_topic_name(prefix: str, community: str) -> str:
    """`<prefix>.triage.<community>` — one topic per community, so access can be granted per community."""
    return f"{prefix}.triage.{community}"


def street_topic_name(prefix: str, street: str) -> str:
    """`<prefix>.triage.street.<street>` for escalations; non-ASCII street names are digested (`topic_part`)."""
    return f"{prefix}.triage.street.{topic_part(street)}"


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
        """The triage topic of a community (or `unassigned`), declared on first use."""
        return await self._declared(triage_topic_name(self.settings.topic_prefix, topic_part(community)))

    async def street(self, street: str) -> Any:
        """The escalation topic of a street, declared on first use."""
        return await self._declared(street_topic_name(self.settings.topic_prefix, street))

    async def _declared(self, name: str) -> Any:
        topic = self._triage.get(name)
        if topic is None:
            topic = _raw(self.app, name, self.settings.partitions)
            await topic.maybe_declare()
            self._triage[name] = topic
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
