"""Deterministic sample geography: a district cut into communities, national risk regions, checkpoints.

`write_sample(out_dir, seed)` writes `district.geojson`, `risk_regions.geojson` and
`checkpoints.geojson`; the same seed always gives the same bytes (coordinates on a 1e-6 grid,
one feature per line, keys in a fixed order).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.errors import GeoValueError

__all__ = [
    "DISTRICT_BOX",
    "SPAN_START",
    "SPAN_END",
    "SampleGeography",
    "make_sample",
    "write_sample",
    "SAMPLE_FILES",
]

DISTRICT_BOX = (120.20, 30.33, 120.40, 30.50)
_DISTRICT_CENTRE = (120.300, 30.415)
_DISTRICT_CODE = "330106"
_CST = timezone(timedelta(hours=8))
SPAN_START = datetime(2022, 5, 1, tzinfo=_CST)
SPAN_END = datetime(2022, 7, 1, tzinfo=_CST)  # exclusive: 61 calendar days, 2022-05-01 .. 2022-06-30
SAMPLE_FILES = ("district.geojson", "risk_regions.geojson", "checkpoints.geojson")
_GRID = 1e-6

# A coarse outline of mainland China (lon, lat), clockwise from the Mohe north tip.
_CHINA = [
    (121.2, 53.3),
    (123.5, 53.5),
    (126.0, 52.8),
    (127.6, 49.8),
    (130.6, 48.9),
    (134.7, 48.3),
    (133.1, 45.1),
    (131.2, 44.9),
    (131.0, 42.9),
    (129.6, 42.4),
    (128.1, 41.4),
    (126.0, 40.4),
    (124.3, 39.9),
    (122.3, 39.4),
    (121.3, 38.8),
    (121.9, 40.0),
    (121.0, 40.8),
    (119.5, 39.8),
    (118.0, 39.1),
    (117.8, 38.3),
    (118.9, 37.6),
    (120.7, 37.8),
    (122.5, 37.4),
    (120.3, 36.0),
    (119.2, 34.6),
    (120.9, 32.6),
    (121.9, 31.0),
    (121.9, 30.0),
    (121.4, 28.3),
    (120.3, 26.9),
    (119.6, 25.4),
    (118.1, 24.4),
    (116.6, 23.2),
    (114.2, 22.4),
    (113.0, 22.0),
    (110.4, 21.2),
    (110.0, 20.3),
    (109.7, 21.4),
    (108.6, 21.6),
    (107.9, 21.5),
    (106.7, 22.0),
    (105.5, 23.2),
    (103.9, 22.6),
    (101.8, 21.2),
    (100.1, 21.6),
    (99.2, 22.1),
    (98.6, 24.1),
    (97.6, 23.9),
    (98.0, 25.5),
    (98.7, 27.5),
    (97.6, 28.3),
    (96.0, 29.0),
    (94.0, 27.8),
    (92.0, 27.8),
    (89.0, 27.3),
    (86.0, 27.9),
    (84.0, 28.6),
    (81.2, 30.0),
    (79.0, 31.3),
    (78.7, 32.6),
    (79.3, 34.5),
    (77.8, 35.5),
    (75.5, 36.8),
    (74.5, 38.6),
    (73.6, 39.5),
    (74.0, 40.5),
    (76.0, 40.4),
    (78.5, 41.6),
    (80.2, 42.2),
    (80.8, 43.2),
    (80.4, 45.0),
    (82.5, 45.4),
    (83.0, 47.2),
    (85.5, 47.1),
    (87.3, 49.1),
    (88.5, 48.3),
    (90.5, 47.5),
    (91.0, 45.5),
    (95.0, 44.3),
    (96.4, 42.8),
    (100.8, 42.6),
    (105.0, 41.6),
    (107.2, 42.2),
    (110.4, 42.7),
    (111.9, 43.7),
    (111.6, 45.0),
    (113.6, 44.8),
    (117.4, 46.6),
    (119.9, 46.7),
    (118.5, 47.9),
    (117.8, 49.5),
    (119.2, 50.3),
    (120.5, 52.6),
]

# (name, lon, lat, weight): where most designations of spring 2022 fell.
_CITIES = [
    ("上海市", 121.47, 31.23, 10),
    ("北京市", 116.40, 39.90, 6),
    ("吉林市", 126.55, 43.84, 4),
    ("长春市", 125.32, 43.82, 4),
    ("广州市", 113.26, 23.13, 3),
    ("深圳市", 114.06, 22.54, 3),
    ("天津市", 117.20, 39.13, 3),
    ("杭州市", 120.16, 30.27, 3),
    ("苏州市", 120.58, 31.30, 3),
    ("郑州市", 113.62, 34.75, 2),
    ("成都市", 104.07, 30.67, 2),
    ("重庆市", 106.55, 29.56, 2),
    ("武汉市", 114.31, 30.59, 2),
    ("西安市", 108.94, 34.34, 2),
    ("南京市", 118.80, 32.06, 2),
    ("沈阳市", 123.43, 41.80, 2),
    ("哈尔滨市", 126.63, 45.75, 2),
    ("济南市", 117.00, 36.67, 1),
    ("青岛市", 120.38, 36.07, 1),
    ("长沙市", 112.94, 28.23, 1),
    ("福州市", 119.30, 26.08, 1),
    ("厦门市", 118.09, 24.48, 1),
    ("南宁市", 108.32, 22.82, 1),
    ("昆明市", 102.83, 24.88, 1),
    ("贵阳市", 106.63, 26.65, 1),
    ("兰州市", 103.83, 36.06, 1),
    ("西宁市", 101.78, 36.62, 1),
    ("银川市", 106.23, 38.49, 1),
    ("呼和浩特市", 111.75, 40.84, 1),
    ("乌鲁木齐市", 87.62, 43.83, 1),
    ("拉萨市", 91.13, 29.65, 1),
    ("太原市", 112.55, 37.87, 1),
    ("石家庄市", 114.51, 38.04, 1),
    ("合肥市", 117.23, 31.82, 1),
    ("南昌市", 115.86, 28.68, 1),
    ("大连市", 121.61, 38.91, 1),
    ("宁波市", 121.55, 29.87, 1),
    ("温州市", 120.70, 28.00, 1),
    ("东莞市", 113.75, 23.02, 1),
    ("佛山市", 113.12, 23.02, 1),
    ("唐山市", 118.18, 39.63, 1),
    ("丹东市", 124.38, 40.13, 1),
]

_PLACE_WORDS = list(
    "翠文古西灵北留转蒋嘉桂竹丰学松金玉梅兰荷春秋华新明德安康和平锦绣景瑞祥云溪湖山水林园苑庭"
)
_PLACE_SUFFIXES = ["小区", "花园", "新村", "公寓", "家园", "村", "苑", "大厦"]
_POPULATION_STREAM = 14
_STREETS = [
    "翠苑街道",
    "文新街道",
    "古荡街道",
    "西溪街道",
    "灵隐街道",
    "北山街道",
    "留下街道",
    "蒋村街道",
    "转塘街道",
]
_COMMUNITY_QUALIFIERS = ["", "东", "西", "南", "北", "新", "一", "二", "三"]
# Roads crossing the district: (name, one end, other end, names of the two ends), drawn past the outline.
_ROADS = [
    ("文一西路", (120.17, 30.425), (120.43, 30.440), ("西", "东")),
    ("天目山路", (120.17, 30.395), (120.43, 30.382), ("西", "东")),
    ("紫金港路", (120.318, 30.30), (120.290, 30.53), ("南", "北")),
    ("留石快速路", (120.19, 30.350), (120.42, 30.480), ("西南", "东北")),
]
_ANNOUNCE_HOURS = [0, 10, 12, 15, 18, 20, 22]
_LEVEL_P = {"high": 0.2, "medium": 0.35, "low": 0.45}
_LIFT_DAYS = {"high": (14, 28), "medium": (7, 14), "low": (5, 10)}


@dataclass(frozen=True)
class SampleGeography:
    """The generated features, before they are written."""

    outline: BaseGeometry
    communities: list[dict[str, Any]]
    regions: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]


# -- geometry helpers ----------------------------------------------------------------------------
def _snap(geom: BaseGeometry) -> BaseGeometry:
    """Coordinates onto the 1e-6 degree grid, staying valid, exterior rings counter-clockwise."""
    snapped = shapely.set_precision(geom, _GRID)
    return shapely.orient_polygons(snapped)


def _smooth_outline(
    rng: np.random.Generator, centre: tuple[float, float], rx: float, ry: float, n: int = 72
) -> shapely.Polygon:
    angles = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    wobble = np.ones(n)
    for k in (2, 3, 5):
        wobble += rng.uniform(0.03, 0.07) * np.sin(k * angles + rng.uniform(0, 2 * math.pi))
    xs = centre[0] + rx * wobble * np.cos(angles)
    ys = centre[1] + ry * wobble * np.sin(angles)
    return shapely.Polygon(np.c_[xs, ys])


def _star(rng: np.random.Generator, cx: float, cy: float, r: float) -> shapely.Polygon:
    """An irregular star-shaped (hence simple) polygon of radius about `r` degrees."""
    k = int(rng.integers(7, 15))
    base = np.linspace(0.0, 2 * math.pi, k, endpoint=False)
    angles = base + rng.uniform(-0.3, 0.3, k) * (2 * math.pi / k)
    radii = r * rng.uniform(0.6, 1.0, k)
    stretch = 1.0 / math.cos(math.radians(cy))
    return shapely.Polygon(np.c_[cx + radii * np.cos(angles) * stretch, cy + radii * np.sin(angles)])


def _coords(ring: Any) -> list[list[float]]:
    return [[round(x, 6), round(y, 6)] for x, y in ring.coords]


def _geojson_geometry(geom: BaseGeometry) -> dict[str, Any]:
    if geom.geom_type == "Point":
        return {"type": "Point", "coordinates": [round(geom.x, 6), round(geom.y, 6)]}
    if geom.geom_type == "Polygon":
        return {
            "type": "Polygon",
            "coordinates": [_coords(geom.exterior)] + [_coords(r) for r in geom.interiors],
        }
    if geom.geom_type == "MultiPolygon":
        return {
            "type": "MultiPolygon",
            "coordinates": [[_coords(p.exterior)] + [_coords(r) for r in p.interiors] for p in geom.geoms],
        }
    raise GeoValueError(f"cannot write geometry type {geom.geom_type!r}")


# -- district ------------------------------------------------------------------------------------
def _sample_inside(rng: np.random.Generator, poly: BaseGeometry, n: int) -> np.ndarray:
    minx, miny, maxx, maxy = poly.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        cand = np.c_[rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)]
        cand = cand[shapely.contains_xy(poly, cand[:, 0], cand[:, 1])]
        out = np.vstack([out, cand])
    return out[:n]


def _cells(outline: BaseGeometry, seeds: np.ndarray, relax: int = 3) -> list[BaseGeometry]:
    """Voronoi cells of the seeds clipped to the outline, with a few Lloyd steps for even sizes."""
    for _ in range(relax + 1):
        diagram = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=outline, ordered=True)
        cells = [shapely.intersection(c, outline) for c in diagram.geoms]
        seeds = np.array([[c.centroid.x, c.centroid.y] for c in cells])
    return [_snap(c) for c in cells]


def _districts(rng: np.random.Generator, n_communities: int) -> tuple[BaseGeometry, list[dict[str, Any]]]:
    outline = _snap(_smooth_outline(rng, _DISTRICT_CENTRE, 0.080, 0.066))
    seeds = _sample_inside(rng, outline, n_communities)
    cells = _cells(outline, seeds)
    cx, cy = _DISTRICT_CENTRE
    cents = np.array([[c.centroid.x, c.centroid.y] for c in cells])
    dx = (cents[:, 0] - cx) / 0.080
    dy = (cents[:, 1] - cy) / 0.066
    sector = (np.floor((np.arctan2(dy, dx) + math.pi) / (2 * math.pi) * 8).astype(int) % 8) + 1
    street_no = np.where(np.hypot(dx, dy) < 0.33, 0, sector)
    order = np.lexsort((cents[:, 0], -cents[:, 1], street_no))
    names = _unique_names(rng, len(cells), _COMMUNITY_QUALIFIERS, "社区")
    communities = []
    for serial, i in enumerate(order.tolist(), start=1):
        communities.append(
            {
                "code": f"{_DISTRICT_CODE}{serial:03d}",
                "name": names[serial - 1],
                "street": _STREETS[int(street_no[i])],
                "geometry": cells[i],
            }
        )
    return outline, communities


def _add_population(rng: np.random.Generator, communities: list[dict[str, Any]]) -> None:
    """Residents per community (2,000 to 12,000, in tens), from their own random stream so the shapes stay put."""
    for community in communities:
        community["population"] = int(rng.integers(200, 1201)) * 10


def _unique_names(rng: np.random.Generator, n: int, qualifiers: list[str], suffix: str) -> list[str]:
    """`n` distinct names: two place words, a qualifier, a suffix."""
    pairs = [a + b for a in _PLACE_WORDS for b in _PLACE_WORDS if a != b]
    combos = [p + q for p in pairs for q in qualifiers]
    if n > len(combos):
        raise GeoValueError(f"cannot make {n} distinct names from {len(combos)} word combinations")
    return [combos[i] + suffix for i in rng.permutation(len(combos))[:n].tolist()]


# -- risk regions --------------------------------------------------------------------------------
def _region_times(rng: np.random.Generator, level: str) -> tuple[datetime, datetime | None]:
    day = int(rng.integers(0, (SPAN_END - SPAN_START).days))
    hour = int(rng.choice(_ANNOUNCE_HOURS))
    start = SPAN_START + timedelta(days=day, hours=hour)
    lo, hi = _LIFT_DAYS[level]
    until = start.replace(hour=0) + timedelta(
        days=int(rng.integers(lo, hi + 1)), hours=int(rng.choice([0, 10, 15]))
    )
    return start, (until if until < SPAN_END else None)


def _regions(
    rng: np.random.Generator, n_regions: int, communities: list[dict[str, Any]], n_in_district: int
) -> list[dict[str, Any]]:
    china = shapely.Polygon(_CHINA)
    if not china.is_valid:
        raise GeoValueError(f"the built-in China outline is invalid: {shapely.is_valid_reason(china)}")
    weights = np.array([c[3] for c in _CITIES], dtype=float)
    weights /= weights.sum()
    levels = list(_LEVEL_P)
    level_p = np.array([_LEVEL_P[k] for k in levels])
    n_rest = n_regions - n_in_district
    n_uniform = n_rest // 5
    uniform_pts = _sample_inside(rng, china, n_uniform)
    centres: list[tuple[float, float, str]] = []
    for i in range(n_rest):
        if i < n_uniform:
            centres.append((float(uniform_pts[i, 0]), float(uniform_pts[i, 1]), ""))
            continue
        city = _CITIES[int(rng.choice(len(_CITIES), p=weights))]
        spread = 0.12 if city[3] < 5 else 0.2
        centres.append((city[1] + rng.normal(0, spread), city[2] + rng.normal(0, spread * 0.8), city[0]))
    picks = rng.choice(len(communities), size=n_in_district, replace=False)
    for j in picks.tolist():
        c = communities[j]["geometry"].representative_point()
        centres.append((c.x, c.y, "杭州市西湖区"))
    order = rng.permutation(len(centres))
    names = _unique_names(rng, len(centres), ["", "东", "西", "南", "北"], "")
    regions = []
    for serial, i in enumerate(order.tolist(), start=1):
        cx, cy, city = centres[i]
        in_district = i >= n_rest
        r = float(rng.uniform(0.002, 0.004) if in_district else rng.uniform(0.004, 0.015))
        shape = _star(rng, cx, cy, r)
        roll = rng.random()
        if roll < 0.05 and not in_district:
            second = _star(rng, cx + 3.2 * r, cy + rng.uniform(-r, r), r * 0.7)
            shape = shapely.MultiPolygon([shape, second])
        elif roll < 0.08:
            hole = _star(rng, cx, cy, r * 0.3)
            shape = shapely.Polygon(shape.exterior.coords, [hole.exterior.coords[::-1]])
        level = levels[int(rng.choice(3, p=level_p))]
        start, until = _region_times(rng, level)
        suffix = _PLACE_SUFFIXES[int(rng.integers(len(_PLACE_SUFFIXES)))]
        regions.append(
            {
                "id": f"rr-{serial:05d}",
                "level": level,
                "name": f"{city or _province_of(cx, cy)}{names[serial - 1]}{suffix}",
                "effective_from": start.isoformat(),
                "effective_until": None if until is None else until.isoformat(),
                "geometry": _snap(shape),
            }
        )
    return regions


def _province_of(lon: float, lat: float) -> str:
    """The nearest listed city's name, for regions placed away from the cities."""
    d = [(lon - c[1]) ** 2 + (lat - c[2]) ** 2 for c in _CITIES]
    return _CITIES[int(np.argmin(d))][0] + "郊区"


# -- checkpoints ---------------------------------------------------------------------------------
def _checkpoints(outline: BaseGeometry) -> list[dict[str, Any]]:
    """One checkpoint where each road enters and leaves the district, 300 m inside the outline."""
    out = []
    n = 0
    for road, a, b, (first, last) in _ROADS:
        line = shapely.LineString([a, b])
        inside = shapely.intersection(line, outline)
        parts = [g for g in shapely.get_parts(inside) if g.geom_type == "LineString"]
        if not parts:
            continue
        seg = max(parts, key=lambda g: g.length)
        step = 0.003
        for end, label in ((seg.interpolate(step), first), (seg.interpolate(seg.length - step), last)):
            n += 1
            out.append(
                {"id": f"cp-{n:02d}", "name": f"{road}{label}卡口", "road": road, "geometry": _snap(end)}
            )
    return out


def make_sample(
    seed: int = 7, n_communities: int = 180, n_regions: int = 2400, n_in_district: int = 8
) -> SampleGeography:
    """Build the sample geography for `seed` (same seed, same result)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GeoValueError(f"seed is {seed!r}, expected an int >= 0")
    if n_communities < 9:
        raise GeoValueError(f"n_communities is {n_communities!r}, expected at least 9 (one per street)")
    if not 0 <= n_in_district <= min(n_regions, n_communities):
        raise GeoValueError(
            f"n_in_district is {n_in_district!r}, expected 0..{min(n_regions, n_communities)}"
        )
    rng = np.random.default_rng(seed)
    outline, communities = _districts(rng, n_communities)
    _add_population(np.random.default_rng([seed, _POPULATION_STREAM]), communities)
    regions = _regions(rng, n_regions, communities, n_in_district)
    return SampleGeography(outline, communities, regions, _checkpoints(outline))


def _feature_collection(name: str, features: list[dict[str, Any]]) -> str:
    lines = []
    for f in features:
        props = {k: v for k, v in f.items() if k != "geometry"}
        feature = {"type": "Feature", "properties": props, "geometry": _geojson_geometry(f["geometry"])}
        lines.append(json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
    head = json.dumps({"type": "FeatureCollection", "name": name}, ensure_ascii=False)[:-1]
    return head + ', "features": [\n' + ",\n".join(lines) + "\n]}\n"


def write_sample(out_dir: str | Path, seed: int = 7, **sizes: int) -> list[Path]:
    """Write the sample files into `out_dir` (created if needed); returns their paths."""
    sample = make_sample(seed, **sizes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "district.geojson": _feature_collection("district", sample.communities),
        "risk_regions.geojson": _feature_collection("risk_regions", sample.regions),
        "checkpoints.geojson": _feature_collection("checkpoints", sample.checkpoints),
    }
    paths = []
    for name in SAMPLE_FILES:
        path = out / name
        path.write_bytes(texts[name].encode("utf-8"))
        paths.append(path)
    return paths
