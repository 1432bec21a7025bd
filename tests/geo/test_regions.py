"""RiskIndex: point-in-region at a time, boundaries, holes, levels, updates and argument checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import shapely

from geo.errors import GeoValueError, InvalidGeometryError, UnknownRegionError
from geo.regions import LEVEL_CODE, Region, RiskIndex, to_epoch_seconds
from tests.geo.conftest import T0, T0_S, region

LATER = T0 + timedelta(days=1)


def ids(found: list[Region]) -> list[str]:
    return [r.id for r in found]


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (1.0, 1.0, ["a"]),  # inside
        (3.0, 1.0, []),  # outside, beside
        (1.0, -0.000001, []),  # just below the edge
        (2.0, 1.0, ["a"]),  # on the east edge
        (1.0, 0.0, ["a"]),  # on the south edge
        (0.0, 0.0, ["a"]),  # on a vertex
        (2.0, 2.0, ["a"]),  # the opposite vertex
    ],
)
def test_inside_outside_and_boundary(lon: float, lat: float, expected: list[str], square) -> None:
    index = RiskIndex([region("a", square)])
    assert ids(index.lookup(lon, lat, LATER)) == expected
    res = index.lookup_many([lon], [lat], [T0_S + 86_400])
    assert res.region_id[0] == (expected[0] if expected else None)
    assert res.level[0] == (LEVEL_CODE["high"] if expected else 0)
    assert res.matched_at[0] == (T0_S if expected else -1)


def test_hole_is_outside_but_its_edge_is_inside() -> None:
    donut = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(4, 4), (6, 4), (6, 6), (4, 6)]])
    index = RiskIndex([region("d", donut)])
    res = index.lookup_many([5.0, 4.0, 5.0, 2.0], [5.0, 5.0, 6.0, 2.0], T0_S)
    assert res.region_id.tolist() == [None, "d", "d", "d"]
    assert index.lookup(5.0, 5.0, T0) == []


def test_multipolygon_matches_either_part_and_not_the_gap() -> None:
    multi = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)])
    index = RiskIndex([region("m", multi, level="medium")])
    res = index.lookup_many([0.5, 5.5, 3.0], [0.5, 5.5, 3.0], T0_S)
    assert res.region_id.tolist() == ["m", "m", None]
    assert res.level.tolist() == [2, 2, 0]


def test_one_second_before_effective_from_is_outside_unless_pre_designation_covers_it(square) -> None:
    index = RiskIndex([region("a", square)])
    before = T0 - timedelta(seconds=1)
    assert index.lookup(1, 1, before) == []
    assert ids(index.lookup(1, 1, T0)) == ["a"]
    assert ids(index.lookup(1, 1, before, pre_designation=timedelta(seconds=1))) == ["a"]
    assert index.lookup(1, 1, before - timedelta(seconds=1), pre_designation=timedelta(seconds=1)) == []
    assert index.lookup_many([1], [1], [T0_S - 1]).level[0] == 0
    assert index.lookup_many([1], [1], [T0_S - 1], pre_designation=timedelta(seconds=1)).level[0] == 3
    assert index.lookup_many([1], [1], [T0_S - 3600], pre_designation=timedelta(hours=1)).level[0] == 3


def test_lifted_region_stops_matching_at_effective_until(square) -> None:
    index = RiskIndex([region("a", square)])
    lift_at = T0 + timedelta(days=3)
    index.lift("a", lift_at)
    assert index.get("a").effective_until == lift_at
    assert ids(index.lookup(1, 1, lift_at - timedelta(seconds=1))) == ["a"]
    assert index.lookup(1, 1, lift_at) == []
    lift_s = int(lift_at.timestamp())
    res = index.lookup_many([1, 1, 1], [1, 1, 1], [lift_s - 1, lift_s, lift_s + 10])
    assert res.region_id.tolist() == ["a", None, None]


def test_region_with_effective_until_in_file_ends_there(square) -> None:
    until = T0 + timedelta(hours=2)
    index = RiskIndex([region("a", square, until=until)])
    assert index.lookup_many([1, 1], [1, 1], [T0_S + 7199, T0_S + 7200]).level.tolist() == [3, 0]


def test_overlapping_high_and_medium_gives_high() -> None:
    medium = region("med", shapely.box(0, 0, 4, 4), level="medium")
    high = region("hi", shapely.box(2, 2, 6, 6), level="high", start=T0 + timedelta(hours=1))
    index = RiskIndex([medium, high])
    later = T0 + timedelta(hours=2)
    assert ids(index.lookup(3, 3, later)) == ["hi"]
    assert ids(index.lookup(1, 1, later)) == ["med"]
    # before the high region is designated, the overlap is medium
    assert ids(index.lookup(3, 3, T0)) == ["med"]
    res = index.lookup_many([3, 3, 1], [3, 3, 1], [T0_S, T0_S + 7200, T0_S + 7200])
    assert res.region_id.tolist() == ["med", "hi", "med"]
    assert res.level.tolist() == [2, 3, 2]
    assert res.matched_at.tolist() == [T0_S, T0_S + 3600, T0_S]


def test_same_level_tie_goes_to_earliest_designation_then_id(square) -> None:
    index = RiskIndex(
        [
            region("b", square, start=T0),
            region("a", square, start=T0),
            region("c", square, start=T0 - timedelta(hours=1)),
        ]
    )
    assert ids(index.lookup(1, 1, LATER)) == ["c", "a", "b"]
    assert index.lookup_many([1], [1], T0_S + 10).region_id[0] == "c"


def test_upsert_replaces_geometry_and_level(square) -> None:
    index = RiskIndex([region("a", square, level="low")])
    index.upsert(region("a", shapely.box(10, 10, 12, 12), level="medium"))
    assert len(index) == 1
    assert index.lookup(1, 1, LATER) == []
    assert index.lookup(11, 11, LATER)[0].level == "medium"
    res = index.lookup_many([1, 11], [1, 11], T0_S + 60)
    assert res.region_id.tolist() == [None, "a"]
    assert res.level.tolist() == [0, 2]


def test_many_upserts_fold_into_the_index_and_match_a_fresh_build() -> None:
    regions = [
        region(f"r{i}", shapely.box(i, 0, i + 1, 1), level=("low", "medium", "high")[i % 3]) for i in range(5)
    ]
    index = RiskIndex(regions[:1])
    for r in regions[1:]:
        index.upsert(r)
    extra = [region(f"x{i}", shapely.box(i + 0.25, 0.25, i + 0.75, 0.75), level="high") for i in range(200)]
    for r in extra:
        index.upsert(r)
    fresh = RiskIndex(regions + extra)
    xs = np.linspace(-1, 201, 4000)
    ys = np.full_like(xs, 0.5)
    got = index.lookup_many(xs, ys, T0_S)
    want = fresh.lookup_many(xs, ys, T0_S)
    assert got.region_id.tolist() == want.region_id.tolist()
    assert len(index) == 205


def test_remove_forgets_a_region(square) -> None:
    index = RiskIndex([region("a", square), region("b", shapely.box(5, 5, 6, 6))])
    index.remove("a")
    assert "a" not in index and index.get("a") is None
    assert index.lookup_many([1, 5.5], [1, 5.5], T0_S).region_id.tolist() == [None, "b"]
    with pytest.raises(UnknownRegionError, match="'a'"):
        index.remove("a")


def test_lift_unknown_region_names_it() -> None:
    with pytest.raises(UnknownRegionError, match="'nope'"):
        RiskIndex().lift("nope", T0)


def test_times_as_datetime64_datetimes_and_one_for_all(square) -> None:
    index = RiskIndex([region("a", square)])
    xs, ys = [1.0, 1.0], [1.0, 1.0]
    as64 = np.array(["2022-05-10T11:59:59", "2022-05-10T12:00:00"], dtype="datetime64[s]")
    assert index.lookup_many(xs, ys, as64).level.tolist() == [0, 3]
    aware = [T0 - timedelta(seconds=1), T0.astimezone(timezone(timedelta(hours=8)))]
    assert index.lookup_many(xs, ys, np.array(aware, dtype=object)).level.tolist() == [0, 3]
    assert index.lookup_many(xs, ys, T0_S).level.tolist() == [3, 3]
    assert to_epoch_seconds(np.array([1.9, -0.5])).tolist() == [1, -1]


def test_nan_coordinates_match_nothing(square) -> None:
    index = RiskIndex([region("a", square)])
    assert index.lookup_many([np.nan, 1.0], [1.0, 1.0], T0_S).level.tolist() == [0, 3]
    assert index.lookup(float("nan"), 1.0, T0) == []


def test_empty_index_and_empty_input(square) -> None:
    assert RiskIndex().lookup_many([1.0], [1.0], T0_S).level.tolist() == [0]
    res = RiskIndex([region("a", square)]).lookup_many([], [], [])
    assert res.level.shape == (0,) and res.region_id.shape == (0,)


def test_in_force_regions_overlap_stay(square) -> None:
    index = RiskIndex(
        [region("a", square, until=T0 + timedelta(days=1)), region("b", square, start=T0 + timedelta(days=5))]
    )
    assert ids(index.in_force_regions(T0 - timedelta(hours=1), T0)) == ["a"]
    assert ids(index.in_force_regions(T0 + timedelta(days=1), T0 + timedelta(days=2))) == []
    assert ids(index.in_force_regions(T0 + timedelta(days=4), T0 + timedelta(days=4), timedelta(days=1))) == [
        "b"
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ix: ix.lookup_many([1, 2], [1], 0), "lon has 2 values and lat 1"),
        (lambda ix: ix.lookup_many([1, 2], [1, 2], [0, 0, 0]), "t has 3 values for 2 points"),
        (lambda ix: ix.lookup_many([1], [1], 0, pre_designation=timedelta(seconds=-1)), "pre_designation is"),
        (lambda ix: ix.lookup(1, 1, datetime(2022, 5, 1)), "naive datetime"),
        (lambda ix: ix.lookup_many([1], [1], np.array([datetime(2022, 5, 1)], dtype=object)), "is naive"),
        (lambda ix: ix.lookup_many([1], [1], np.array(["x"])), "dtype <U1"),
    ],
)
def test_bad_arguments_are_refused_quoting_the_value(call, message: str, square) -> None:
    with pytest.raises(GeoValueError, match=message):
        call(RiskIndex([region("a", square)]))


def test_region_validates_its_fields(square) -> None:
    with pytest.raises(GeoValueError, match="level is 'severe'"):
        region("a", square, level="severe")
    with pytest.raises(GeoValueError, match="naive datetime"):
        Region("a", "high", "n", datetime(2022, 5, 1), None, square)
    with pytest.raises(GeoValueError, match="is before effective_from"):
        region("a", square, until=T0 - timedelta(seconds=1))
    with pytest.raises(InvalidGeometryError, match="'Point'"):
        region("a", shapely.Point(0, 0))
    with pytest.raises(InvalidGeometryError, match="empty"):
        region("a", shapely.Polygon())


def test_utc_and_shanghai_offsets_are_the_same_instant(square) -> None:
    shanghai = timezone(timedelta(hours=8))
    index = RiskIndex([region("a", square, start=datetime(2022, 5, 10, 20, 0, tzinfo=shanghai))])
    assert index.lookup(1, 1, datetime(2022, 5, 10, 11, 59, 59, tzinfo=UTC)) == []
    assert ids(index.lookup(1, 1, datetime(2022, 5, 10, 12, 0, tzinfo=UTC))) == ["a"]
