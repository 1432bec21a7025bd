"""Checkpoint coverage: a registered vehicle that never passes is unchecked, one that passes counts, per day."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.coverage import (
    check_of_scan,
    coverage,
    enterprise_from_json,
    enterprise_to_json,
    parse_registry,
)
from pipeline.errors import KeyGroupsError
from tests.key_group_data import MASKED, A, B, registry_csv, scan

ZONE = ZoneInfo("Asia/Shanghai")
SECRET = b"coverage-test-secret-0123456789"
NOON = datetime(2022, 6, 20, 12, 0, tzinfo=ZONE)


def _checks(*records: bytes) -> list:
    return [c for r in records if (c := check_of_scan(r, secret=SECRET, now=NOON + timedelta(days=2),
                                                      lookback=timedelta(days=14))) is not None]


def test_a_vehicle_that_passes_counts_and_one_that_never_does_is_listed() -> None:
    enterprises, refused = parse_registry(registry_csv(), "registry.csv", secret=SECRET)
    assert refused == []
    checks = _checks(scan("s-1", NOON, "浙A12345", [A]), scan("s-2", NOON + timedelta(days=1), "浙A 67890", [B]))
    rows = {c.enterprise: c for c in coverage(enterprises, checks, NOON.date(), ZONE)}
    e01 = rows["E01"]
    assert (e01.vehicles, e01.vehicles_checked, e01.unchecked_plates) == (2, 1, ("浙A67890",))
    assert (e01.people, e01.people_checked, e01.unchecked_people) == (2, 1, (MASKED[B],))
    assert e01.vehicle_rate == 0.5
    assert (rows["E02"].vehicles_checked, rows["E02"].unchecked_plates) == (0, ("浙B11111",))
    next_day = {c.enterprise: c for c in coverage(enterprises, checks, (NOON + timedelta(days=1)).date(), ZONE)}
    assert next_day["E01"].unchecked_plates == ("浙A12345",)


def test_registrations_travel_without_raw_ids() -> None:
    enterprises, _ = parse_registry(registry_csv(), "registry.csv", secret=SECRET)
    for e in enterprises:
        raw = enterprise_to_json(e)
        assert enterprise_from_json(raw) == e and A.encode() not in raw


def test_bad_registry_rows_are_refused_with_line_and_reason() -> None:
    text = registry_csv() + f"E03,某公司,truck,浙C1,\nE03,某公司,staff,{A[:-1]}Y,某人\n"
    _, refused = parse_registry(text, "registry.csv", secret=SECRET)
    assert [(r["line"], r["reason"]) for r in refused] == [(7, "schema"), (8, "id_characters")]
    with pytest.raises(KeyGroupsError, match="registry.csv:1: the header"):
        parse_registry("plate\n", "registry.csv", secret=SECRET)


def test_a_refused_scan_checks_nothing() -> None:
    assert _checks(scan("s-1", NOON, "浙A12345", [A[:-1] + "Y"])) == []
