"""Errors and warnings raised by `geo`: one base class, one subclass per condition."""

from __future__ import annotations

__all__ = [
    "GeoError",
    "GeoValueError",
    "InvalidGeometryError",
    "UnknownRegionError",
    "GeoFileError",
    "RegionFileError",
    "FeatureError",
    "CommunityFileError",
    "CheckpointFileError",
    "GeoWarning",
    "GeometryRepairedWarning",
]


class GeoError(Exception):
    """Base class of every error raised by the `geo` package."""


class GeoValueError(GeoError, ValueError):
    """An argument has a value the function cannot use; the message quotes it."""


class InvalidGeometryError(GeoValueError):
    """A geometry is not a non-empty Polygon or MultiPolygon."""


class UnknownRegionError(GeoError, KeyError):
    """A region id is not in the index."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class GeoFileError(GeoError):
    """A geography file cannot be used.

    `path`, `index` (feature position), `feature_id` and `problem` (a short condition
    name such as ``missing-property``) say where and what; the message says the same.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        index: int | None = None,
        feature_id: str | None = None,
        problem: str = "unreadable",
    ) -> None:
        super().__init__(message)
        self.path = path
        self.index = index
        self.feature_id = feature_id
        self.problem = problem


class RegionFileError(GeoFileError):
    """A risk-region file is unusable (a feature, a property, a geometry or the CRS)."""


class FeatureError(RegionFileError):
    """One risk-region GeoJSON Feature (e.g. from the control topic) is unusable."""


class CommunityFileError(GeoFileError):
    """A community file is unusable."""


class CheckpointFileError(GeoFileError):
    """A checkpoint file is unusable."""


class GeoWarning(UserWarning):
    """Base class of warnings issued by `geo`."""


class GeometryRepairedWarning(GeoWarning):
    """An invalid geometry was repaired with `shapely.make_valid` while loading."""
