"""Person state: idempotent, order-independent inside the horizon, bounded, compact round trip."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import StateError
from pipeline.state import (
    MAX_NATS,
    MAX_PLACES,
    LastVerdict,
    _coordinate,
    apply,
    apply_many,
    epoch_seconds,
    fold,
    new_state,
    observation_of,
    remember,
    state_from_bytes,
    state_of,
    state_to_bytes,
)
from tests.pipeline.conftest import AT, HIGH_PT, PLAIN_PT, declaration, events_of, nat, scan, t


def _fold(events):
    state = new_state(events[0].person_key)
    for e in events:
        state = apply(state, e)
    return state


def _mixed_events():
    return events_of(
        declaration("d-1", stops=[(HIGH_PT, t("17 09:00"), t("18 09:00"))], report=t("19 08:00")),
        declaration("d-2", stops=[(PLAIN_PT, t("18 12:00"), t("18 20:00"))], submitted=t("19 21:00")),
        nat("n-1", sampled=t("19 09:00")),
        nat("n-2", sampled=t("20 06:00"), result="positive"),
        scan("s-1", at=t("20 09:00"), origin=PLAIN_PT),
    )


def test_same_event_twice_changes_nothing_and_returns_same_object():
    events = _mixed_events()
    state = _fold(events)
    for e in events:
        assert apply(state, e) is state


def test_every_order_gives_the_same_state():
    events = _mixed_events()
    expected = _fold(events)
    for order in itertools.permutations(events):
        assert _fold(list(order)) == expected
    assert apply_many(new_state(events[0].person_key), reversed(events)) == expected


def test_latest_declaration_wins_whatever_the_arrival_order():
    events = _mixed_events()
    state = _fold(events)
    assert state.declaration.event_id == "d-2"
    # the first declaration's stops and report are still known
    assert {p.event_id for p in state.places if p.kind == "stop"} == {"d-1", "d-2"}
    assert "d-1#report" in {n.event_id for n in state.nats}


def test_late_nat_result_lands_in_place():
    decl, late = events_of(declaration("d-1"), nat("n-late", sampled=t("19 09:00"), reported=t("20 11:00")))
    state = _fold([decl, late])
    assert [n.event_id for n in state.nats] == ["n-late"]
    assert state.newest_id == "n-late"


def test_scan_keeps_role_and_vehicle_origin():
    (event,) = events_of(scan("s-1", at=t("20 09:00"), role="passenger", origin=PLAIN_PT, departed=t("20 03:00")))
    state = apply(new_state(event.person_key), event)
    kinds = {p.kind: p for p in state.places}
    assert kinds["scan"].role == "passenger"
    assert kinds["origin"].t_to == int(t("20 03:00").timestamp())


def test_events_past_the_horizon_are_dropped_and_ignored():
    old, new = events_of(nat("n-old", sampled=t("07 09:00")), nat("n-new", sampled=t("20 06:00")))
    horizon = timedelta(days=10)
    forward = apply(apply(new_state(old.person_key), old, horizon=horizon), new, horizon=horizon)
    backward = apply(apply(new_state(old.person_key), new, horizon=horizon), old, horizon=horizon)
    assert [n.event_id for n in forward.nats] == ["n-new"]
    assert backward == forward


def test_state_is_bounded_whatever_the_number_of_events():
    docs = []
    base = AT - timedelta(days=3)
    for i in range(1000):
        docs.append(nat(f"n-{i}", sampled=base + timedelta(minutes=i), reported=base + timedelta(minutes=i + 1)))
        docs.append(scan(f"s-{i}", at=base + timedelta(minutes=i), origin=PLAIN_PT))
    events = events_of(*docs)
    state = apply_many(new_state(events[0].person_key), events)
    assert len(state.nats) == MAX_NATS
    assert len(state.places) == MAX_PLACES
    assert state.nats[-1].event_id == "n-999"
    assert len(state_to_bytes(state)) < 12_000
    # one more event folded one at a time keeps the same bound
    (extra,) = events_of(nat("n-extra", sampled=AT - timedelta(hours=1)))
    assert len(apply(state, extra).nats) == MAX_NATS


def test_bytes_round_trip_and_compactness():
    state = remember(_fold(_mixed_events()), LastVerdict("transfer", 60, "v1", "case-1", "msg-1", 1))
    raw = state_to_bytes(state)
    assert state_from_bytes(raw) == state
    assert len(raw) < 1500


@pytest.mark.parametrize("raw", [b"not json", b"[9]", b"{}", b"[1, 2]", b"\x92\x02\x01", b"\xc1", b""])
def test_bad_bytes_raise_state_error(raw):
    with pytest.raises(StateError):
        state_from_bytes(raw)


def test_event_for_another_person_is_refused():
    events = _mixed_events()
    with pytest.raises(StateError, match="another person"):
        apply(new_state("someone-else"), events[0])


def test_remember_same_verdict_returns_same_object():
    state = new_state("k")
    last = LastVerdict("hold", 30, "v1", "c", "m", 5)
    once = remember(state, last)
    assert once is not state
    assert remember(once, LastVerdict("hold", 30, "v1", "c", "m", 5)) is once


@settings(max_examples=40, deadline=None)
@given(st.permutations(list(range(6))), st.lists(st.integers(0, 5), max_size=4))
def test_any_order_with_duplicates_gives_the_same_state(order, dups):
    events = _EVENTS
    expected = _fold(events)
    shuffled = [events[i] for i in order] + [events[i] for i in dups]
    assert _fold(shuffled) == expected


_EVENTS = events_of(
    declaration("d-1", stops=[(HIGH_PT, t("17 09:00"), t("18 09:00"))], report=t("19 08:00")),
    declaration("d-2", stops=[(PLAIN_PT, t("18 12:00"), t("18 20:00"))], submitted=t("19 21:00")),
    nat("n-1", sampled=t("19 09:00")),
    nat("n-2", sampled=t("20 06:00"), result="positive"),
    scan("s-1", at=t("20 09:00"), origin=PLAIN_PT),
    nat("n-3", sampled=t("08 09:00"), reported=t("08 12:00")),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=8), st.sampled_from([timedelta(days=14), timedelta(days=3), timedelta(0)]))
def test_state_of_and_fold_equal_applying_the_events(picks, horizon):
    """The offline fold (one state per person, from observations) is `apply_many` on a new state."""
    events = [_EVENTS[i] for i in picks]
    key = events[0].person_key
    observations = [observation_of(e) for e in events]
    expected = apply_many(new_state(key), events, horizon=horizon)
    assert state_of(key, observations, horizon=horizon) == expected
    assert fold(new_state(key), observations, horizon=horizon) == expected
    assert state_of(key, observations[:1], horizon=horizon) == apply(new_state(key), events[0], horizon=horizon)


_OFFSETS = st.integers(-(24 * 3600 - 1), 24 * 3600 - 1).map(lambda s: timezone(timedelta(seconds=s)))


@given(st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 29)), _OFFSETS, st.booleans())
def test_epoch_seconds_shortcut_equals_the_timestamp(moment, zone, whole):
    aware = moment.replace(tzinfo=zone, microsecond=0 if whole else moment.microsecond)
    assert epoch_seconds(aware) == int(aware.timestamp())


@given(st.floats(-180, 180) | st.integers(-180_000_000, 180_000_000).map(lambda n: n / 1e6))
def test_coordinate_shortcut_equals_rounding_to_six_decimals(value):
    got, expected = _coordinate(value), round(value, 6)
    assert got == expected and math.copysign(1, got) == math.copysign(1, expected)


def test_states_written_as_json_arrays_still_decode():
    state = remember(_fold(_mixed_events()), LastVerdict("transfer", 60, "v1", "case-1", "msg-1", 1))
    d, last = state.declaration, state.last
    legacy = orjson.dumps([
        1, state.person_key, state.masked_id, state.name, state.phone, state.birth, state.newest, state.newest_id,
        [d.event_id, d.submitted, d.arrival, d.lon, d.lat, d.address],
        [[n.event_id, n.sampled, n.reported, n.result, n.lab] for n in state.nats],
        [[p.event_id, p.seq, p.kind, p.t_from, p.t_to, p.lon, p.lat, p.label, p.role] for p in state.places],
        [last.action, last.severity, last.rules_version, last.case_id, last.message_id, last.at, last.community],
    ])
    assert state_from_bytes(legacy) == state
    assert len(state_to_bytes(state)) < len(legacy)


def test_a_managed_state_round_trips_and_an_unmanaged_one_stores_nothing_for_it():
    from pipeline.state import Managed, PersonState, state_from_bytes, state_to_bytes

    plain = PersonState(person_key="k")
    managed = PersonState(person_key="k", managed=Managed("home_isolation", 738316, 1655000000, 1655010000, "case-1", 0, 2))
    assert state_from_bytes(state_to_bytes(managed)) == managed
    assert state_from_bytes(state_to_bytes(plain)) == plain and state_from_bytes(state_to_bytes(plain)).managed is None
    assert len(state_to_bytes(managed)) - len(state_to_bytes(plain)) < 60
