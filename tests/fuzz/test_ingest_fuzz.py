"""Pure ingest under hostile input: person events or `RejectedEvent` with a reason, nothing else, no raw ID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from pipeline.errors import RejectedEvent
from pipeline.events import PersonEvent
from pipeline.identity import normalise_id
from pipeline.ingest import ingest
from tests.fuzz.strategies import Sample, documents, hostile_documents, mutated_documents, valid_documents

AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SECRET = b"fuzz-secret"
LOOKBACK = timedelta(days=14)
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _run(sample: Sample) -> list[PersonEvent]:
    return ingest(sample.raw, secret=SECRET, now=AT, lookback=LOOKBACK, source_topic=f"fz.{sample.kind}")


def _assert_no_raw_id(text: str, sample: Sample) -> None:
    for raw_id in sample.ids:
        assert normalise_id(raw_id) not in text.upper(), f"raw ID number leaked ({sample.mutation})"


@FUZZ
@given(valid_documents(AT))
def test_valid_documents_fan_out_into_pseudonymised_person_events(sample: Sample) -> None:
    events = _run(sample)
    assert len(events) == sample.people
    assert all(isinstance(e, PersonEvent) and len(e.person_key) == 64 for e in events)
    assert all("*" * 11 in e.masked_id for e in events)
    dumped = b"".join(e.model_dump_json().encode() for e in events).decode()
    _assert_no_raw_id(dumped, sample)


@FUZZ
@given(documents(AT) | hostile_documents())
def test_any_input_is_either_person_events_or_a_reasoned_rejection(sample: Sample) -> None:
    try:
        events = _run(sample)
    except RejectedEvent as exc:
        assert exc.reason and exc.reason.strip(), sample.mutation
        assert exc.detail and exc.detail.strip(), sample.mutation
        _assert_no_raw_id(f"{exc.reason} {exc.detail} {exc}", sample)
        return
    assert all(isinstance(e, PersonEvent) for e in events)
    _assert_no_raw_id(b"".join(e.model_dump_json().encode() for e in events).decode(), sample)


@FUZZ
@given(mutated_documents(AT))
def test_mutations_that_break_the_contract_are_rejected(sample: Sample) -> None:
    """Mutations that cannot leave a valid document must be refused, not slip through."""
    always_bad = {"invalid_utf8", "truncated", "too_deep", "lone_surrogate", "not_an_object", "other_type",
                  "many_people", "multi_megabyte", "extra_root", "odd_number_literal"}
    if sample.mutation == "multi_megabyte" and sample.raw.rstrip() == sample.raw.rstrip(b" ") and b'"padding"' not in sample.raw:
        return
    try:
        _run(sample)
    except RejectedEvent:
        return
    if sample.mutation == "multi_megabyte" and b'"padding"' not in sample.raw:
        return  # trailing whitespace around a valid document is still valid JSON
    assert sample.mutation not in always_bad, f"{sample.mutation} was accepted"


@pytest.mark.parametrize("raw", [
    b"", b"\xff\xfe", b"{" * 200_000, b"[" * 5_000 + b"]" * 5_000, b'{"type": "declaration"' + b" " * 3_000_000 + b"}",
    b'{"type":"nat_result","person":' + b'{"a":' * 1_000 + b"1" + b"}" * 1_000 + b"}",
    orjson.dumps({"type": "checkpoint_scan", "people": [{}] * 100_000}),
])
def test_pathological_bodies_are_rejected_with_a_reason(raw: bytes) -> None:
    with pytest.raises(RejectedEvent) as caught:
        ingest(raw, secret=SECRET, now=AT, lookback=LOOKBACK)
    assert caught.value.reason and caught.value.detail
