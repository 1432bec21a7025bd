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

__all__ = ["KEY_DTYPE", "PlaceStore", "SWEEP_COLUMNS", "keys_of", "pack_keys", "sweep"]

SWEEP_COLUMNS = ["person_key", "region_id", "level", "t_from", "t_to"]
_US = 1_000_000
_OPEN = np.iinfo(np.int64).max
_PER_REGION_SCAN_MAX = 16  # above this many regions a grid over the regions beats one column scan each


#: One row's person key: a 64-hex HMAC packed to its 32 raw bytes (`packed`), or a short key's UTF-8 bytes.
KEY_DTYPE = np.dtype([("raw", np.uint8, (32,)), ("packed", np.bool_)])
_KEY_BYTES = 32
_FIRST_CAPACITY = 4096


def pack_keys(person_keys: Sequence[str] | str | np.ndarray) -> np.ndarray:
    """Person keys as `KEY_DTYPE` rows: a lowercase 64-hex key takes its 32 raw bytes, any other key
    of at most 32 UTF-8 bytes is kept as is (tests, tools); `keys_of` gives the strings back."""
    keys = [person_keys] if isinstance(person_keys, str) else np.asarray(person_keys, dtype=object).reshape(-1).tolist()
    rows = np.zeros(len(keys), dtype=KEY_DTYPE)
    if not keys:
        return rows
    if all(type(k) is str and len(k) == 64 for k in keys):
        joined = "".join(keys)
        try:
            raw = bytes.fromhex(joined)
        except ValueError:
            raw = b""
        if raw.hex() == joined:
            rows["raw"] = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _KEY_BYTES)
            rows["packed"] = True
            return rows
    for i, key in enumerate(keys):
        rows[i] = _packed_one(key)
    return rows


def _packed_one(key: object) -> tuple[np.ndarray, bool]:
    if not isinstance(key, str) or not key:
        raise GeoValueError(f"person key is {key!r}, expected a non-empty string")
    if len(key) == 64:
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            raw = b""
        if raw.hex() == key:
            return np.frombuffer(raw, dtype=np.uint8), True
    text = key.encode("utf-8")
    if len(text) > _KEY_BYTES or text.endswith(b"\0"):
        raise GeoValueError(f"person key {key!r:.80} is neither a lowercase 64-hex HMAC nor at most 32 UTF-8 bytes")
    return np.frombuffer(text.ljust(_KEY_BYTES, b"\0"), dtype=np.uint8), False


def keys_of(rows: ArrayLike) -> np.ndarray:
    """Person keys (object array of str) of `KEY_DTYPE` rows, as `pack_keys` was given them."""
    rows = np.asarray(rows)
    if rows.dtype != KEY_DTYPE:
        raise GeoValueError(f"key rows have dtype {rows.dtype}, expected {KEY_DTYPE} (from pack_keys or chunks())")
    rows = rows.reshape(-1)
    out = np.empty(len(rows), dtype=object)
    packed = rows["packed"]
    if packed.any():
        text = np.ascontiguousarray(rows["raw"][packed]).tobytes().hex()
        out[packed] = np.array([text]).view(f"<U{2 * _KEY_BYTES}").astype(object)
    if not packed.all():
        out[~packed] = [bytes(r).rstrip(b"\0").decode("utf-8") for r in rows["raw"][~packed]]
    return out


@dataclass
class _Chunk:
    """One block of places; rows [0, size) are filled."""

    key: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    t_from: np.ndarray
    t_to: np.ndarray
    size: int = 0

    @classmethod
    def empty(cls, capacity: int) -> _Chunk:
        return cls(
            key=np.empty(capacity, dtype=KEY_DTYPE),
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

    def grown(self, capacity: int) -> _Chunk:
        """A copy with room for `capacity` rows."""
        bigger = _Chunk.empty(capacity)
        for name in ("key", "lon", "lat", "t_from", "t_to"):
            getattr(bigger, name)[: self.size] = getattr(self, name)[: self.size]
        bigger.size = self.size
        return bigger


class PlaceStore:
    """Append-only store of (person key, lon, lat, t_from, t_to) rows, times in epoch seconds.

    Numeric columns only: each row holds its person key as 32 raw bytes (`KEY_DTYPE`), so the store
    keeps no Python object per person or per place (65 bytes a row). Rows live in numpy chunks of
    `chunk_size`; the newest chunk starts small and doubles until it reaches `chunk_size`, so a
    worker holding a few places does not reserve a full chunk, and full chunks are never copied.
    """

    def __init__(self, chunk_size: int = 1 << 20) -> None:
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise GeoValueError(f"chunk_size is {chunk_size!r}, expected a positive int")
        self._chunk_size = chunk_size
        self._chunks: list[_Chunk] = []

    def keys_for(self, rows: ArrayLike) -> np.ndarray:
        """Person keys (object array of str) of key rows taken from `chunks()`."""
        return keys_of(rows)

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
        self.add_packed(pack_keys(person_keys), lon, lat, t_from, t_to)

    def add_packed(self, key_rows: ArrayLike, lon: ArrayLike, lat: ArrayLike, t_from: ArrayLike, t_to: ArrayLike) -> None:
        """Append places whose person keys are already packed (`pack_keys`)."""
        rows = np.asarray(key_rows)
        if rows.dtype != KEY_DTYPE:
            raise GeoValueError(f"key rows have dtype {rows.dtype}, expected {KEY_DTYPE} (from pack_keys)")
        try:
            key, x, y, a, b = np.broadcast_arrays(
                rows.reshape(-1),
                np.asarray(lon, dtype=np.float64).reshape(-1),
                np.asarray(lat, dtype=np.float64).reshape(-1),
                np.asarray(t_from, dtype=np.int64).reshape(-1),
                np.asarray(t_to, dtype=np.int64).reshape(-1),
            )
        except ValueError as exc:
            raise GeoValueError(f"place columns have different lengths: {exc}") from exc
        if key.size == 0:
            return
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise GeoValueError("lon/lat hold NaN or infinity, expected finite coordinates")
        if (b < a).any():
            i = int(np.flatnonzero(b < a)[0])
            raise GeoValueError(f"place {i}: t_to {int(b[i])} is before t_from {int(a[i])}")
        start = 0
        n = key.size
        while start < n:
            self._make_room(n - start)
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

    def _make_room(self, wanted: int) -> None:
        """Ensure the newest chunk has a free row: grow it (doubling, up to `chunk_size`) or start a new one."""
        if self._chunks and self._chunks[-1].size < self._chunks[-1].capacity:
            return
        last = self._chunks[-1] if self._chunks else None
        if last is not None and last.capacity < self._chunk_size:
            capacity = min(self._chunk_size, max(2 * last.capacity, last.size + wanted))
            self._chunks[-1] = last.grown(capacity)
            return
        self._chunks.append(_Chunk.empty(min(self._chunk_size, max(_FIRST_CAPACITY, wanted))))

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
        """Filled views (key rows, lon, lat, t_from, t_to) of every chunk, oldest first."""
        return [c.columns() for c in self._chunks if c.size]

    def __len__(self) -> int:
        return sum(c.size for c in self._chunks)

    @property
    def nbytes(self) -> int:
        """Bytes held by the place columns (allocated capacity)."""
        return sum(c.capacity * (KEY_DTYPE.itemsize + 8 * 4) for c in self._chunks)


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
            "person_key": pd.Series(keys_of(np.concatenate(keys)), dtype=object),
            "region_id": pd.Series(ids[ridx], dtype=object),
            "level": pd.Series(levels[ridx], dtype=object),
            "t_from": np.concatenate(t_from),
            "t_to": np.concatenate(t_to),
        }
    )
    return frame.sort_values(["region_id", "person_key", "t_from"], kind="stable").reset_index(drop=True)
