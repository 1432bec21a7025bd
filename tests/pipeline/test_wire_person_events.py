"""Person events without pydantic: ingest writes, and the join reads, what the pydantic contract gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from pipeline.errors import RejectedEvent
from pipeline.events import PersonEvent
from pipeline.ingest import ingest, person_event_records
from pipeline.simulate import simulate_stream
from pipeline.state import observation_of
from pipeline.wire import decode_person_event
from tests.fuzz.strategies import Sample, documents, valid_documents

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


def _records_both_ways(raw: bytes, now: datetime = NOW) -> tuple[object, object]:
    def run(fast: bool) -> object:
        try:
            if fast:
                return person_event_records(raw, secret=b"s" * 32, now=now, lookback=timedelta(days=14), source_topic="t",
                                            received_at=NOW)
            return [(e.person_key, e.model_dump_json().encode()) for e in ingest(
                raw, secret=b"s" * 32, now=now, lookback=timedelta(days=14), source_topic="t", received_at=NOW)]
        except RejectedEvent as exc:
            return ("rejected", exc.reason, exc.detail)
    return run(True), run(False)


def test_ingest_records_are_byte_for_byte_what_pydantic_writes() -> None:
    kinds = set()
    for kind, raw in simulate_stream(13, 600, NOW, bad_share=0.1):
        fast, slow = _records_both_ways(raw)
        assert fast == slow, raw
        kinds.add((kind, isinstance(fast, list)))
    assert {k for k, ok in kinds if ok} == {"declarations", "checkpoint-scans", "nat-results"}
    assert any(not ok for _, ok in kinds)


def test_time_and_id_refusals_keep_their_wording() -> None:
    for _, raw in simulate_stream(17, 50, NOW):
        for now in (NOW - timedelta(days=30), NOW + timedelta(days=30)):
            fast, slow = _records_both_ways(raw, now)
            assert fast == slow


EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "config" / "examples").glob("*.json")
                  if p.stem.split("__")[0] in ("declaration", "checkpoint_scan", "nat_result"))
FUZZ_AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_contract_example_gets_the_same_records(path: Path) -> None:
    fast, slow = _records_both_ways(path.read_bytes(), FUZZ_AT)
    assert fast == slow


@FUZZ
@given(valid_documents(FUZZ_AT))
def test_valid_fuzzed_documents_get_the_same_records(sample: Sample) -> None:
    fast, slow = _records_both_ways(sample.raw, FUZZ_AT)
    assert fast == slow
    assert isinstance(fast, list)


@FUZZ
@given(documents(FUZZ_AT))
def test_fuzzed_and_hostile_documents_get_the_same_records(sample: Sample) -> None:
    fast, slow = _records_both_ways(sample.raw, FUZZ_AT)
    assert fast == slow
