"""The straightforward first version of the region lookup, kept as a reference and a baseline.

One shapely Point per event, a bounding-box prefilter, then `covers` against each candidate in
a Python loop. The property tests check `RiskIndex.lookup_many` against it; `geo.bench` times both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import shapely
from numpy.typing import ArrayLike

from geo.regions import LookupResult, Region, _micros, _td_micros, to_epoch_seconds

__all__ = ["naive_lookup_many"]

_US = 1_000_000


def naive_lookup_many(
    regions: Sequence[Region],
    lon: ArrayLike,
    lat: ArrayLike,
    t: ArrayLike,
    pre_designation: timedelta = timedelta(0),
) -> LookupResult:
    """Same answer as `RiskIndex(regions).lookup_many(...)`, one point at a time."""
    regions = list(regions)
    xs = np.asarray(lon, dtype=np.float64).reshape(-1)
    ys = np.asarray(lat, dtype=np.float64).reshape(-1)
    ts = np.broadcast_to(to_epoch_seconds(t).reshape(-1), xs.shape)
    bounds = (
        shapely.bounds(np.array([r.geometry for r in regions], dtype=object)) if regions else np.empty((0, 4))
    )
    pre = _td_micros(pre_designation)
    start = [r.effective_from for r in regions]
    level = np.zeros(xs.size, dtype=np.int8)
    region_id = np.full(xs.size, None, dtype=object)
    matched_at = np.full(xs.size, -1, dtype=np.int64)
    for i in range(xs.size):
        point = shapely.Point(xs[i], ys[i])
        t_us = int(ts[i]) * _US
        box = (
            (bounds[:, 0] <= xs[i])
            & (xs[i] <= bounds[:, 2])
            & (bounds[:, 1] <= ys[i])
            & (ys[i] <= bounds[:, 3])
        )
        best: tuple | None = None
        for j in np.flatnonzero(box).tolist():
            r = regions[j]
            if t_us < _micros(r.effective_from) - pre:
                continue
            if r.effective_until is not None and t_us >= _micros(r.effective_until):
                continue
            if not r.geometry.covers(point):
                continue
            key = (-r.level_code, start[j], r.id)
            if best is None or key < best[0]:
                best = (key, r)
        if best is not None:
            r = best[1]
            level[i] = r.level_code
            region_id[i] = r.id
            matched_at[i] = _micros(r.effective_from) // _US
    return LookupResult(level, region_id, matched_at)
