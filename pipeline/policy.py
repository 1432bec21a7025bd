"""Policy consultation: what a traveler arriving from a point would be told, before the trip.

The point is treated as a stay at `at`, followed by a declaration arriving at `at` with a negative NAT
(unless `with_negative_nat=False`), and the rules are run on that hypothetical person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from geo.regions import RiskIndex
from pipeline.conditions import LEVEL_NAMES, Facts, Hit
from pipeline.errors import PipelineError
from pipeline.events import Reason
from pipeline.rules import Rules
from pipeline.state import DeclarationInfo, Nat, PersonState, Place
from pipeline.triage import UNASSIGNED, decide

__all__ = ["Policy", "policy_for"]


@dataclass(frozen=True, slots=True)
class Policy:
    """The action for a traveler from a point, with its texts, duration and the reasons."""

    action: str
    severity: int
    duration_days: int | None
    text_zh: str
    text_en: str
    region_id: str | None
    region_name: str | None
    level: str | None
    reasons: tuple[Reason, ...]
    rules_version: str

    def to_json(self) -> dict:
        return {
            "action": self.action,
            "severity": self.severity,
            "duration_days": self.duration_days,
            "text": {"zh": self.text_zh, "en": self.text_en},
            "region": None if self.region_id is None else {"id": self.region_id, "name": self.region_name, "level": self.level},
            "reasons": [r.model_dump(mode="json", exclude_none=True) for r in self.reasons],
            "rules_version": self.rules_version,
        }


def policy_for(lon: float, lat: float, at: datetime, rules: Rules, regions: RiskIndex, *, with_negative_nat: bool = True) -> Policy:
    """The action a traveler who was at (lon, lat) at `at` and arrives then would get, and why."""
    if not (isinstance(lon, int | float) and -180.0 <= lon <= 180.0):
        raise PipelineError(f"lon was {lon!r} but is expected to be a number in [-180, 180]")
    if not (isinstance(lat, int | float) and -90.0 <= lat <= 90.0):
        raise PipelineError(f"lat was {lat!r} but is expected to be a number in [-90, 90]")
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise PipelineError(f"at was {at!r} but is expected to be a timezone-aware datetime")
    t = int(at.timestamp())
    place = Place("policy", 0, "stop", t, t, float(lon), float(lat), f"({lon:.4f}, {lat:.4f})")
    nats = (Nat("policy#nat", t, t, "negative", "assumed"),) if with_negative_nat else ()
    state = PersonState(
        person_key="policy",
        newest=t,
        newest_id="policy",
        declaration=DeclarationInfo("policy", t, t, float(lon), float(lat)),
        nats=nats,
        places=(place,),
    )
    found = regions.lookup_many([lon], [lat], [t], timedelta(seconds=rules.windows.pre_designation))
    hits: dict[int, Hit] = {}
    if found.level[0]:
        region = regions.get(found.region_id[0])
        name = region.name if region is not None else str(found.region_id[0])
        hits[0] = Hit(int(found.level[0]), found.region_id[0], name, int(found.matched_at[0]))
    verdict = decide(Facts(state, t, rules.tz, hits, UNASSIGNED, None), rules, at)
    action = rules.actions[verdict.action]
    return Policy(
        action=action.name,
        severity=action.severity,
        duration_days=action.duration_days,
        text_zh=action.text_zh,
        text_en=action.text_en,
        region_id=None if not hits else hits[0].region_id,
        region_name=None if not hits else hits[0].region_name,
        level=None if not hits else LEVEL_NAMES[hits[0].level],
        reasons=verdict.reasons,
        rules_version=rules.version,
    )
