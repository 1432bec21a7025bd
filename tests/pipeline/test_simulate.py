"""Simulator: deterministic bytes, times inside the window, every kind of bad record, all actions reachable."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import orjson
import pytest

from pipeline.errors import RejectedEvent, SimulationError
from pipeline.ingest import parse_input
from pipeline.settings import load_settings
from pipeline.simulate import (
    SAMPLE_ANCHOR,
    Geography,
    load_sample_geography,
    shift_regions,
    simulate_stream,
    write_simulation,
)
from tests.pipeline.conftest import AT, box_region, t

SETTINGS = load_settings()
ANCHOR = SAMPLE_ANCHOR + timedelta(days=400, hours=3)


@pytest.fixture(scope="module")
def geo() -> Geography:
    s = SETTINGS
    return load_sample_geography(s.path(s.regions), s.path(s.communities), s.path(s.checkpoints), ANCHOR)


def test_same_seed_same_bytes(tmp_path, geo):
    a = write_simulation(tmp_path / "a", 11, 300, ANCHOR, geo)
    b = write_simulation(tmp_path / "b", 11, 300, ANCHOR, geo)
    assert a == b
    for name in ("events.jsonl", "declarations.jsonl", "checkpoint_scans.jsonl", "nat_results.jsonl", "risk_regions.geojson", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    c = write_simulation(tmp_path / "c", 12, 300, ANCHOR, geo)
    assert (tmp_path / "c" / "events.jsonl").read_bytes() != (tmp_path / "a" / "events.jsonl").read_bytes()
    assert c["at"] == ANCHOR.isoformat()


def test_merged_file_is_the_union_of_the_streams(tmp_path, geo):
    manifest = write_simulation(tmp_path, 5, 200, ANCHOR, geo)
    merged = (tmp_path / "events.jsonl").read_bytes().splitlines()
    parts = sum(((tmp_path / n).read_bytes().splitlines() for n in ("declarations.jsonl", "checkpoint_scans.jsonl", "nat_results.jsonl")), [])
    assert sorted(merged) == sorted(parts)
    assert manifest["events"] == len(merged) == sum(manifest["counts"].values())


def test_times_lie_in_the_lookback_and_bad_records_are_the_promised_kinds(geo):
    reasons = Counter()
    kinds = Counter()
    good = 0
    for kind, raw in simulate_stream(3, 1500, ANCHOR, geo, bad_share=0.05):
        kinds[kind] += 1
        try:
            event = parse_input(raw)
        except RejectedEvent as exc:
            reasons[exc.reason] += 1
            continue
        at = {"declaration": "submitted_at", "checkpoint_scan": "scanned_at", "nat_result": "reported_at"}[event.type]
        value = getattr(event, at)
        if value > ANCHOR + timedelta(minutes=10):
            reasons["in_future"] += 1
            continue
        good += 1
        assert ANCHOR - timedelta(days=14) <= value <= ANCHOR
    assert set(kinds) == {"declarations", "checkpoint-scans", "nat-results"}
    assert {"invalid_json", "id_checksum", "coordinates", "in_future"} <= set(reasons)
    total = sum(kinds.values())
    assert 0.03 < sum(reasons.values()) / total < 0.08
    assert good > 0.9 * total


def test_nat_duplicates_and_late_arrivals_exist(geo):
    seen = Counter()
    late = 0
    last = None
    for _kind, raw in simulate_stream(4, 2000, ANCHOR, geo, bad_share=0):
        doc = orjson.loads(raw)
        seen[doc["event_id"]] += 1
        occurred = doc.get("reported_at") or doc.get("scanned_at") or doc.get("submitted_at")
        if last is not None and occurred < last:
            late += 1
        last = max(last or occurred, occurred)
    assert any(n > 1 for n in seen.values())
    assert late > 0


def test_shift_regions_moves_both_ends():
    region = box_region("R", "high", (100, 30), t("01 00:00"), t("05 00:00"))
    (moved,) = shift_regions([region], timedelta(days=10))
    assert moved.effective_from == t("11 00:00") and moved.effective_until == t("15 00:00")
    with pytest.raises(SimulationError, match="timedelta"):
        shift_regions([region], 10)


def test_bad_arguments_are_refused(geo):
    with pytest.raises(SimulationError, match="people was 0"):
        list(simulate_stream(1, 0, AT, geo))
    with pytest.raises(SimulationError, match="bad_share was 2"):
        list(simulate_stream(1, 5, AT, geo, bad_share=2))
