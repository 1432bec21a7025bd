"""Shared helpers for the geo tests: regions at fixed times and small GeoJSON files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely

from geo.regions import Region

T0 = datetime(2022, 5, 10, 12, 0, tzinfo=UTC)
T0_S = int(T0.timestamp())


def region(
    rid: str,
    geom: Any,
    level: str = "high",
    start: datetime = T0,
    until: datetime | None = None,
) -> Region:
    """A region with defaults that keep tests short."""
    return Region(rid, level, f"region {rid}", start, until, geom)


def feature(props: dict[str, Any], geom: Any) -> dict[str, Any]:
    """A GeoJSON Feature dict."""
    return {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(geom)}


def region_props(rid: str, level: str = "high", **extra: Any) -> dict[str, Any]:
    """Valid region properties."""
    props = {
        "id": rid,
        "level": level,
        "name": f"region {rid}",
        "effective_from": "2022-05-10T20:00:00+08:00",
        "effective_until": None,
    }
    props.update(extra)
    return props


def write_geojson(path: Path, features: list[dict[str, Any]], crs: str | None = None) -> Path:
    """Write a FeatureCollection (with an old-style `crs` member when `crs` is given)."""
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def square() -> shapely.Polygon:
    """The unit square from (0, 0) to (2, 2)."""
    return shapely.box(0.0, 0.0, 2.0, 2.0)


@pytest.fixture
def hour() -> timedelta:
    return timedelta(hours=1)
