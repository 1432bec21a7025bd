"""CommunityIndex on the committed sample district: every community found, edges, outside, streets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from geo.communities import Community, CommunityIndex
from geo.errors import GeoValueError
from geo.load import load_communities

DISTRICT = Path(__file__).resolve().parents[2] / "config" / "geo" / "district.geojson"


@pytest.fixture(scope="module")
def communities() -> list[Community]:
    return load_communities(DISTRICT)


@pytest.fixture(scope="module")
def index(communities) -> CommunityIndex:
    return CommunityIndex(communities)


def test_each_community_owns_its_interior_point(communities, index) -> None:
    pts = [c.geometry.representative_point() for c in communities]
    codes = index.communities_at([p.x for p in pts], [p.y for p in pts])
    assert codes.tolist() == [c.code for c in communities]
    assert index.community_at(pts[5].x, pts[5].y) == communities[5].code


def test_points_outside_the_district_have_no_community(index) -> None:
    assert index.communities_at([116.4, 120.1, np.nan], [39.9, 30.4, 30.4]).tolist() == [None, None, None]
    assert index.community_at(121.47, 31.23) is None


def test_shared_edge_goes_to_one_of_the_two_neighbours(communities, index) -> None:
    a, b = next(
        (x, y)
        for i, x in enumerate(communities)
        for y in communities[i + 1 :]
        if x.geometry.intersection(y.geometry).length > 0
    )
    shared = a.geometry.intersection(b.geometry)
    p = shared.interpolate(0.5, normalized=True)
    assert index.community_at(p.x, p.y) == a.code  # first in input order wins


def test_vectorised_equals_scalar_and_covers_the_district(communities, index) -> None:
    rng = np.random.default_rng(5)
    xs = rng.uniform(120.2, 120.4, 3000)
    ys = rng.uniform(30.33, 30.5, 3000)
    many = index.communities_at(xs, ys)
    assert [index.community_at(x, y) for x, y in zip(xs[:300], ys[:300], strict=True)] == many[:300].tolist()
    outline = shapely.union_all([c.geometry for c in communities])
    inside = shapely.contains_xy(outline, xs, ys)
    assert all(code is not None for code in many[inside])
    assert all(code is None for code in many[~shapely.intersects_xy(outline, xs, ys)])


def test_streets_and_lookup_by_code(communities, index) -> None:
    c = communities[0]
    assert index.street_of(c.code) == c.street
    assert index.street_of("000000000") is None
    assert index.get(c.code) is c and len(index) == len(communities)
    assert sum(len(v) for v in index.streets().values()) == len(communities)


def test_duplicate_codes_are_refused() -> None:
    c = Community("1", "a", "s", shapely.box(0, 0, 1, 1))
    with pytest.raises(GeoValueError, match="'1' appears twice"):
        CommunityIndex([c, c])
