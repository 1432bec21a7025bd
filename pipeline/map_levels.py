"""The five map levels of the command centre (`config/map_levels.yaml`) and the level of each area.

Pure: a level document, plus per community its residents, the risk regions overlapping it and its open
cases by severity, in; a level (0 = the last, calmest, … 4 = the first) per community or street out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo.communities import Community
from geo.regions import LEVEL_CODE, RiskIndex
from pipeline.cases import Case
from pipeline.errors import PipelineError
from pipeline.reports import is_open

__all__ = [
    "AreaFacts",
    "MapLevel",
    "MapLevels",
    "area_facts",
    "level_of",
    "levels_by_area",
    "load_map_levels",
    "parse_map_levels",
    "region_levels",
    "street_facts",
]

Colour = Literal["red", "orange", "yellow", "blue", "green"]
RegionLevel = Literal["low", "medium", "high"]
_COLOUR_ORDER = ("red", "orange", "yellow", "blue", "green")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Doc):
    zh: Annotated[str, Field(min_length=1)]
    en: Annotated[str, Field(min_length=1)]


class CasesTest(_Doc):
    min_severity: Annotated[int, Field(ge=0)]
    per_1000: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class MapLevel(_Doc):
    """One level: its colour, name and meaning, and the tests that put an area on it."""

    colour: Colour
    name: Text
    meaning: Text
    region: RegionLevel | None = None
    cases: CasesTest | None = None

    def threshold(self, lang: Literal["zh", "en"] = "zh") -> str:
        """The level's tests in words, e.g. `区内有高风险区；或每千人 ≥ 0.5 例（严重度 ≥ 50）`."""
        region = {"high": ("高", "high"), "medium": ("中", "medium"), "low": ("低", "low")}
        parts = []
        if self.region is not None:
            zh, en = region[self.region]
            up = "" if self.region == "high" else ("及以上" if lang == "zh" else " or higher")
            parts.append(f"区内有{zh}风险区{up}" if lang == "zh" else f"a {en}-risk region{up} inside")
        if self.cases is not None:
            c = self.cases
            if c.per_1000 == 0:
                parts.append(f"有严重度 ≥ {c.min_severity} 的未结案件" if lang == "zh"
                             else f"any open case of severity ≥ {c.min_severity}")
            else:
                parts.append(f"每千名居民 ≥ {c.per_1000:g} 例严重度 ≥ {c.min_severity} 的未结案件" if lang == "zh"
                             else f"≥ {c.per_1000:g} open cases of severity ≥ {c.min_severity} per 1,000 residents")
        if not parts:
            return "其余情况" if lang == "zh" else "everything else"
        return ("；或" if lang == "zh" else "; or ").join(parts)


class MapLevels(_Doc):
    """Five levels, most severe first; the last has no test."""

    levels: tuple[MapLevel, MapLevel, MapLevel, MapLevel, MapLevel]

    @model_validator(mode="after")
    def _ordered(self) -> MapLevels:
        colours = tuple(level.colour for level in self.levels)
        if colours != _COLOUR_ORDER:
            raise ValueError(f"levels are coloured {list(colours)} but are expected in the order {list(_COLOUR_ORDER)}")
        last = self.levels[-1]
        if last.region is not None or last.cases is not None:
            raise ValueError("the last level ('green') is what is left and must have no region or cases test")
        if any(level.region is None and level.cases is None for level in self.levels[:-1]):
            raise ValueError("every level but the last needs a region or a cases test")
        return self

    def by_number(self, number: int) -> MapLevel:
        """Level 4 is the first (red) … level 0 the last (green)."""
        if not 0 <= number < len(self.levels):
            raise PipelineError(f"map level was {number!r} but is expected to be 0..{len(self.levels) - 1}")
        return self.levels[len(self.levels) - 1 - number]


def parse_map_levels(text: str, source: str = "<map levels>") -> MapLevels:
    """Validate a level document; a bad one is a `PipelineError` naming the source and the problem."""
    try:
        document = yaml.safe_load(text)
        return MapLevels.model_validate(document)
    except yaml.YAMLError as exc:
        raise PipelineError(f"{source}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise PipelineError(f"{source}: {problems}") from None


def load_map_levels(path: str | Path) -> MapLevels:
    """`parse_map_levels` on a file."""
    p = Path(path)
    if not p.exists():
        raise PipelineError(f"{p}: map level file not found")
    return parse_map_levels(p.read_text(encoding="utf-8"), str(p))


@dataclass(frozen=True)
class AreaFacts:
    """What a level is decided on, for one community or one street."""

    code: str
    population: int | None
    region_level: int = 0
    open_by_severity: Mapping[int, int] = field(default_factory=dict)


def level_of(facts: AreaFacts, levels: MapLevels) -> int:
    """The area's level: 4 for the first level whose test holds, … 0 when none does."""
    residents = facts.population if facts.population else 1000
    top = len(levels.levels) - 1
    for i, level in enumerate(levels.levels[:-1]):
        if level.region is not None and facts.region_level >= LEVEL_CODE[level.region]:
            return top - i
        if level.cases is not None:
            count = sum(n for s, n in facts.open_by_severity.items() if s >= level.cases.min_severity)
            if count >= 1 and count * 1000 / residents >= level.cases.per_1000:
                return top - i
    return 0


def levels_by_area(facts: Iterable[AreaFacts], levels: MapLevels) -> dict[str, int]:
    """`level_of` for each area, by code."""
    return {f.code: level_of(f, levels) for f in facts}


def region_levels(communities: Sequence[Community], regions: RiskIndex, at: datetime) -> dict[str, int]:
    """Per community code, the highest level (1 low .. 3 high) of the regions in force at `at` overlapping it."""
    live = regions.in_force_regions(at, at)
    if not live or not communities:
        return {}
    tree = shapely.STRtree(np.array([r.geometry for r in live], dtype=object))
    shapes = np.array([c.geometry for c in communities], dtype=object)
    which, hit = tree.query(shapes, predicate="intersects")
    out: dict[str, int] = {}
    for ci, ri in zip(which.tolist(), hit.tolist(), strict=True):
        code = communities[ci].code
        out[code] = max(out.get(code, 0), live[ri].level_code)
    return out


def area_facts(communities: Sequence[Community], cases: Iterable[Case], regions: Mapping[str, int]) -> list[AreaFacts]:
    """Per community its residents, its highest overlapping region level and its open cases by severity."""
    by: dict[str, Counter[int]] = {}
    for case in cases:
        if is_open(case) and case.severity > 0:
            by.setdefault(case.community, Counter())[case.severity] += 1
    return [AreaFacts(c.code, c.population, regions.get(c.code, 0), dict(by.get(c.code, {}))) for c in communities]


def street_facts(communities: Sequence[Community], facts: Iterable[AreaFacts]) -> list[AreaFacts]:
    """The communities' facts summed per street (residents and cases added, the highest region level kept)."""
    street_of = {c.code: c.street for c in communities}
    sums: dict[str, tuple[int | None, int, Counter[int]]] = {}
    for f in facts:
        street = street_of.get(f.code)
        if street is None:
            continue
        people, region, cases = sums.get(street, (None, 0, Counter()))
        if f.population is not None:
            people = (people or 0) + f.population
        cases.update(f.open_by_severity)
        sums[street] = (people, max(region, f.region_level), cases)
    return [AreaFacts(street, people, region, dict(cases)) for street, (people, region, cases) in sums.items()]
