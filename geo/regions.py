"""Risk regions and `RiskIndex`: which region of the highest level covered a point at a given time."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, get_args

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike
from shapely.geometry.base import BaseGeometry

from geo._grid import GridIndex, covering_pairs
from geo.errors import GeoValueError, InvalidGeometryError, UnknownRegionError

__all__ = [
    "Level",
    "LEVELS",
    "LEVEL_CODE",
    "LEVEL_NAME",
    "Region",
    "LookupResult",
    "RiskIndex",
    "to_epoch_seconds",
]

Level = Literal["high", "medium", "low"]
LEVELS: tuple[str, ...] = get_args(Level)
LEVEL_CODE: dict[str, int] = {"low": 1, "medium": 2, "high": 3}
LEVEL_NAME: dict[int, str] = {code: name for name, code in LEVEL_CODE.items()}

_US = 1_000_000
_OPEN = np.iinfo(np.int64).max
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _check_polygonal(geometry: object, what: str) -> None:
    if not isinstance(geometry, BaseGeometry) or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        kind = getattr(geometry, "geom_type", type(geometry).__name__)
        raise InvalidGeometryError(f"{what}: geometry is {kind!r}, expected a Polygon or MultiPolygon")
    if geometry.is_empty:
        raise InvalidGeometryError(f"{what}: geometry is empty")


def _check_aware(value: object, what: str) -> None:
    if not isinstance(value, datetime):
        raise GeoValueError(f"{what} is {value!r}, expected a timezone-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise GeoValueError(f"{what} is {value.isoformat()!r}, a naive datetime; give it a UTC offset")


@dataclass(frozen=True)
class Region:
    """A risk region: its level and the period it is in force, `[effective_from, effective_until)`."""

    id: str
    level: Level
    name: str
    effective_from: datetime
    effective_until: datetime | None
    geometry: BaseGeometry

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise GeoValueError(f"region id is {self.id!r}, expected a non-empty string")
        if self.level not in LEVEL_CODE:
            raise GeoValueError(
                f"region {self.id!r}: level is {self.level!r}, expected one of {list(LEVELS)}"
            )
        _check_aware(self.effective_from, f"region {self.id!r}: effective_from")
        if self.effective_until is not None:
            _check_aware(self.effective_until, f"region {self.id!r}: effective_until")
            if self.effective_until < self.effective_from:
                raise GeoValueError(
                    f"region {self.id!r}: effective_until {self.effective_until.isoformat()!r} is before "
                    f"effective_from {self.effective_from.isoformat()!r}"
                )
        _check_polygonal(self.geometry, f"region {self.id!r}")

    @property
    def level_code(self) -> int:
        """1 (low), 2 (medium) or 3 (high)."""
        return LEVEL_CODE[self.level]

    def in_force(self, t: datetime, pre_designation: timedelta = timedelta(0)) -> bool:
        """True when a visit at `t` counts: `effective_from - pre_designation <= t < effective_until`."""
        if t < self.effective_from - pre_designation:
            return False
        return self.effective_until is None or t < self.effective_until

    def lifted(self, at: datetime) -> Region:
        """A copy whose risk period ends at `at`."""
        return dataclasses.replace(self, effective_until=at)


class LookupResult(NamedTuple):
    """Aligned with the input points: level code (0 = none), region id (None) and its effective_from (-1)."""

    level: np.ndarray
    region_id: np.ndarray
    matched_at: np.ndarray


def _micros(t: datetime) -> int:
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def _td_micros(td: timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * _US + td.microseconds


def _ceil_div(a: np.ndarray | int, b: int) -> np.ndarray | int:
    return -((-a) // b)


def to_epoch_seconds(t: ArrayLike) -> np.ndarray:
    """Times as int64 epoch seconds (UTC): from ints, floats, datetime64 or tz-aware datetimes.

    Sub-second parts are floored, so a visit never counts before it happened.
    """
    arr = np.asarray(t)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            bad = arr[~np.isfinite(arr)][0]
            raise GeoValueError(f"time {bad!r} is not finite, expected epoch seconds")
        return np.floor(arr).astype(np.int64)
    if arr.dtype.kind == "M":
        if np.isnat(arr).any():
            raise GeoValueError("time array holds NaT, expected every time to be set")
        return arr.astype("datetime64[s]").astype(np.int64)
    if arr.dtype.kind == "O" or isinstance(t, pd.Series):
        flat = arr.reshape(-1)
        for value in flat:
            if isinstance(value, datetime) and value.tzinfo is None:
                raise GeoValueError(
                    f"time {value.isoformat()!r} is naive, expected a timezone-aware datetime"
                )
        stamps = pd.to_datetime(pd.Series(flat), utc=True)
        if stamps.isna().any():
            raise GeoValueError(f"time {flat[int(np.flatnonzero(stamps.isna())[0])]!r} is not a time")
        seconds = stamps.astype("datetime64[s, UTC]").astype(np.int64).to_numpy()
        return seconds.reshape(arr.shape)
    raise GeoValueError(f"times have dtype {arr.dtype}, expected epoch seconds, datetime64 or datetimes")


def _as_coords(lon: ArrayLike, lat: ArrayLike, t: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(lon, dtype=np.float64).reshape(-1)
    y = np.asarray(lat, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise GeoValueError(f"lon has {x.size} values and lat {y.size}, expected the same number")
    seconds = to_epoch_seconds(t).reshape(-1)
    if seconds.size == 1 and x.size != 1:
        seconds = np.full(x.size, seconds[0], dtype=np.int64)
    if seconds.size != x.size:
        raise GeoValueError(f"t has {seconds.size} values for {x.size} points, expected one per point or one")
    return x, y, seconds


class _Slots:
    """Column arrays over region slots; a replaced region leaves a dead slot until the next rebuild."""

    def __init__(self, regions: list[Region]) -> None:
        self.regions = regions
        n = len(regions)
        self.geoms = np.array([r.geometry for r in regions], dtype=object) if n else np.empty(0, dtype=object)
        shapely.prepare(self.geoms)
        self.level = np.array([r.level_code for r in regions], dtype=np.int8)
        self.from_us = np.array([_micros(r.effective_from) for r in regions], dtype=np.int64)
        self.until_us = np.array(
            [_OPEN if r.effective_until is None else _micros(r.effective_until) for r in regions],
            dtype=np.int64,
        )
        self.ids = np.array([r.id for r in regions], dtype=object)
        self.alive = np.ones(n, dtype=bool)


class RiskIndex:
    """Risk regions with a spatial index, answering "which region covered this point at time t".

    Updates are cheap: `upsert` appends to a small overflow list that is scanned directly and
    folded into the grid index once it grows; `lift` only moves an end time.
    """

    _REBUILD_MIN = 64

    def __init__(self, regions: Iterable[Region] = ()) -> None:
        self._by_id: dict[str, Region] = {}
        for region in regions:
            if not isinstance(region, Region):
                raise GeoValueError(f"RiskIndex takes Region objects, got {type(region).__name__}")
            self._by_id[region.id] = region
        self._rebuild()

    # -- maintenance -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        self._slots = _Slots(list(self._by_id.values()))
        self._slot_of: dict[str, int] = {r.id: i for i, r in enumerate(self._slots.regions)}
        self._grid = GridIndex(self._slots.geoms)
        self._indexed = len(self._slots.regions)
        self._pending: list[int] = []
        self._pending_bounds: dict[int, tuple[float, float, float, float]] = {}
        self._dead = 0
        self._rank: np.ndarray | None = None

    def _append_slot(self, region: Region) -> int:
        s = self._slots
        geom = np.array([region.geometry], dtype=object)
        shapely.prepare(geom)
        s.regions.append(region)
        s.geoms = np.concatenate([s.geoms, geom])
        s.level = np.append(s.level, np.int8(region.level_code))
        s.from_us = np.append(s.from_us, _micros(region.effective_from))
        until = _OPEN if region.effective_until is None else _micros(region.effective_until)
        s.until_us = np.append(s.until_us, np.int64(until))
        s.ids = np.append(s.ids, np.array([region.id], dtype=object))
        s.alive = np.append(s.alive, True)
        return len(s.regions) - 1

    def upsert(self, region: Region) -> None:
        """Add `region`, or replace the region with the same id."""
        if not isinstance(region, Region):
            raise GeoValueError(f"upsert takes a Region, got {type(region).__name__}")
        old_slot = self._slot_of.get(region.id)
        self._by_id[region.id] = region
        self._rank = None
        if old_slot is not None and self._slots.regions[old_slot].geometry is region.geometry:
            self._set_slot(old_slot, region)
            return
        if old_slot is not None:
            self._slots.alive[old_slot] = False
            self._dead += 1
            self._pending = [p for p in self._pending if p != old_slot]
        slot = self._append_slot(region)
        self._slot_of[region.id] = slot
        self._pending.append(slot)
        self._pending_bounds[slot] = region.geometry.bounds
        limit = max(self._REBUILD_MIN, len(self._by_id) // 20)
        if len(self._pending) > limit or self._dead > max(self._REBUILD_MIN, len(self._by_id) // 4):
            self._rebuild()

    def _set_slot(self, slot: int, region: Region) -> None:
        s = self._slots
        s.regions[slot] = region
        s.level[slot] = region.level_code
        s.from_us[slot] = _micros(region.effective_from)
        s.until_us[slot] = _OPEN if region.effective_until is None else _micros(region.effective_until)

    def lift(self, region_id: str, at: datetime) -> None:
        """End region `region_id` at `at` (sets `effective_until`)."""
        region = self._by_id.get(region_id)
        if region is None:
            raise UnknownRegionError(f"region {region_id!r} is not in the index, so it cannot be lifted")
        _check_aware(at, f"lift time for region {region_id!r}")
        self.upsert(region.lifted(at))

    def remove(self, region_id: str) -> None:
        """Forget region `region_id` altogether (a tombstone on the control topic)."""
        if region_id not in self._by_id:
            raise UnknownRegionError(f"region {region_id!r} is not in the index, so it cannot be removed")
        del self._by_id[region_id]
        slot = self._slot_of.pop(region_id)
        self._slots.alive[slot] = False
        self._pending = [p for p in self._pending if p != slot]
        self._dead += 1
        self._rank = None

    def get(self, region_id: str) -> Region | None:
        """The region with this id, or None."""
        return self._by_id.get(region_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Region]:
        return iter(list(self._by_id.values()))

    def __contains__(self, region_id: object) -> bool:
        return region_id in self._by_id

    # -- lookups -----------------------------------------------------------------------------
    def _ranks(self) -> np.ndarray:
        """Preference per slot: higher level first, then earlier effective_from, then id."""
        if self._rank is None:
            s = self._slots
            id_order = np.unique(s.ids.astype(str), return_inverse=True)[1] if len(s.ids) else s.ids
            order = np.lexsort((id_order, s.from_us, -s.level.astype(np.int64)))
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order), dtype=np.int64)
            self._rank = rank
        return self._rank

    def _candidate_pairs(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pi, ri = self._grid.candidates(x, y)
        if self._pending:
            extra_p = [pi]
            extra_r = [ri]
            for slot in self._pending:
                minx, miny, maxx, maxy = self._pending_bounds[slot]
                hit = np.flatnonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))
                extra_p.append(hit)
                extra_r.append(np.full(hit.size, slot, dtype=np.int64))
            pi = np.concatenate(extra_p)
            ri = np.concatenate(extra_r)
        if self._dead:
            keep = self._slots.alive[ri]
            pi, ri = pi[keep], ri[keep]
        return pi, ri

    def lookup_many(
        self, lon: ArrayLike, lat: ArrayLike, t: ArrayLike, pre_designation: timedelta = timedelta(0)
    ) -> LookupResult:
        """For each point and time, the highest-level region in force covering it (vectorised).

        `t` is int64 epoch seconds (UTC), datetime64 or tz-aware datetimes, one per point or one
        for all. Ties within a level go to the earliest `effective_from`, then the smallest id.
        """
        if not isinstance(pre_designation, timedelta) or pre_designation < timedelta(0):
            raise GeoValueError(f"pre_designation is {pre_designation!r}, expected a timedelta >= 0")
        x, y, secs = _as_coords(lon, lat, t)
        n = x.size
        level = np.zeros(n, dtype=np.int8)
        region_id = np.full(n, None, dtype=object)
        matched_at = np.full(n, -1, dtype=np.int64)
        if n == 0 or not self._by_id:
            return LookupResult(level, region_id, matched_at)
        s = self._slots
        pi, ri = self._candidate_pairs(x, y)
        lower = _ceil_div(s.from_us - _td_micros(pre_designation), _US)
        upper = np.where(s.until_us == _OPEN, _OPEN, _ceil_div(s.until_us, _US))
        tp = secs[pi]
        keep = (tp >= lower[ri]) & (tp < upper[ri])
        pi, ri = pi[keep], ri[keep]
        inside = covering_pairs(s.geoms, x, y, pi, ri)
        pi, ri = pi[inside], ri[inside]
        if pi.size == 0:
            return LookupResult(level, region_id, matched_at)
        rank = self._ranks()[ri]
        order = np.lexsort((rank, pi))
        pi, ri = pi[order], ri[order]
        first = np.ones(pi.size, dtype=bool)
        first[1:] = pi[1:] != pi[:-1]
        pi, ri = pi[first], ri[first]
        level[pi] = s.level[ri]
        region_id[pi] = s.ids[ri]
        matched_at[pi] = s.from_us[ri] // _US
        return LookupResult(level, region_id, matched_at)

    def lookup(
        self, lon: float, lat: float, t: datetime, pre_designation: timedelta = timedelta(0)
    ) -> list[Region]:
        """All regions of the highest level in force at `t` that cover the point; [] if none."""
        _check_aware(t, "lookup time")
        if not isinstance(pre_designation, timedelta) or pre_designation < timedelta(0):
            raise GeoValueError(f"pre_designation is {pre_designation!r}, expected a timedelta >= 0")
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return []
        s = self._slots
        cands = self._grid.candidates_one(lon, lat)
        for slot in self._pending:
            minx, miny, maxx, maxy = self._pending_bounds[slot]
            if minx <= lon <= maxx and miny <= lat <= maxy:
                cands.append(slot)
        point = shapely.Point(lon, lat)
        found = [
            s.regions[r]
            for r in cands
            if s.alive[r] and s.regions[r].in_force(t, pre_designation) and s.geoms[r].intersects(point)
        ]
        if not found:
            return []
        top = max(r.level_code for r in found)
        return sorted((r for r in found if r.level_code == top), key=lambda r: (r.effective_from, r.id))

    def in_force_regions(
        self, t_from: datetime, t_to: datetime, pre_designation: timedelta = timedelta(0)
    ) -> list[Region]:
        """Regions whose risk period overlaps the stay `[t_from, t_to]`."""
        _check_aware(t_from, "t_from")
        _check_aware(t_to, "t_to")
        if t_to < t_from:
            raise GeoValueError(f"t_to {t_to.isoformat()!r} is before t_from {t_from.isoformat()!r}")
        return [
            r
            for r in self._by_id.values()
            if t_to >= r.effective_from - pre_designation
            and (r.effective_until is None or t_from < r.effective_until)
        ]
