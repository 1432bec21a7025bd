"""Recent places held in columnar numpy chunks, and the retroactive sweep against new regions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from geo._grid import GridIndex, covering_pairs
from geo.errors import GeoValueError
from geo.regions import Region, _micros, _td_micros

__all__ = ["PlaceStore", "sweep", "SWEEP_COLUMNS"]

SWEEP_COLUMNS = ["person_key", "region_id", "level", "t_from", "t_to"]
_US = 1_000_000
_OPEN = np.iinfo(np.int64).max
_PER_REGION_SCAN_MAX = 16  # above this many regions a grid over the regions beats one column scan each


@dataclass
class _Chunk:
    """One fixed-capacity block of places; rows [0, size) are filled."""

    key: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    t_from: np.ndarray
    t_to: np.ndarray
    size: int = 0

    @classmethod
    def empty(cls, capacity: int) -> _Chunk:
        return cls(
            key=np.empty(capacity, dtype=np.int32),
            lon=np.empty(capacity, dtype=np.float64),
            lat=np.empty(capacity, dtype=np.float64),
            t_from=np.empty(capacity, dtype=np.int64),
            t_to=np.empty(capacity, dtype=np.int64),
        )

    @property
    def capacity(self) -> int:
        return len(self.key)

    def columns(self) -> tuple[np.ndarray, ...]:
        n = self.size
        return self.key[:n], self.lon[:n], self.lat[:n], self.t_from[:n], self.t_to[:n]


class PlaceStore:
    """Append-only store of (person key, lon, lat, t_from, t_to) rows, times in epoch seconds.

    Person keys are interned into a key table (str -> int32 index); rows live in numpy chunks
    of `chunk_size` so appending never copies what is already stored.
    """

    def __init__(self, chunk_size: int = 1 << 20) -> None:
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise GeoValueError(f"chunk_size is {chunk_size!r}, expected a positive int")
        self._chunk_size = chunk_size
        self._chunks: list[_Chunk] = []
        self._key_index: dict[str, int] = {}
        self._keys: list[str] = []

    # -- key table ---------------------------------------------------------------------------
    def intern(self, person_keys: Sequence[str] | str | np.ndarray) -> np.ndarray:
        """Indices of the given person keys in the key table, adding new keys (int32 array)."""
        if isinstance(person_keys, str):
            person_keys = [person_keys]
        values = np.asarray(person_keys, dtype=object).reshape(-1)
        if values.size == 0:
            return np.empty(0, dtype=np.int32)
        codes, uniques = pd.factorize(values)
        table = np.empty(len(uniques), dtype=np.int32)
        for j, key in enumerate(uniques.tolist()):
            if not isinstance(key, str) or not key:
                raise GeoValueError(f"person key is {key!r}, expected a non-empty string")
            idx = self._key_index.get(key)
            if idx is None:
                idx = len(self._keys)
                self._key_index[key] = idx
                self._keys.append(key)
            table[j] = idx
        return table[codes]

    def keys_for(self, indices: ArrayLike) -> np.ndarray:
        """Person keys (object array of str) for key-table indices."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        table = np.asarray(self._keys, dtype=object)
        if idx.size and (idx.min() < 0 or idx.max() >= len(table)):
            bad = idx[(idx < 0) | (idx >= len(table))][0]
            raise GeoValueError(f"key index {int(bad)} is outside the key table of {len(table)} keys")
        return table[idx]

    @property
    def key_count(self) -> int:
        """Number of distinct person keys ever added."""
        return len(self._keys)

    # -- rows --------------------------------------------------------------------------------
    def add(
        self,
        person_keys: Sequence[str] | str | np.ndarray,
        lon: ArrayLike,
        lat: ArrayLike,
        t_from: ArrayLike,
        t_to: ArrayLike,
    ) -> None:
        """Append places; scalars broadcast against arrays. Times are epoch seconds, t_from <= t_to."""
        self.add_indexed(self.intern(person_keys), lon, lat, t_from, t_to)

    def add_indexed(
        self, key_index: ArrayLike, lon: ArrayLike, lat: ArrayLike, t_from: ArrayLike, t_to: ArrayLike
    ) -> None:
        """Append places whose person keys are already interned (see `intern`)."""
        try:
            key, x, y, a, b = np.broadcast_arrays(
                np.asarray(key_index, dtype=np.int64).reshape(-1),
                np.asarray(lon, dtype=np.float64).reshape(-1),
                np.asarray(lat, dtype=np.float64).reshape(-1),
                np.asarray(t_from, dtype=np.int64).reshape(-1),
                np.asarray(t_to, dtype=np.int64).reshape(-1),
            )
        except ValueError as exc:
            raise GeoValueError(f"place columns have different lengths: {exc}") from exc
        if key.size == 0:
            return
        if key.min() < 0 or key.max() >= len(self._keys):
            raise GeoValueError(f"key index {int(key.max())} is not in the key table; intern the keys first")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise GeoValueError("lon/lat hold NaN or infinity, expected finite coordinates")
        if (b < a).any():
            i = int(np.flatnonzero(b < a)[0])
            raise GeoValueError(f"place {i}: t_to {int(b[i])} is before t_from {int(a[i])}")
        start = 0
        n = key.size
        while start < n:
            if not self._chunks or self._chunks[-1].size == self._chunks[-1].capacity:
                self._chunks.append(_Chunk.empty(self._chunk_size))
            chunk = self._chunks[-1]
            take = min(n - start, chunk.capacity - chunk.size)
            sl = slice(chunk.size, chunk.size + take)
            src = slice(start, start + take)
            chunk.key[sl] = key[src]
            chunk.lon[sl] = x[src]
            chunk.lat[sl] = y[src]
            chunk.t_from[sl] = a[src]
            chunk.t_to[sl] = b[src]
            chunk.size += take
            start += take

    def evict(self, older_than: int) -> int:
        """Drop places that ended before `older_than` (epoch s); returns how many were dropped."""
        if isinstance(older_than, bool) or not isinstance(older_than, int | np.integer):
            raise GeoValueError(f"older_than is {older_than!r}, expected int epoch seconds")
        dropped = 0
        kept: list[_Chunk] = []
        for chunk in self._chunks:
            key, x, y, a, b = chunk.columns()
            stay = b >= older_than
            n_stay = int(stay.sum())
            dropped += chunk.size - n_stay
            if n_stay == 0:
                continue
            if n_stay < chunk.size:
                chunk.key[:n_stay] = key[stay]
                chunk.lon[:n_stay] = x[stay]
                chunk.lat[:n_stay] = y[stay]
                chunk.t_from[:n_stay] = a[stay]
                chunk.t_to[:n_stay] = b[stay]
                chunk.size = n_stay
            kept.append(chunk)
        # Only the last chunk takes new rows, so older chunks stay partly empty until evicted whole.
        self._chunks = kept
        return dropped

    def chunks(self) -> list[tuple[np.ndarray, ...]]:
        """Filled views (key, lon, lat, t_from, t_to) of every chunk, oldest first."""
        return [c.columns() for c in self._chunks if c.size]

    def __len__(self) -> int:
        return sum(c.size for c in self._chunks)

    @property
    def nbytes(self) -> int:
        """Bytes held by the place columns (allocated capacity)."""
        return sum(c.capacity * (4 + 8 * 4) for c in self._chunks)


def sweep(
    store: PlaceStore, regions: Sequence[Region], pre_designation: timedelta = timedelta(0)
) -> pd.DataFrame:
    """Everyone whose stay overlaps a region's risk period while inside it: one row per (place, region).

    A stay `[t_from, t_to]` overlaps when `t_to >= effective_from - pre_designation` and
    `t_from < effective_until`. Each region is tested with a numpy box filter over the columns,
    then `shapely.intersects_xy` (boundary counts as inside) on the few candidates.
    """
    if not isinstance(store, PlaceStore):
        raise GeoValueError(f"store is {type(store).__name__}, expected a PlaceStore")
    if not isinstance(pre_designation, timedelta) or pre_designation < timedelta(0):
        raise GeoValueError(f"pre_designation is {pre_designation!r}, expected a timedelta >= 0")
    regions = list(regions)
    for r in regions:
        if not isinstance(r, Region):
            raise GeoValueError(f"sweep takes Region objects, got {type(r).__name__}")
    pre = _td_micros(pre_designation)
    geoms = np.array([r.geometry for r in regions], dtype=object)
    shapely.prepare(geoms)
    bounds = shapely.bounds(geoms) if len(regions) else np.empty((0, 4))
    lower = [-((pre - _micros(r.effective_from)) // _US) for r in regions]  # ceil((from - pre) / 1 s)
    upper = [_OPEN if r.effective_until is None else -((-_micros(r.effective_until)) // _US) for r in regions]
    lower_arr = np.array(lower, dtype=np.int64)
    upper_arr = np.array(upper, dtype=np.int64)
    grid = GridIndex(geoms) if len(regions) > _PER_REGION_SCAN_MAX else None
    keys, region_idx, t_from, t_to = [], [], [], []
    for key, x, y, a, b in store.chunks():
        if grid is not None:
            pi, ri = grid.candidates(x, y)
            live = (b[pi] >= lower_arr[ri]) & (a[pi] < upper_arr[ri])
            pi, ri = pi[live], ri[live]
            hit = covering_pairs(geoms, x, y, pi, ri)
            pi, ri = pi[hit], ri[hit]
            keys.append(key[pi])
            region_idx.append(ri.astype(np.int32))
            t_from.append(a[pi])
            t_to.append(b[pi])
            continue
        for j in range(len(regions)):
            minx, miny, maxx, maxy = bounds[j]
            cand = np.flatnonzero(
                (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy) & (b >= lower[j]) & (a < upper[j])
            )
            if cand.size == 0:
                continue
            cand = cand[shapely.intersects_xy(geoms[j], x[cand], y[cand])]
            keys.append(key[cand])
            region_idx.append(np.full(cand.size, j, dtype=np.int32))
            t_from.append(a[cand])
            t_to.append(b[cand])
    if not keys:
        return pd.DataFrame(
            {
                "person_key": pd.Series([], dtype=object),
                "region_id": pd.Series([], dtype=object),
                "level": pd.Series([], dtype=object),
                "t_from": pd.Series([], dtype=np.int64),
                "t_to": pd.Series([], dtype=np.int64),
            }
        )
    ridx = np.concatenate(region_idx)
    ids = np.array([r.id for r in regions], dtype=object)
    levels = np.array([r.level for r in regions], dtype=object)
    frame = pd.DataFrame(
        {
            "person_key": pd.Series(store.keys_for(np.concatenate(keys)), dtype=object),
            "region_id": pd.Series(ids[ridx], dtype=object),
            "level": pd.Series(levels[ridx], dtype=object),
            "t_from": np.concatenate(t_from),
            "t_to": np.concatenate(t_to),
        }
    )
    return frame.sort_values(["region_id", "person_key", "t_from"], kind="stable").reset_index(drop=True)
