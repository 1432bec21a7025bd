"""Logistics checkpoint locations."""

from __future__ import annotations

import math
from dataclasses import dataclass

from geo.errors import GeoValueError

__all__ = ["Checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint on a road: where scans from it happened."""

    id: str
    name: str
    lon: float
    lat: float

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise GeoValueError(f"checkpoint id is {self.id!r}, expected a non-empty string")
        if not (math.isfinite(self.lon) and -180.0 <= self.lon <= 180.0):
            raise GeoValueError(f"checkpoint {self.id!r}: lon is {self.lon!r}, expected -180..180")
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise GeoValueError(f"checkpoint {self.id!r}: lat is {self.lat!r}, expected -90..90")
