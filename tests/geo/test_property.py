"""Property tests: the vectorised lookup equals the naive one; updates equal a fresh build."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import shapely
import shapely.affinity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.naive import naive_lookup_many
from geo.regions import RiskIndex
from tests.geo.conftest import T0, T0_S, region

LEVELS = ("low", "medium", "high")
# Coordinates on a coarse grid so that points often fall exactly on edges and vertices.
coord = st.integers(0, 20).map(lambda v: v / 2)


@st.composite
def polygons(draw):
    kind = draw(st.sampled_from(["box", "triangle", "donut", "multi"]))
    x0, y0 = draw(coord), draw(coord)
    w, h = draw(st.integers(1, 8)) / 2, draw(st.integers(1, 8)) / 2
    if kind == "box":
        return shapely.box(x0, y0, x0 + w, y0 + h)
    if kind == "triangle":
        return shapely.Polygon([(x0, y0), (x0 + w, y0), (x0, y0 + h)])
    if kind == "donut":
        outer = shapely.box(x0, y0, x0 + 2 * w, y0 + 2 * h)
        return shapely.Polygon(
            outer.exterior.coords, [shapely.box(x0 + w / 2, y0 + h / 2, x0 + w, y0 + h).exterior.coords]
        )
    return shapely.MultiPolygon(
        [shapely.box(x0, y0, x0 + w, y0 + h), shapely.box(x0 + w + 1, y0, x0 + 2 * w + 1, y0 + h)]
    )


@st.composite
def region_sets(draw):
    n = draw(st.integers(0, 12))
    out = []
    for i in range(n):
        start = T0 + timedelta(seconds=draw(st.integers(-50, 50)))
        until = draw(
            st.one_of(st.none(), st.integers(0, 100).map(lambda s, start=start: start + timedelta(seconds=s)))
        )
        out.append(
            region(
                f"r{i:02d}", draw(polygons()), level=draw(st.sampled_from(LEVELS)), start=start, until=until
            )
        )
    return out


@st.composite
def point_sets(draw):
    n = draw(st.integers(1, 60))
    xs = draw(st.lists(st.one_of(coord, st.floats(-1, 12, allow_nan=False)), min_size=n, max_size=n))
    ys = draw(st.lists(st.one_of(coord, st.floats(-1, 12, allow_nan=False)), min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(T0_S - 80, T0_S + 160), min_size=n, max_size=n))
    return np.array(xs), np.array(ys), np.array(ts, dtype=np.int64)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(regions=region_sets(), points=point_sets(), pre=st.integers(0, 60))
def test_vectorised_lookup_equals_naive(regions, points, pre) -> None:
    xs, ys, ts = points
    pre_td = timedelta(seconds=pre)
    got = RiskIndex(regions).lookup_many(xs, ys, ts, pre_designation=pre_td)
    want = naive_lookup_many(regions, xs, ys, ts, pre_designation=pre_td)
    assert got.level.tolist() == want.level.tolist()
    assert got.region_id.tolist() == want.region_id.tolist()
    assert got.matched_at.tolist() == want.matched_at.tolist()


@FAST
@given(regions=region_sets(), points=point_sets(), pre=st.integers(0, 60))
def test_scalar_lookup_agrees_with_vectorised(regions, points, pre) -> None:
    xs, ys, ts = points
    index = RiskIndex(regions)
    pre_td = timedelta(seconds=pre)
    many = index.lookup_many(xs, ys, ts, pre_designation=pre_td)
    for i in range(len(xs)):
        found = index.lookup(float(xs[i]), float(ys[i]), T0 + timedelta(seconds=int(ts[i]) - T0_S), pre_td)
        assert (found[0].id if found else None) == many.region_id[i]
        assert all(r.level_code == many.level[i] for r in found)


@FAST
@given(
    regions=region_sets(),
    points=point_sets(),
    ops=st.lists(
        st.tuples(st.sampled_from(["lift", "remove", "upsert"]), st.integers(0, 11), st.integers(0, 90))
    ),
)
def test_updates_equal_a_fresh_build(regions, points, ops) -> None:
    xs, ys, ts = points
    index = RiskIndex(regions[: len(regions) // 2])
    for r in regions[len(regions) // 2 :]:
        index.upsert(r)
    current = {r.id: r for r in regions}
    for op, k, secs in ops:
        if not current:
            break
        rid = sorted(current)[k % len(current)]
        if op == "remove":
            index.remove(rid)
            del current[rid]
        elif op == "lift":
            at = max(current[rid].effective_from, T0 + timedelta(seconds=secs - 40))
            index.lift(rid, at)
            current[rid] = current[rid].lifted(at)
        else:
            moved = region(rid, shapely.affinity.translate(current[rid].geometry, 1, 0), level="high")
            index.upsert(moved)
            current[rid] = moved
    fresh = RiskIndex(current.values())
    got = index.lookup_many(xs, ys, ts)
    want = fresh.lookup_many(xs, ys, ts)
    assert got.region_id.tolist() == want.region_id.tolist()
    assert got.level.tolist() == want.level.tolist()
    assert sorted(r.id for r in index) == sorted(current)
    for i in range(min(len(xs), 10)):
        t = T0 + timedelta(seconds=int(ts[i]) - T0_S)
        assert [r.id for r in index.lookup(float(xs[i]), float(ys[i]), t)] == [
            r.id for r in fresh.lookup(float(xs[i]), float(ys[i]), t)
        ]
