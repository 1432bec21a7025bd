"""Compliance per key group: on-time counts, a person in two groups counts in both, reminders once per period."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.compliance import (
    group_status,
    last_negatives_of_inputs,
    next_check,
    reminder_due,
    reminder_message,
    status_json,
    street_status,
)
from pipeline.errors import KeyGroupsError, RejectedEvent
from pipeline.key_groups import parse_key_groups
from pipeline.rosters import entry_from_json, entry_to_json, roster_entry, roster_rows
from tests.key_group_data import GROUPS_YAML, MASKED, A, B, C, D, results, roster_csv

CST = timezone(timedelta(hours=8))
AT = datetime(2022, 6, 20, 12, 0, tzinfo=CST)
SECRET = b"compliance-test-secret-0123456789"
GROUPS = parse_key_groups(GROUPS_YAML, source="kg.yaml")


def _entries_and_refusals() -> tuple[list, list[RejectedEvent]]:
    entries, refused = [], []
    for row in roster_rows(roster_csv(), "roster.csv", submitted_at=AT):
        try:
            entries.append(roster_entry(row, secret=SECRET, groups=GROUPS))
        except RejectedEvent as exc:
            refused.append(exc)
    return entries, refused


def _last() -> dict:
    last, refused = last_negatives_of_inputs(results(AT), secret=SECRET, at=AT, lookback=timedelta(days=14),
                                             horizon=timedelta(days=16))
    assert refused == 0
    return last


def test_bad_rows_are_refused_with_their_line_and_reason() -> None:
    entries, refused = _entries_and_refusals()
    assert len(entries) == 5
    assert [(e.reason, e.detail.split(":")[0]) for e in refused] == [
        ("id_checksum", "roster.csv line 7"), ("unknown_group", "roster.csv line 8")]
    assert all(A not in e.detail for e in refused)


def test_entries_carry_no_raw_id_number() -> None:
    entries, _ = _entries_and_refusals()
    for entry in entries:
        assert entry_from_json(entry_to_json(entry)) == entry
        assert all(who.encode() not in entry_to_json(entry) for who in (A, B, C, D))


def test_on_time_counts_per_group_and_a_person_in_two_groups_counts_in_both() -> None:
    entries, _ = _entries_and_refusals()
    statuses = group_status(GROUPS, entries, _last(), AT)
    got = {s.id: (s.enrolled, s.on_time, s.rate, s.overdue) for s in statuses}
    assert got["cold_chain"] == (3, 1, 0.3333, tuple(sorted([MASKED[B], MASKED[C]])))
    assert got["freight_drivers"] == (2, 1, 0.5, (MASKED[D],))
    assert got["school_staff"] == (0, 0, None, ())
    assert [g["id"] for g in status_json(statuses)["groups"]] == ["cold_chain", "freight_drivers", "school_staff"]


def test_a_sample_after_the_moment_assessed_does_not_count() -> None:
    entries, _ = _entries_and_refusals()
    earlier = AT - timedelta(hours=10)
    last, _ = last_negatives_of_inputs(results(AT)[:1], secret=SECRET, at=earlier, lookback=timedelta(days=14),
                                       horizon=timedelta(days=16))
    cold = group_status(GROUPS, entries, last, earlier)[0]
    assert cold.on_time == 0


def test_streets_split_the_group() -> None:
    entries, _ = _entries_and_refusals()
    streets = street_status(GROUPS, entries, _last(), AT, {"330106001": "翠苑街道"}.get)
    assert [(s.group, s.street, s.enrolled, s.on_time) for s in streets] == [
        ("cold_chain", "翠苑街道", 3, 1), ("freight_drivers", "翠苑街道", 2, 1)]


def test_a_roster_with_another_header_is_refused_whole() -> None:
    with pytest.raises(KeyGroupsError, match=r"roster\.csv:1: the header was 'id,group'"):
        roster_rows("id,group\n1,2\n", "roster.csv", submitted_at=AT)


def test_one_reminder_per_overdue_period() -> None:
    cold = GROUPS.get("cold_chain")
    assert cold is not None
    tested = AT - timedelta(hours=20)
    assert reminder_due(tested, AT - timedelta(days=3), cold, AT) is None
    assert next_check(tested, AT - timedelta(days=3), cold, AT) == tested + timedelta(hours=24)
    first = reminder_due(tested, AT, cold, AT + timedelta(hours=5))
    again = reminder_due(tested, AT, cold, AT + timedelta(hours=20))
    second = reminder_due(tested, AT, cold, AT + timedelta(hours=29))
    assert first is not None and again is not None and second is not None
    assert first.period_start == again.period_start == tested + timedelta(hours=24)
    assert second.period_start == tested + timedelta(hours=48)
    never = reminder_due(None, AT, cold, AT + timedelta(hours=25))
    assert never is not None and never.period_start == AT + timedelta(hours=24)


def test_reminder_messages_are_deterministic_and_masked() -> None:
    entries, _ = _entries_and_refusals()
    cold = GROUPS.get("cold_chain")
    assert cold is not None
    due = reminder_due(None, AT, cold, AT + timedelta(hours=25))
    assert due is not None
    one = reminder_message(entries[0], cold, due, AT + timedelta(hours=25))
    two = reminder_message(entries[0], cold, due, AT + timedelta(hours=26))
    assert one["kind"] == "test_reminder" and one["message_id"] == two["message_id"]
    assert one["masked_id"] == MASKED[A] and A not in str(one)


def test_a_row_for_a_community_outside_the_district_is_refused() -> None:
    rows = roster_rows(roster_csv("999999999"), "roster.csv", submitted_at=AT)
    with pytest.raises(RejectedEvent, match=r"roster\.csv line 2: community '999999999' is not in") as caught:
        roster_entry(rows[0], secret=SECRET, groups=GROUPS, communities={"330106001"})
    assert caught.value.reason == "unknown_community"
