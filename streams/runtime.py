"""What one worker knows besides its tables: active rules, risk regions, communities, places for sweeps.

The control side updates it (validated documents only, the last good version stays active); the
agents read it. Pure domain calls go to `pipeline/` and `geo/`; this module only holds and swaps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from geo.communities import CommunityIndex
from geo.errors import GeoError
from geo.load import load_communities, region_from_feature
from geo.regions import LEVEL_CODE, Region, RiskIndex
from geo.sweep import PlaceStore
from pipeline.errors import PipelineError
from pipeline.rules import Rules, parse_rules
from pipeline.settings import Settings
from streams.metrics import Metrics

__all__ = ["RegionChange", "Runtime", "utc_now"]

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RegionChange:
    """A region record applied to the index; `sweep` is true when it was newly designated or raised."""

    region_id: str
    region: Region | None
    sweep: bool


@dataclass
class Runtime:
    """The worker's in-process view of control data, rebuilt from control topics at start."""

    settings: Settings
    metrics: Metrics
    communities: CommunityIndex
    rules: Rules | None = None
    rules_source: str = ""
    regions: RiskIndex = field(default_factory=RiskIndex)
    places: PlaceStore = field(default_factory=PlaceStore)
    refusals: list[dict[str, str]] = field(default_factory=list)
    clock: Callable[[], datetime] = utc_now
    _region_records: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> Runtime:
        communities = CommunityIndex(load_communities(settings.path(settings.communities)))
        return cls(settings=settings, metrics=metrics or Metrics(), communities=communities)

    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.rules.windows.lookback) if self.rules else timedelta(days=14)

    @property
    def rules_version(self) -> str:
        return self.rules.version if self.rules else ""

    def _refuse(self, kind: str, reason: str, detail: str) -> None:
        self.metrics.control_refused.labels(kind=kind, reason=reason).inc()
        self.refusals.append({"kind": kind, "reason": reason, "detail": detail, "at": utc_now().isoformat()})
        del self.refusals[:-50]
        log.error("control refused kind=%s reason=%s detail=%s", kind, reason, detail)

    def apply_rules_document(self, raw: bytes | None, source: str) -> bool:
        """Validate a published rules document; switch to it, or keep the last good one and say why."""
        if raw is None:
            self._refuse("rules", "empty", f"{source}: an empty rules record does not replace the active rules")
            return False
        try:
            rules = parse_rules(raw.decode("utf-8"), source=source)
        except (PipelineError, UnicodeDecodeError, ValueError) as exc:
            self._refuse("rules", "invalid", str(exc))
            return False
        self.rules, self.rules_source = rules, source
        self.metrics.set_rules_version(rules.version)
        log.info("rules active version=%s source=%s", rules.version, source)
        return True

    def apply_region_record(self, key: bytes | None, raw: bytes | None) -> RegionChange | None:
        """Upsert a GeoJSON Feature, or remove the region on a tombstone; None when refused or unchanged."""
        region_id = key.decode("utf-8", "replace") if key else ""
        if raw is not None and self._region_records.get(region_id) == raw:
            return None
        if raw is None:
            self._region_records.pop(region_id, None)
            if region_id and region_id in self.regions:
                self.regions.remove(region_id)
            self.metrics.regions_active.set(len(self.regions))
            return RegionChange(region_id, None, sweep=False)
        try:
            region = region_from_feature(orjson.loads(raw))
        except (GeoError, orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
            self._refuse("region", "invalid", f"risk-regions record {region_id!r}: {exc}")
            return None
        previous = self.regions.get(region.id)
        self.regions.upsert(region)
        self._region_records[region_id] = raw
        self.metrics.regions_active.set(len(self.regions))
        raised = previous is None or LEVEL_CODE[region.level] > LEVEL_CODE[previous.level] or (
            region.effective_from < previous.effective_from
        )
        return RegionChange(region.id, region, sweep=raised)

    def load_regions_bulk(self, records: list[tuple[bytes | None, bytes | None]]) -> None:
        """Rebuild the index in one go from a full read of the control topic (the last record per key wins)."""
        latest: dict[bytes | None, bytes | None] = {}
        for key, value in records:
            latest[key] = value
        regions: list[Region] = []
        self._region_records = {}
        for key, value in latest.items():
            if value is None:
                continue
            try:
                regions.append(region_from_feature(orjson.loads(value)))
                self._region_records[(key or b"").decode("utf-8", "replace")] = value
            except (GeoError, orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
                self._refuse("region", "invalid", f"risk-regions record {key!r}: {exc}")
        self.regions = RiskIndex(regions)
        self.metrics.regions_active.set(len(self.regions))
