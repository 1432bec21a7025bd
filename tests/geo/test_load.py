"""Loading regions, communities and checkpoints: formats, CRS, validation messages, repairs."""

from __future__ import annotations

import logging
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo.errors import (
    CheckpointFileError,
    CommunityFileError,
    FeatureError,
    GeometryRepairedWarning,
    RegionFileError,
)
from geo.load import (
    load_checkpoints,
    load_communities,
    load_regions,
    region_from_feature,
    region_to_feature,
)
from geo.regions import RiskIndex
from tests.geo.conftest import feature, region_props, write_geojson

SHANGHAI = timezone(timedelta(hours=8))
BOWTIE = shapely.Polygon([(120.0, 30.0), (120.1, 30.1), (120.1, 30.0), (120.0, 30.1), (120.0, 30.0)])
FLAT = shapely.Polygon([(120.0, 30.0), (120.1, 30.0), (120.1, 30.1), (120.1, 30.0), (120.0, 30.0)])


def _regions_file(tmp_path: Path, n: int = 3) -> Path:
    feats = [
        feature(
            region_props(f"r{i}", level=("high", "medium", "low")[i % 3]),
            shapely.Polygon([(120 + i, 30), (120.4 + i, 30.05), (120.3 + i, 30.4), (120.05 + i, 30.3)]),
        )
        for i in range(n)
    ]
    return write_geojson(tmp_path / "regions.geojson", feats)


def test_loads_regions_with_times_and_levels(tmp_path: Path) -> None:
    feats = [
        feature(
            region_props("a", effective_until="2022-05-20T00:00:00+08:00"), shapely.box(120, 30, 121, 31)
        ),
        feature(region_props("b", level="Medium"), shapely.box(121, 30, 122, 31)),
    ]
    regions = load_regions(write_geojson(tmp_path / "r.geojson", feats))
    assert [r.id for r in regions] == ["a", "b"]
    assert regions[0].effective_from == datetime(2022, 5, 10, 20, 0, tzinfo=SHANGHAI)
    assert regions[0].effective_until == datetime(2022, 5, 20, 0, 0, tzinfo=SHANGHAI)
    assert regions[1].level == "medium" and regions[1].effective_until is None


def test_missing_level_names_the_file_feature_and_field(tmp_path: Path) -> None:
    props = region_props("r7")
    del props["level"]
    feats = [feature(region_props("r6"), shapely.box(0, 0, 1, 1)), feature(props, shapely.box(1, 1, 2, 2))]
    path = write_geojson(tmp_path / "bad.geojson", feats)
    with pytest.raises(
        RegionFileError, match=r"bad\.geojson: feature 1 \(id 'r7'\): missing required property 'level'"
    ) as err:
        load_regions(path)
    assert err.value.index == 1 and err.value.feature_id == "r7" and err.value.problem == "missing-property"


def test_file_without_a_level_column_names_the_field(tmp_path: Path) -> None:
    props = region_props("r1")
    del props["level"]
    path = write_geojson(tmp_path / "nolevel.geojson", [feature(props, shapely.box(0, 0, 1, 1))])
    with pytest.raises(RegionFileError, match=r"feature 0 \(id 'r1'\): missing required property 'level'"):
        load_regions(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"level": "severe"}, r"feature 0 \(id 'x'\): property 'level' is 'severe', expected one of"),
        (
            {"effective_from": "2022-05-10T20:00:00"},
            r"'effective_from' is '2022-05-10T20:00:00' without a UTC offset",
        ),
        ({"effective_from": "soon"}, r"'effective_from' is 'soon', expected an ISO 8601 time"),
        ({"name": ""}, r"feature 0 \(id 'x'\): missing required property 'name'"),
        (
            {"effective_until": "2022-05-01T00:00:00+08:00"},
            r"feature 0 \(id 'x'\): .*effective_until '2022-05-01T00:00:00\+08:00' is before effective_from",
        ),
    ],
)
def test_bad_properties_are_named(tmp_path: Path, change: dict, message: str) -> None:
    path = write_geojson(
        tmp_path / "p.geojson", [feature(region_props("x", **change), shapely.box(0, 0, 1, 1))]
    )
    with pytest.raises(RegionFileError, match=message):
        load_regions(path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    feats = [
        feature(region_props("dup"), shapely.box(0, 0, 1, 1)),
        feature(region_props("dup"), shapely.box(2, 2, 3, 3)),
    ]
    with pytest.raises(RegionFileError, match=r"feature 1 \(id 'dup'\): id 'dup' already used by feature 0"):
        load_regions(write_geojson(tmp_path / "d.geojson", feats))


def test_non_polygon_geometry_is_refused(tmp_path: Path) -> None:
    feats = [feature(region_props("line"), shapely.LineString([(0, 0), (1, 1)]))]
    with pytest.raises(
        RegionFileError, match=r"feature 0 \(id 'line'\): geometry is 'LineString', expected Polygon"
    ):
        load_regions(write_geojson(tmp_path / "l.geojson", feats))


def test_invalid_geometry_is_repaired_with_a_warning_naming_the_feature(tmp_path: Path) -> None:
    feats = [feature(region_props("ok"), shapely.box(0, 0, 1, 1)), feature(region_props("bow"), BOWTIE)]
    path = write_geojson(tmp_path / "bow.geojson", feats)
    with pytest.warns(
        GeometryRepairedWarning,
        match=r"bow\.geojson: feature 1 \(id 'bow'\): invalid geometry \(Self-intersection",
    ):
        regions = load_regions(path)
    repaired = regions[1].geometry
    assert repaired.is_valid and repaired.geom_type == "MultiPolygon"
    assert abs(repaired.area - 0.005) < 1e-9
    index = RiskIndex(regions)
    t = datetime(2022, 5, 11, tzinfo=SHANGHAI)
    assert [r.id for r in index.lookup(120.02, 30.05, t)] == ["bow"]  # inside the western triangle
    assert index.lookup(120.05, 30.02, t) == []  # in the notch between the two triangles


def test_geometry_with_nothing_polygonal_left_is_refused(tmp_path: Path) -> None:
    feats = [feature(region_props("flat"), FLAT)]
    with pytest.raises(
        RegionFileError, match=r"feature 0 \(id 'flat'\): invalid geometry .*nothing polygonal"
    ) as err:
        load_regions(write_geojson(tmp_path / "flat.geojson", feats))
    assert err.value.problem == "invalid-geometry"


def test_missing_file_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RegionFileError, match="no such file"):
        load_regions(tmp_path / "absent.geojson")
    junk = tmp_path / "junk.geojson"
    junk.write_text("not json", encoding="utf-8")
    with pytest.raises(RegionFileError, match="junk.geojson: cannot be read"):
        load_regions(junk)


@pytest.mark.parametrize("driver,suffix", [("GeoJSON", ".geojson"), ("GPKG", ".gpkg")])
def test_file_in_web_mercator_gives_the_same_answers_as_its_wgs84_twin(
    tmp_path: Path, driver: str, suffix: str
) -> None:
    source = _regions_file(tmp_path, n=4)
    frame = gpd.read_file(source, datetime_as_string=True)
    mercator = tmp_path / f"mercator{suffix}"
    frame.to_crs(3857).to_file(mercator, driver=driver)
    assert gpd.read_file(mercator).crs.to_epsg() == 3857
    a = load_regions(source)
    b = load_regions(mercator)
    assert [r.id for r in a] == [r.id for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert shapely.equals_exact(ra.geometry, rb.geometry, tolerance=1e-7)
    rng = np.random.default_rng(3)
    xs = rng.uniform(119.9, 124.6, 20_000)
    ys = rng.uniform(29.9, 30.5, 20_000)
    ts = int(datetime(2022, 5, 11, tzinfo=SHANGHAI).timestamp())
    ga = RiskIndex(a).lookup_many(xs, ys, ts)
    gb = RiskIndex(b).lookup_many(xs, ys, ts)
    # reprojection moves vertices by ~1e-9 degrees; ignore points within 1e-6 of any boundary
    edges = shapely.union_all([r.geometry.boundary for r in a])
    far = shapely.distance(shapely.points(xs, ys), edges) > 1e-6
    assert (ga.level > 0).sum() > 1000
    assert ga.region_id[far].tolist() == gb.region_id[far].tolist()


def test_shapefile_loads_with_short_time_field_names(tmp_path: Path) -> None:
    frame = gpd.read_file(_regions_file(tmp_path), datetime_as_string=True)
    frame = frame.drop(columns=["effective_until"]).rename(columns={"effective_from": "eff_from"})
    shp = tmp_path / "regions.shp"
    frame.assign(eff_until=["2022-05-12T00:00:00+08:00", "", ""]).to_file(shp)
    regions = load_regions(shp)
    assert [r.id for r in regions] == ["r0", "r1", "r2"]
    assert regions[0].effective_from == datetime(2022, 5, 10, 20, tzinfo=SHANGHAI)
    assert regions[0].effective_until == datetime(2022, 5, 12, tzinfo=SHANGHAI)
    assert regions[1].effective_until is None


def test_region_from_feature_round_trip() -> None:
    f = feature(
        region_props("f1", level="low", effective_until="2022-05-12T00:00:00+08:00"), shapely.box(1, 2, 3, 4)
    )
    r = region_from_feature(f)
    assert (r.id, r.level, r.effective_until) == ("f1", "low", datetime(2022, 5, 12, tzinfo=SHANGHAI))
    assert region_from_feature(region_to_feature(r)) == r


def test_region_from_feature_takes_the_feature_id_when_properties_lack_it() -> None:
    props = region_props("x")
    del props["id"]
    f = {**feature(props, shapely.box(0, 0, 1, 1)), "id": "top"}
    assert region_from_feature(f).id == "top"


@pytest.mark.parametrize(
    ("f", "message"),
    [
        ("nope", "feature is str, expected a GeoJSON Feature"),
        (
            {"type": "FeatureCollection", "properties": {"id": "q"}},
            r"feature \(id 'q'\): type is 'FeatureCollection'",
        ),
        (feature(region_props("g"), shapely.Point(0, 0)), r"feature \(id 'g'\).*'Point', expected Polygon"),
        (
            {"type": "Feature", "properties": region_props("n"), "geometry": None},
            r"feature \(id 'n'\): has no geometry",
        ),
        (
            feature({k: v for k, v in region_props("m").items() if k != "level"}, shapely.box(0, 0, 1, 1)),
            r"feature \(id 'm'\): missing required property 'level'",
        ),
        (feature(region_props("z"), FLAT), r"feature \(id 'z'\).*nothing polygonal"),
    ],
)
def test_region_from_feature_errors(f, message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        region_from_feature(f)


def test_region_from_feature_repairs_with_a_warning() -> None:
    with pytest.warns(GeometryRepairedWarning, match=r"feature \(id 'b'\)"):
        r = region_from_feature(feature(region_props("b"), BOWTIE))
    assert r.geometry.is_valid


def test_communities_load_and_name_missing_fields(tmp_path: Path) -> None:
    good = [
        feature({"code": "330106001", "name": "甲社区", "street": "翠苑街道"}, shapely.box(0, 0, 1, 1)),
        feature({"code": "330106002", "name": "乙社区", "street": "翠苑街道"}, shapely.box(1, 0, 2, 1)),
    ]
    communities = load_communities(write_geojson(tmp_path / "c.geojson", good))
    assert [(c.code, c.name, c.street) for c in communities] == [
        ("330106001", "甲社区", "翠苑街道"),
        ("330106002", "乙社区", "翠苑街道"),
    ]
    bad = good + [feature({"code": "330106003", "name": "丙社区", "street": None}, shapely.box(2, 0, 3, 1))]
    with pytest.raises(
        CommunityFileError, match=r"feature 2 \(id '330106003'\): missing required property 'street'"
    ):
        load_communities(write_geojson(tmp_path / "c2.geojson", bad))


def test_checkpoints_load_and_refuse_polygons(tmp_path: Path) -> None:
    pts = [feature({"id": "cp-1", "name": "西卡口"}, shapely.Point(120.25, 30.4))]
    (cp,) = load_checkpoints(write_geojson(tmp_path / "cp.geojson", pts))
    assert (cp.id, cp.name, cp.lon, cp.lat) == ("cp-1", "西卡口", 120.25, 30.4)
    poly = [feature({"id": "cp-2", "name": "x"}, shapely.box(0, 0, 1, 1))]
    with pytest.raises(
        CheckpointFileError, match=r"feature 0 \(id 'cp-2'\): geometry is 'Polygon', expected a Point"
    ):
        load_checkpoints(write_geojson(tmp_path / "cp2.geojson", poly))


def test_valid_file_loads_without_warnings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_regions(_regions_file(tmp_path))) == 3


def test_a_reprojected_file_is_logged_with_its_declared_crs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = _regions_file(tmp_path, n=2)
    mercator = tmp_path / "mercator.geojson"
    gpd.read_file(source, datetime_as_string=True).to_crs(3857).to_file(mercator, driver="GeoJSON")
    with caplog.at_level(logging.INFO, logger="geo.load"):
        load_regions(mercator)
    lines = [r.getMessage() for r in caplog.records if r.name == "geo.load"]
    assert any("reprojected" in line and "EPSG:3857" in line and "features=2" in line for line in lines), lines
