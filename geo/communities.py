"""Communities (the units that act on a case) and `CommunityIndex`: point -> community code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike
from shapely.geometry.base import BaseGeometry

from geo._grid import GridIndex, covering_pairs
from geo.errors import GeoValueError
from geo.regions import _check_polygonal

__all__ = ["Community", "CommunityIndex"]


@dataclass(frozen=True)
class Community:
    """A community: its code (the routing key), name, the street it belongs to, its outline and residents."""

    code: str
    name: str
    street: str
    geometry: BaseGeometry
    population: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code:
            raise GeoValueError(f"community code is {self.code!r}, expected a non-empty string")
        _check_polygonal(self.geometry, f"community {self.code!r}")
        if self.population is not None and (isinstance(self.population, bool) or not isinstance(self.population, int)
                                            or self.population < 0):
            raise GeoValueError(f"community {self.code!r}: population is {self.population!r}, expected an int >= 0")


class CommunityIndex:
    """Communities indexed for point lookup; a point on a shared edge goes to the first in input order."""

    def __init__(self, communities: Iterable[Community]) -> None:
        items = list(communities)
        by_code: dict[str, Community] = {}
        for c in items:
            if not isinstance(c, Community):
                raise GeoValueError(f"CommunityIndex takes Community objects, got {type(c).__name__}")
            if c.code in by_code:
                raise GeoValueError(f"community code {c.code!r} appears twice, expected unique codes")
            by_code[c.code] = c
        self._by_code = by_code
        self._codes = np.array([c.code for c in items], dtype=object)
        self._geoms = (
            np.array([c.geometry for c in items], dtype=object) if items else np.empty(0, dtype=object)
        )
        shapely.prepare(self._geoms)
        self._grid = GridIndex(self._geoms)

    def communities_at(self, lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
        """Object array of community codes (None outside every community), aligned with the input."""
        x = np.asarray(lon, dtype=np.float64).reshape(-1)
        y = np.asarray(lat, dtype=np.float64).reshape(-1)
        if x.shape != y.shape:
            raise GeoValueError(f"lon has {x.size} values and lat {y.size}, expected the same number")
        out = np.full(x.size, None, dtype=object)
        pi, ci = self._grid.candidates(x, y)
        inside = covering_pairs(self._geoms, x, y, pi, ci)
        pi, ci = pi[inside], ci[inside]
        if pi.size:
            order = np.lexsort((ci, pi))
            pi, ci = pi[order], ci[order]
            first = np.ones(pi.size, dtype=bool)
            first[1:] = pi[1:] != pi[:-1]
            out[pi[first]] = self._codes[ci[first]]
        return out

    def community_at(self, lon: float, lat: float) -> str | None:
        """The code of the community covering the point, or None."""
        cands = self._grid.candidates_one(lon, lat)
        point = shapely.Point(lon, lat) if cands else None
        for i in cands:
            if self._geoms[i].intersects(point):
                return self._codes[i]
        return None

    def street_of(self, code: str) -> str | None:
        """The street a community belongs to (for escalation), or None for an unknown code."""
        c = self._by_code.get(code)
        return None if c is None else c.street

    def get(self, code: str) -> Community | None:
        """The community with this code, or None."""
        return self._by_code.get(code)

    def streets(self) -> dict[str, list[str]]:
        """Street name -> codes of its communities, in input order."""
        out: dict[str, list[str]] = {}
        for c in self._by_code.values():
            out.setdefault(c.street, []).append(c.code)
        return out

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self) -> Iterator[Community]:
        return iter(list(self._by_code.values()))

    def __contains__(self, code: object) -> bool:
        return code in self._by_code
