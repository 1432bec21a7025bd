"""Read risk regions, communities and checkpoints from GeoJSON, GeoPackage or Shapefile.

Everything comes back in EPSG:4326. Problems raise a `GeoFileError` subclass naming the file,
the feature (index and id) and the problem; an invalid geometry that `shapely.make_valid` can
repair is kept and reported with a `GeometryRepairedWarning` through `warnings.warn`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo.checkpoints import Checkpoint
from geo.communities import Community
from geo.errors import (
    CheckpointFileError,
    CommunityFileError,
    FeatureError,
    GeoError,
    GeoFileError,
    GeometryRepairedWarning,
    RegionFileError,
)
from geo.regions import LEVEL_CODE, LEVELS, Region

__all__ = ["load_regions", "load_communities", "load_checkpoints", "region_from_feature", "region_to_feature"]

log = logging.getLogger(__name__)
_WGS84 = CRS.from_epsg(4326)
# Shapefile field names stop at 10 characters, so the time fields may come under a short name.
_ALIASES = {"effective_from": ("eff_from", "valid_from"), "effective_until": ("eff_until", "valid_until")}
_POLYGONAL = ("Polygon", "MultiPolygon")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _where(path: str, index: int | None, feature_id: Any) -> str:
    if index is None:
        return path
    fid = "" if _missing(feature_id) else f" (id {str(feature_id)!r})"
    return f"{path}: feature {index}{fid}"


def _read(path: str | Path, error: type[GeoFileError]) -> gpd.GeoDataFrame:
    """Read a vector file and reproject to EPSG:4326 when it declares another CRS."""
    p = Path(path)
    if not p.exists():
        raise error(f"{p}: no such file", path=str(p), problem="not-found")
    try:
        frame = gpd.read_file(p, engine="pyogrio", datetime_as_string=True)
    except Exception as exc:  # pyogrio raises its own DataSourceError family
        raise error(f"{p}: cannot be read as a vector file: {exc}", path=str(p)) from exc
    if frame.crs is not None and not CRS(frame.crs).equals(_WGS84, ignore_axis_order=True):
        declared = frame.crs.to_string()
        try:
            frame = frame.to_crs(_WGS84)
        except Exception as exc:
            raise error(
                f"{p}: CRS {declared!r} cannot be reprojected to 'EPSG:4326': {exc}",
                path=str(p),
                problem="crs",
            ) from exc
        log.info("reprojected path=%s from_crs=%s to_crs=EPSG:4326 features=%d", p, declared, len(frame))
    return frame


def _polygonal_part(geom: BaseGeometry) -> BaseGeometry | None:
    """The polygonal part of a repaired geometry (which may be a collection), or None."""
    if geom.geom_type in _POLYGONAL:
        return None if geom.is_empty else geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in _POLYGONAL and not g.is_empty]
    if not parts:
        return None
    polys = [p for g in parts for p in (g.geoms if g.geom_type == "MultiPolygon" else [g])]
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _checked_geometries(
    geoms: np.ndarray, path: str, ids: list[Any], error: type[GeoFileError]
) -> np.ndarray:
    """Refuse non-polygonal geometries; repair invalid ones with `make_valid`, with a warning."""
    out = np.array(geoms, dtype=object)
    for i, g in enumerate(out):
        if g is None or g.is_empty:
            raise _feature_error(error, path, i, ids[i], "no-geometry",
                f"{_where(path, i, ids[i])}: has no geometry")
        if g.geom_type not in _POLYGONAL:
            raise _feature_error(error, path, i, ids[i], "geometry-type",
                f"{_where(path, i, ids[i])}: geometry is {g.geom_type!r}, expected Polygon or MultiPolygon")
    for i, g in enumerate(out):
        if not np.isfinite(shapely.get_coordinates(g)).all():
            raise _feature_error(error, path, i, ids[i], "invalid-geometry",
                f"{_where(path, i, ids[i])}: geometry has a NaN or infinite coordinate")
    valid = shapely.is_valid(out)
    for i in np.flatnonzero(~valid).tolist():
        reason = shapely.is_valid_reason(out[i])
        repaired = _polygonal_part(shapely.make_valid(out[i]))
        if repaired is None:
            raise _feature_error(error, path, i, ids[i], "invalid-geometry",
                f"{_where(path, i, ids[i])}: invalid geometry ({reason}) and nothing polygonal is left "
                "after make_valid; redraw it")
        warnings.warn(
            GeometryRepairedWarning(
                f"{_where(path, i, ids[i])}: invalid geometry ({reason}) repaired with make_valid"
            ),
            stacklevel=3,
        )
        out[i] = repaired
    return out


def _feature_error(
    error: type[GeoFileError], path: str, index: int, feature_id: Any, problem: str, message: str
) -> GeoFileError:
    """The file error for one feature, located by path, index and id."""
    return error(message, path=path, index=index, feature_id=_id_or_none(feature_id), problem=problem)


def _id_or_none(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _require(
    frame: gpd.GeoDataFrame, fields: tuple[str, ...], path: str, ids: list[Any], error: type[GeoFileError]
) -> None:
    for name in fields:
        if name not in frame.columns:
            idx = 0 if len(frame) else None
            raise error(
                f"{_where(path, idx, ids[0] if ids else None)}: missing required property {name!r} "
                f"(the file has no {name!r} column)",
                path=path,
                index=idx,
                feature_id=_id_or_none(ids[0]) if ids else None,
                problem="missing-property",
            )
        for i, value in enumerate(frame[name].tolist()):
            if _missing(value):
                raise _feature_error(error, path, i, ids[i], "missing-property",
                    f"{_where(path, i, ids[i])}: missing required property {name!r}")


def _unique(ids: list[str], path: str, field: str, error: type[GeoFileError]) -> None:
    seen: dict[str, int] = {}
    for i, v in enumerate(ids):
        if v in seen:
            raise error(
                f"{_where(path, i, v)}: {field} {v!r} already used by feature {seen[v]}; {field}s must be unique",
                path=path,
                index=i,
                feature_id=v,
                problem="duplicate-id",
            )
        seen[v] = i


def _parse_time(value: Any, where: str, field: str, error: type[GeoFileError], **ctx: Any) -> datetime:
    if isinstance(value, datetime):
        t = value
    else:
        try:
            t = datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise error(
                f"{where}: property {field!r} is {value!r}, expected an ISO 8601 time with offset",
                problem="bad-property",
                **ctx,
            ) from exc
    if t.tzinfo is None or t.utcoffset() is None:
        raise error(
            f"{where}: property {field!r} is {value!r} without a UTC offset, expected e.g. "
            "'2022-05-01T10:00:00+08:00'",
            problem="bad-property",
            **ctx,
        )
    return t


def _region(
    props: Mapping[str, Any], geometry: BaseGeometry, where: str, error: type[GeoFileError], **ctx: Any
) -> Region:
    for name in ("id", "level", "name", "effective_from"):
        if _missing(props.get(name)):
            raise error(f"{where}: missing required property {name!r}", problem="missing-property", **ctx)
    level = str(props["level"]).strip().lower()
    if level not in LEVEL_CODE:
        raise error(
            f"{where}: property 'level' is {props['level']!r}, expected one of {list(LEVELS)}",
            problem="bad-property",
            **ctx,
        )
    start = _parse_time(props["effective_from"], where, "effective_from", error, **ctx)
    until_raw = props.get("effective_until")
    until = None if _missing(until_raw) else _parse_time(until_raw, where, "effective_until", error, **ctx)
    try:
        return Region(
            id=_text(props["id"]),
            level=level,
            name=_text(props["name"]),
            effective_from=start,
            effective_until=until,
            geometry=geometry,
        )
    except GeoError as exc:
        raise error(f"{where}: {exc}", problem="bad-property", **ctx) from exc


def load_regions(path: str | Path) -> list[Region]:
    """Risk regions from a vector file (properties id, level, name, effective_from, effective_until).

    In Shapefiles, whose field names stop at 10 characters, the times may be `eff_from` / `eff_until`.
    """
    p = str(path)
    frame = _read(path, RegionFileError)
    ids = frame["id"].tolist() if "id" in frame.columns else [None] * len(frame)
    _require(frame, ("id",), p, ids, RegionFileError)
    ids = [_text(v) for v in ids]
    _unique(ids, p, "id", RegionFileError)
    geoms = _checked_geometries(frame.geometry.to_numpy(), p, ids, RegionFileError)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    renames = {
        alias: field
        for field, aliases in _ALIASES.items()
        if field not in columns
        for alias in aliases
        if alias in columns
    }
    records = frame[columns].rename(columns=renames).to_dict("records")
    return [
        _region(props, geoms[i], _where(p, i, ids[i]), RegionFileError, path=p, index=i, feature_id=ids[i])
        for i, props in enumerate(records)
    ]


def load_communities(path: str | Path) -> list[Community]:
    """Communities from a vector file (properties code, name, street, and optionally population)."""
    p = str(path)
    frame = _read(path, CommunityFileError)
    codes = frame["code"].tolist() if "code" in frame.columns else [None] * len(frame)
    _require(frame, ("code", "name", "street"), p, codes, CommunityFileError)
    codes = [_text(v) for v in codes]
    _unique(codes, p, "code", CommunityFileError)
    geoms = _checked_geometries(frame.geometry.to_numpy(), p, codes, CommunityFileError)
    names = frame["name"].tolist()
    streets = frame["street"].tolist()
    people = frame["population"].tolist() if "population" in frame.columns else [None] * len(frame)
    return [
        Community(code=codes[i], name=_text(names[i]), street=_text(streets[i]), geometry=geoms[i],
                  population=_population(people[i], p, i, codes[i]))
        for i in range(len(frame))
    ]


def _population(value: Any, path: str, index: int, code: str) -> int | None:
    """A community's residents: a whole number >= 0, or None when the file does not say."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise CommunityFileError(
            f"{_where(path, index, code)}: population is {value!r}, expected a whole number >= 0",
            path=path, index=index, feature_id=code, problem="population",
        )
    return int(value)


def load_checkpoints(path: str | Path) -> list[Checkpoint]:
    """Checkpoints from a vector file of Point features (properties id, name)."""
    p = str(path)
    frame = _read(path, CheckpointFileError)
    ids = frame["id"].tolist() if "id" in frame.columns else [None] * len(frame)
    _require(frame, ("id", "name"), p, ids, CheckpointFileError)
    ids = [_text(v) for v in ids]
    _unique(ids, p, "id", CheckpointFileError)
    out = []
    for i, (g, name) in enumerate(zip(frame.geometry.to_numpy(), frame["name"].tolist(), strict=True)):
        if g is None or g.is_empty or g.geom_type != "Point":
            kind = "nothing" if g is None or g.is_empty else repr(g.geom_type)
            raise CheckpointFileError(
                f"{_where(p, i, ids[i])}: geometry is {kind}, expected a Point",
                path=p,
                index=i,
                feature_id=ids[i],
                problem="geometry-type",
            )
        out.append(Checkpoint(id=ids[i], name=_text(name), lon=float(g.x), lat=float(g.y)))
    return out


def region_from_feature(feature: Mapping[str, Any]) -> Region:
    """One risk region from a GeoJSON Feature dict in EPSG:4326 (the control-topic value)."""
    if not isinstance(feature, Mapping):
        raise FeatureError(
            f"feature is {type(feature).__name__}, expected a GeoJSON Feature object", problem="not-a-feature"
        )
    props = feature.get("properties")
    if not isinstance(props, Mapping):
        props = {}
    fid = props.get("id", feature.get("id"))
    where = "feature" + ("" if _missing(fid) else f" (id {str(fid)!r})")
    ctx = {"feature_id": _id_or_none(fid)}
    if feature.get("type") != "Feature":
        raise FeatureError(
            f"{where}: type is {feature.get('type')!r}, expected 'Feature'", problem="not-a-feature", **ctx
        )
    if "id" not in props and not _missing(fid):
        props = {**props, "id": fid}
    raw = feature.get("geometry")
    if not isinstance(raw, Mapping):
        raise FeatureError(f"{where}: has no geometry", problem="no-geometry", **ctx)
    try:
        geom = shape(raw)
    except Exception as exc:
        raise FeatureError(
            f"{where}: geometry cannot be read: {exc}", problem="invalid-geometry", **ctx
        ) from exc
    coords = shapely.get_coordinates(geom)
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        raise FeatureError(
            f"{where}: geometry has a coordinate outside longitude [-180, 180] / latitude [-90, 90] (EPSG:4326)",
            problem="invalid-geometry",
            **ctx,
        )
    geoms = _checked_geometries(np.array([geom], dtype=object), where, [fid], FeatureError)
    return _region(props, geoms[0], where, FeatureError, **ctx)


def region_to_feature(region: Region) -> dict[str, Any]:
    """A GeoJSON Feature dict for `region` (the inverse of `region_from_feature`)."""
    return {
        "type": "Feature",
        "id": region.id,
        "properties": {
            "id": region.id,
            "level": region.level,
            "name": region.name,
            "effective_from": region.effective_from.isoformat(),
            "effective_until": None if region.effective_until is None else region.effective_until.isoformat(),
        },
        "geometry": shapely.geometry.mapping(region.geometry),
    }
