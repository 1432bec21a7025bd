"""Held places near a few query stays at overlapping times: space first (boxes), then time (interval overlap).

Generic: no notion of people or contacts. The query side is small (one person's recent stays), the
held side large (every place a worker holds), so each chunk of held columns is cut once by the
queries' joint time window and bounding box, and only the survivors meet each query's own box,
distance and overlap test — all in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from geo.errors import GeoValueError
from geo.sweep import KEY_DTYPE, PlaceStore

__all__ = ["EARTH_RADIUS_M", "Near", "distance_m", "near_in_time"]

EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG = np.pi * EARTH_RADIUS_M / 180.0


@dataclass(frozen=True)
class Near:
    """Aligned arrays, one row per (held place, query) pair that is close enough for long enough."""

    key: np.ndarray
    query: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    t_from: np.ndarray
    t_to: np.ndarray
    distance_m: np.ndarray
    overlap_s: np.ndarray

    def __len__(self) -> int:
        return len(self.query)


def distance_m(lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike) -> np.ndarray:
    """Great-circle distance in metres (haversine), broadcast over the inputs."""
    x1, y1, x2, y2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lon1, lat1, lon2, lat2))
    h = np.sin((y2 - y1) / 2) ** 2 + np.cos(y1) * np.cos(y2) * np.sin((x2 - x1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))


def _queries(qx: ArrayLike, qy: ArrayLike, qa: ArrayLike, qb: ArrayLike) -> tuple[np.ndarray, ...]:
    try:
        x, y, a, b = np.broadcast_arrays(
            np.asarray(qx, dtype=np.float64).reshape(-1), np.asarray(qy, dtype=np.float64).reshape(-1),
            np.asarray(qa, dtype=np.int64).reshape(-1), np.asarray(qb, dtype=np.int64).reshape(-1),
        )
    except ValueError as exc:
        raise GeoValueError(f"query columns have different lengths: {exc}") from exc
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise GeoValueError("query lon/lat hold NaN or infinity, expected finite coordinates")
    if (b < a).any():
        i = int(np.flatnonzero(b < a)[0])
        raise GeoValueError(f"query {i}: t_to {int(b[i])} is before t_from {int(a[i])}")
    return x, y, a, b


def near_in_time(
    store: PlaceStore,
    qx: ArrayLike,
    qy: ArrayLike,
    qa: ArrayLike,
    qb: ArrayLike,
    *,
    radius_m: float,
    min_overlap_s: int = 0,
) -> Near:
    """Held places within `radius_m` of a query place whose times overlap it by at least `min_overlap_s`.

    Overlap is `min(t_to) - max(t_from)` in seconds; 0 with equal instants means "at the same second"
    (a checkpoint scan). Boundaries count: a place exactly `radius_m` away is near.
    """
    if not isinstance(store, PlaceStore):
        raise GeoValueError(f"store is {type(store).__name__}, expected a PlaceStore")
    if not isinstance(radius_m, int | float) or not np.isfinite(radius_m) or radius_m < 0:
        raise GeoValueError(f"radius_m is {radius_m!r}, expected a finite number of metres >= 0")
    if isinstance(min_overlap_s, bool) or not isinstance(min_overlap_s, int | np.integer) or min_overlap_s < 0:
        raise GeoValueError(f"min_overlap_s is {min_overlap_s!r}, expected an int of seconds >= 0")
    x, y, a, b = _queries(qx, qy, qa, qb)
    parts: list[tuple[np.ndarray, ...]] = []
    if len(x):
        # degrees of slack around each query: latitude is uniform, longitude widens towards the poles
        dy = radius_m / _M_PER_DEG + 1e-9
        dx = dy / np.maximum(np.cos(np.radians(np.abs(y) + dy)), 1e-6)
        lo_x, hi_x = float((x - dx).min()), float((x + dx).max())
        lo_y, hi_y = float(y.min() - dy), float(y.max() + dy)
        t_lo, t_hi = int((a + min_overlap_s).min()), int((b - min_overlap_s).max())
        for key, hx, hy, ha, hb in store.chunks():
            # time first: most held places ended before the queries began, so one pass drops them all
            cand = np.flatnonzero(hb >= t_lo)
            if cand.size == 0:
                continue
            ca = ha[cand]
            cx, cy = hx[cand], hy[cand]
            cand = cand[(ca <= t_hi) & (cy >= lo_y) & (cy <= hi_y) & (cx >= lo_x) & (cx <= hi_x)]
            if cand.size == 0:
                continue
            cx, cy, ca, cb = hx[cand], hy[cand], ha[cand], hb[cand]
            for q in range(len(x)):
                # a narrow band of longitude first (one pass), then latitude and time on the few in it
                box = np.flatnonzero(np.abs(cx - x[q]) <= dx[q])
                if box.size == 0:
                    continue
                box = box[(np.abs(cy[box] - y[q]) <= dy)
                          & (np.minimum(cb[box], b[q]) - np.maximum(ca[box], a[q]) >= min_overlap_s)]
                if box.size == 0:
                    continue
                dist = distance_m(x[q], y[q], cx[box], cy[box])
                keep = dist <= radius_m
                box, dist = box[keep], dist[keep]
                if box.size == 0:
                    continue
                overlap = np.minimum(cb[box], b[q]) - np.maximum(ca[box], a[q])
                rows = cand[box]
                parts.append((key[rows], np.full(box.size, q, dtype=np.int64), hx[rows], hy[rows], ha[rows], hb[rows],
                              dist, overlap))
    if not parts:
        return Near(np.empty(0, dtype=KEY_DTYPE), np.empty(0, dtype=np.int64), np.empty(0), np.empty(0),
                    np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=np.int64))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return Near(*cols)
