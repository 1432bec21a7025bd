"""Benchmark of the region lookup (vectorised vs naive) and the retroactive sweep; prints one JSON object.

Run: ``python -m geo.bench`` (options: ``--points``, ``--naive-points``, ``--places``, ``--seed``).
Points are a mix of uniform-over-China, inside-the-district and near-a-region positions, with
times spread over the sample's 60-day span, so both the miss path and the exact test are exercised.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import shapely

from geo.communities import CommunityIndex
from geo.generate import DISTRICT_BOX, SPAN_END, SPAN_START, _star
from geo.load import load_communities, load_regions
from geo.naive import naive_lookup_many
from geo.regions import Region, RiskIndex
from geo.sweep import KEY_DTYPE, PlaceStore, sweep

__all__ = ["main", "run"]

_CONFIG = Path(__file__).resolve().parent.parent / "config" / "geo"
_CHINA_BOX = (73.5, 18.0, 135.0, 53.6)


def _points(rng: np.random.Generator, regions: list[Region], n: int) -> tuple[np.ndarray, np.ndarray]:
    third = n // 3
    cents = shapely.get_coordinates(shapely.centroid(np.array([r.geometry for r in regions], dtype=object)))
    pick = cents[rng.integers(0, len(cents), n - 2 * third)]
    x = np.concatenate(
        [
            rng.uniform(_CHINA_BOX[0], _CHINA_BOX[2], third),
            rng.uniform(DISTRICT_BOX[0], DISTRICT_BOX[2], third),
            pick[:, 0] + rng.normal(0, 0.008, len(pick)),
        ]
    )
    y = np.concatenate(
        [
            rng.uniform(_CHINA_BOX[1], _CHINA_BOX[3], third),
            rng.uniform(DISTRICT_BOX[1], DISTRICT_BOX[3], third),
            pick[:, 1] + rng.normal(0, 0.008, len(pick)),
        ]
    )
    order = rng.permutation(n)
    return x[order], y[order]


def _timed(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _new_regions(rng: np.random.Generator, k: int) -> list[Region]:
    start = SPAN_END - timedelta(days=3)
    out = []
    for i in range(k):
        if i < k - 2:
            cx = rng.uniform(DISTRICT_BOX[0] + 0.03, DISTRICT_BOX[2] - 0.03)
            cy = rng.uniform(DISTRICT_BOX[1] + 0.03, DISTRICT_BOX[3] - 0.03)
        else:
            cx, cy = rng.uniform(100, 120), rng.uniform(25, 40)
        geom = shapely.set_precision(_star(rng, cx, cy, 0.004), 1e-6)
        out.append(Region(f"new-{i:02d}", "high", f"new region {i}", start, None, geom))
    return out


def _fill_store(rng: np.random.Generator, n: int, persons: int, block: int = 1_000_000) -> PlaceStore:
    store = PlaceStore()
    keys = np.zeros(persons, dtype=KEY_DTYPE)
    keys["raw"] = rng.integers(0, 256, (persons, 32), dtype=np.uint8)
    keys["packed"] = True
    end = int(SPAN_END.timestamp())
    begin = end - 14 * 86_400
    done = 0
    while done < n:
        m = min(block, n - done)
        local = rng.random(m) < 0.9
        x = np.where(
            local,
            rng.uniform(DISTRICT_BOX[0], DISTRICT_BOX[2], m),
            rng.uniform(_CHINA_BOX[0], _CHINA_BOX[2], m),
        )
        y = np.where(
            local,
            rng.uniform(DISTRICT_BOX[1], DISTRICT_BOX[3], m),
            rng.uniform(_CHINA_BOX[1], _CHINA_BOX[3], m),
        )
        a = rng.integers(begin, end, m)
        b = a + rng.integers(300, 6 * 3600, m)
        store.add_packed(keys[rng.integers(0, persons, m)], x, y, a, b)
        done += m
    return store


def run(
    points: int = 1_000_000,
    naive_points: int = 20_000,
    places: int = 10_000_000,
    seed: int = 1,
    regions_path: Path = _CONFIG / "risk_regions.geojson",
) -> dict[str, object]:
    """Measure everything and return the figures."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    regions = load_regions(regions_path)
    load_s = time.perf_counter() - t0
    build_s, index = _timed(lambda: RiskIndex(regions))
    x, y = _points(rng, regions, points)
    t = rng.integers(int(SPAN_START.timestamp()), int(SPAN_END.timestamp()), points)
    index.lookup_many(x[:1000], y[:1000], t[:1000])
    lookup_s, result = _timed(lambda: index.lookup_many(x, y, t))
    n_naive = min(naive_points, points)
    naive_s, naive = _timed(
        lambda: naive_lookup_many(regions, x[:n_naive], y[:n_naive], t[:n_naive]), repeat=1
    )
    agree = bool(
        np.array_equal(naive.level, result.level[:n_naive])
        and np.array_equal(naive.region_id, result.region_id[:n_naive])
        and np.array_equal(naive.matched_at, result.matched_at[:n_naive])
    )
    communities = CommunityIndex(load_communities(_CONFIG / "district.geojson"))
    cx = rng.uniform(DISTRICT_BOX[0], DISTRICT_BOX[2], points)
    cy = rng.uniform(DISTRICT_BOX[1], DISTRICT_BOX[3], points)
    community_s, _ = _timed(lambda: communities.communities_at(cx, cy))
    store = _fill_store(rng, places, persons=max(1, places // 20))
    new = _new_regions(rng, 10)
    sweep_s, found = _timed(lambda: sweep(store, new, pre_designation=timedelta(days=2)), repeat=1)
    lookup_rate = points / lookup_s
    naive_rate = n_naive / naive_s
    return {
        "regions": len(regions),
        "points": points,
        "load_regions_s": round(load_s, 4),
        "index_build_s": round(build_s, 4),
        "lookup_s": round(lookup_s, 4),
        "lookup_points_per_s": round(lookup_rate),
        "lookup_matched": int((result.level > 0).sum()),
        "naive_points": n_naive,
        "naive_points_per_s": round(naive_rate),
        "speedup": round(lookup_rate / naive_rate, 1),
        "naive_agrees": agree,
        "communities": len(communities),
        "community_points_per_s": round(points / community_s),
        "sweep_places": len(store),
        "sweep_regions": len(new),
        "sweep_s": round(sweep_s, 3),
        "sweep_rows": len(found),
        "sweep_people": int(found["person_key"].nunique()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse options, run, print JSON."""
    parser = argparse.ArgumentParser(prog="python -m geo.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--naive-points", type=int, default=20_000)
    parser.add_argument("--places", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--regions", type=Path, default=_CONFIG / "risk_regions.geojson")
    args = parser.parse_args(argv)
    for name in ("points", "naive_points", "places"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} is {getattr(args, name)}, expected a positive count")
    print(json.dumps(run(args.points, args.naive_points, args.places, args.seed, args.regions)))


if __name__ == "__main__":
    main()
