"""PlaceStore and the retroactive sweep: overlap rules, boundaries, eviction, chunking, both paths."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import shapely

from geo.errors import GeoValueError
from geo.sweep import KEY_DTYPE, SWEEP_COLUMNS, PlaceStore, keys_of, pack_keys, sweep
from tests.geo.conftest import T0, T0_S, region

SQUARE = shapely.box(0, 0, 2, 2)


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in frame[SWEEP_COLUMNS].itertuples(index=False)]


def test_stays_overlapping_the_risk_period_are_found() -> None:
    store = PlaceStore()
    store.add("ann", 1.0, 1.0, T0_S - 100, T0_S - 1)  # left one second before designation
    store.add("bob", 1.0, 1.0, T0_S - 100, T0_S)  # still there at designation
    store.add("cat", 2.0, 1.0, T0_S + 50, T0_S + 60)  # on the edge
    store.add("dan", 3.0, 1.0, T0_S + 50, T0_S + 60)  # outside
    store.add("eve", 1.0, 1.0, T0_S + 3600, T0_S + 3700)  # after the lift
    found = sweep(store, [region("r", SQUARE, until=T0 + timedelta(hours=1))])
    assert _rows(found) == [
        ("bob", "r", "high", T0_S - 100, T0_S),
        ("cat", "r", "high", T0_S + 50, T0_S + 60),
    ]
    with_pre = sweep(store, [region("r", SQUARE, until=T0 + timedelta(hours=1))], timedelta(seconds=1))
    assert sorted(with_pre["person_key"]) == ["ann", "bob", "cat"]


def test_sweep_over_many_regions_equals_one_by_one() -> None:
    rng = np.random.default_rng(11)
    store = PlaceStore(chunk_size=997)
    n = 20_000
    store.add(
        [f"p{i % 3000}" for i in range(n)],
        rng.uniform(0, 10, n),
        rng.uniform(0, 10, n),
        (a := rng.integers(T0_S - 5000, T0_S + 5000, n)),
        a + rng.integers(0, 2000, n),
    )
    regions = [
        region(
            f"r{i:02d}",
            shapely.box(x, y, x + 0.7, y + 0.5),
            level=("low", "medium", "high")[i % 3],
            start=T0 + timedelta(seconds=int(rng.integers(-3000, 3000))),
        )
        for i, (x, y) in enumerate(rng.uniform(0, 9, (40, 2)))
    ]
    together = sweep(store, regions, timedelta(seconds=300))
    apart = pd.concat([sweep(store, [r], timedelta(seconds=300)) for r in regions])
    apart = apart.sort_values(["region_id", "person_key", "t_from"], kind="stable").reset_index(drop=True)
    assert len(together) > 100
    assert _rows(together) == _rows(apart)
    # and the answer is right: check each row against the geometry and the period
    for row in together.head(200).itertuples(index=False):
        r = next(x for x in regions if x.id == row.region_id)
        assert row.t_to >= T0_S - 300 + int((r.effective_from - T0).total_seconds())
        assert r.level == row.level


def test_found_rows_match_a_brute_force_check() -> None:
    rng = np.random.default_rng(2)
    store = PlaceStore(chunk_size=1000)
    n = 5000
    xs, ys = rng.uniform(-1, 3, n), rng.uniform(-1, 3, n)
    a = rng.integers(T0_S - 500, T0_S + 500, n)
    b = a + rng.integers(0, 300, n)
    store.add([f"k{i}" for i in range(n)], xs, ys, a, b)
    found = sweep(store, [region("r", SQUARE)])
    inside = shapely.intersects_xy(SQUARE, xs, ys) & (b >= T0_S)
    assert sorted(found["person_key"]) == sorted(f"k{i}" for i in np.flatnonzero(inside))


def test_evict_drops_old_places_and_keeps_the_rest() -> None:
    store = PlaceStore(chunk_size=4)
    store.add(
        [f"k{i}" for i in range(10)], np.ones(10), np.ones(10), np.arange(10) * 100, np.arange(10) * 100 + 50
    )
    assert len(store) == 10 and len(store.chunks()) == 3
    assert store.evict(older_than=400) == 4  # places ending at 50, 150, 250, 350
    assert len(store) == 6
    store.add("late", 1.0, 1.0, 2000, 2100)
    assert len(store) == 7
    keys = sorted(store.keys_for(np.concatenate([c[0] for c in store.chunks()])))
    assert keys == ["k4", "k5", "k6", "k7", "k8", "k9", "late"]
    assert store.evict(older_than=10_000) == 7 and len(store) == 0 and store.chunks() == []


def test_hmac_keys_are_held_as_32_raw_bytes_and_come_back_as_given() -> None:
    hmac_keys = [hashlib.sha256(name.encode()).hexdigest() for name in ("a", "b", "c")]
    rows = pack_keys([hmac_keys[0], "short", hmac_keys[1]])
    assert rows.dtype == KEY_DTYPE and rows["packed"].tolist() == [True, False, True]
    assert bytes(rows["raw"][0]) == bytes.fromhex(hmac_keys[0])
    assert keys_of(rows).tolist() == [hmac_keys[0], "short", hmac_keys[1]]
    store = PlaceStore(chunk_size=2)
    store.add(hmac_keys, [0, 0, 0], [0, 0, 0], 1, 2)
    store.add("short", 0, 0, 1, 2)
    assert store.keys_for(np.concatenate([c[0] for c in store.chunks()])).tolist() == [*hmac_keys, "short"]
    assert store.nbytes == 4 * 65


def test_the_newest_chunk_grows_instead_of_reserving_a_full_one() -> None:
    store = PlaceStore(chunk_size=1 << 20)
    store.add("k", 0, 0, 1, 2)
    assert store.nbytes < 1 << 20
    store.add(["k"] * 10_000, np.zeros(10_000), np.zeros(10_000), 1, 2)
    assert len(store) == 10_001 and len(store.chunks()) == 1


def test_empty_sweep_has_the_columns() -> None:
    found = sweep(PlaceStore(), [region("r", SQUARE)])
    assert list(found.columns) == SWEEP_COLUMNS and len(found) == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.add(["a", "b"], [1, 2, 3], 0, 0, 0), "different lengths"),
        (lambda s: s.add("a", np.nan, 0, 0, 0), "NaN"),
        (lambda s: s.add("a", 0, 0, 10, 5), "t_to 5 is before t_from 10"),
        (lambda s: s.add("", 0, 0, 0, 0), "person key is ''"),
        (lambda s: s.add("x" * 33, 0, 0, 0, 0), "neither a lowercase 64-hex HMAC nor at most 32"),
        (lambda s: s.add("A" * 64, 0, 0, 0, 0), "neither a lowercase 64-hex HMAC"),
        (lambda s: s.add_packed([7], 0, 0, 0, 0), "key rows have dtype int64"),
        (lambda s: s.evict("yesterday"), "older_than is 'yesterday'"),
        (lambda s: s.keys_for([3]), "key rows have dtype"),
    ],
)
def test_bad_store_arguments(call, message: str) -> None:
    with pytest.raises(GeoValueError, match=message):
        call(PlaceStore())
