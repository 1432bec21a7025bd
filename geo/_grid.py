"""A uniform-grid bounding-box index: (x, y) arrays -> candidate (point, polygon) pairs, all in numpy.

Building shapely Points for a million events costs more than the whole lookup, so the
candidate step works on raw coordinate arrays and only the exact test touches GEOS.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

_MIN_CELL = 1e-7


class GridIndex:
    """Bounding boxes of polygons bucketed into square cells, stored as sorted cell keys (CSR)."""

    def __init__(self, geoms: np.ndarray) -> None:
        self.geoms = np.asarray(geoms, dtype=object)
        self.size = len(self.geoms)
        bounds = shapely.bounds(self.geoms) if self.size else np.empty((0, 4))
        self.bounds = bounds
        self._cell_members: dict[int, list[int]] | None = None
        self._box_list: list[list[float]] = []
        if self.size == 0:
            self._empty()
            return
        extent = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
        cell = max(float(np.quantile(extent, 0.9)), _MIN_CELL)
        self.x0 = float(bounds[:, 0].min())
        self.y0 = float(bounds[:, 1].min())
        budget = 8 * self.size + 4096
        while True:
            ix0, ix1, iy0, iy1 = self._cell_ranges(bounds, cell)
            counts = (ix1 - ix0 + 1) * (iy1 - iy0 + 1)
            if counts.sum() <= budget:
                break
            cell *= 2.0
        self.cell = cell
        self.nx = int(ix1.max()) + 1
        self.ny = int(iy1.max()) + 1
        owner = np.repeat(np.arange(self.size, dtype=np.int64), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        offset = np.arange(int(counts.sum()), dtype=np.int64) - first
        width = np.repeat(ix1 - ix0 + 1, counts)
        cx = np.repeat(ix0, counts) + offset % width
        cy = np.repeat(iy0, counts) + offset // width
        keys = cy * self.nx + cx
        order = np.argsort(keys, kind="stable")
        self.members = owner[order]
        self.keys, self.starts, self.counts = np.unique(keys[order], return_index=True, return_counts=True)

    def candidates_one(self, x: float, y: float) -> list[int]:
        """Polygon indices whose bounding box holds one point: the per-event path, no numpy calls."""
        if self.size == 0 or not (math.isfinite(x) and math.isfinite(y)):
            return []
        cx = math.floor((x - self.x0) / self.cell)
        cy = math.floor((y - self.y0) / self.cell)
        if not (0 <= cx < self.nx and 0 <= cy < self.ny):
            return []
        if self._cell_members is None:
            self._cell_members = {
                int(k): self.members[s : s + n].tolist()
                for k, s, n in zip(
                    self.keys.tolist(), self.starts.tolist(), self.counts.tolist(), strict=True
                )
            }
            self._box_list = self.bounds.tolist()
        out = []
        for i in self._cell_members.get(cy * self.nx + cx, ()):
            minx, miny, maxx, maxy = self._box_list[i]
            if minx <= x <= maxx and miny <= y <= maxy:
                out.append(i)
        return out

    def _empty(self) -> None:
        self.cell = 1.0
        self.x0 = self.y0 = 0.0
        self.nx = self.ny = 0
        self.members = np.empty(0, dtype=np.int64)
        self.keys = np.empty(0, dtype=np.int64)
        self.starts = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    def _cell_ranges(self, bounds: np.ndarray, cell: float) -> tuple[np.ndarray, ...]:
        ix0 = np.floor((bounds[:, 0] - self.x0) / cell).astype(np.int64)
        ix1 = np.floor((bounds[:, 2] - self.x0) / cell).astype(np.int64)
        iy0 = np.floor((bounds[:, 1] - self.y0) / cell).astype(np.int64)
        iy1 = np.floor((bounds[:, 3] - self.y0) / cell).astype(np.int64)
        return ix0, ix1, iy0, iy1

    def candidates(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (point index, polygon index) whose bounding box holds the point (edges included)."""
        empty = np.empty(0, dtype=np.int64)
        if self.size == 0 or len(x) == 0:
            return empty, empty
        with np.errstate(invalid="ignore"):
            fx = np.floor((x - self.x0) / self.cell)
            fy = np.floor((y - self.y0) / self.cell)
            inside = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)
        pts = np.flatnonzero(inside)
        if len(pts) == 0:
            return empty, empty
        key = fy[pts].astype(np.int64) * self.nx + fx[pts].astype(np.int64)
        pos = np.searchsorted(self.keys, key)
        pos[pos >= len(self.keys)] = 0
        hit = self.keys[pos] == key
        pts = pts[hit]
        pos = pos[hit]
        n = self.counts[pos]
        total = int(n.sum())
        point_idx = np.repeat(pts, n)
        slot = np.repeat(self.starts[pos] - (np.cumsum(n) - n), n) + np.arange(total, dtype=np.int64)
        poly_idx = self.members[slot]
        b = self.bounds[poly_idx]
        px = x[point_idx]
        py = y[point_idx]
        keep = (px >= b[:, 0]) & (px <= b[:, 2]) & (py >= b[:, 1]) & (py <= b[:, 3])
        return point_idx[keep], poly_idx[keep]


def covering_pairs(
    geoms: np.ndarray, x: np.ndarray, y: np.ndarray, point_idx: np.ndarray, poly_idx: np.ndarray
) -> np.ndarray:
    """Mask of the candidate pairs whose polygon covers its point (boundary counts as inside)."""
    if len(point_idx) == 0:
        return np.zeros(0, dtype=bool)
    # For a point and a polygon, `intersects` is `covers`; the *_xy form needs no Point objects.
    return shapely.intersects_xy(geoms[poly_idx], x[point_idx], y[point_idx])
