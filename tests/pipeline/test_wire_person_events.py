"""The join's msgspec reading of person events gives what the pydantic contract gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.errors import RejectedEvent
from pipeline.events import PersonEvent
from pipeline.ingest import ingest
from pipeline.simulate import simulate_stream
from pipeline.state import observation_of
from pipeline.wire import decode_person_event

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _person_events(people: int = 400) -> list[PersonEvent]:
    events = []
    for _, raw in simulate_stream(11, people, NOW):
        try:
            events += ingest(raw, secret=b"s" * 32, now=NOW, lookback=timedelta(days=14), source_topic="t")
        except RejectedEvent:
            continue
    return events


def test_every_simulated_person_event_reads_the_same_both_ways() -> None:
    events = _person_events()
    assert {e.payload.kind for e in events} == {"declaration", "checkpoint_scan", "nat_result"}
    for event in events:
        raw = event.model_dump_json().encode()
        fast = decode_person_event(raw)
        slow = PersonEvent.model_validate_json(raw)
        assert fast is not None, raw
        assert observation_of(fast) == observation_of(slow)
        for name in ("person_key", "event_id", "kind", "occurred_at", "ingested_at", "source_topic", "birth_date"):
            assert getattr(fast, name) == getattr(slow, name)


@pytest.mark.parametrize("raw", [
    b"", b"{", b"[]", b'{"person_key": "k"}', b"\xff\xfe",
])
def test_anything_else_is_left_to_pydantic(raw: bytes) -> None:
    assert decode_person_event(raw) is None


def test_unknown_fields_and_kinds_are_left_to_pydantic() -> None:
    event = _person_events(20)[0]
    doc = event.model_dump_json().encode()
    assert decode_person_event(doc.replace(b'"person_key"', b'"extra":1,"person_key"')) is None
    assert decode_person_event(doc.replace(b'"payload":{"kind":"', b'"payload":{"kind":"x')) is None
