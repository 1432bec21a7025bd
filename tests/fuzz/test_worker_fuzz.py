"""A memory:// worker fed fuzzed records on all three input topics: it stays up and every input is accounted for.

One worker runs for the module (`tests.fuzz.running`). Each example appends a batch of valid, mutated and arbitrary records; after
each batch inputs = forwarded + dead-lettered, and at the end the topics agree with the counts record
by record: each input is dead-lettered (with the reason pure ingest gives) or forwarded as its person events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import RejectedEvent
from pipeline.identity import check_character
from pipeline.ingest import ingest
from streams.memory import get_broker
from tests.fuzz.running import ThreadedWorker, threaded_worker
from tests.fuzz.strategies import KINDS, Sample, documents

AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
#: Inside community 330106001 of the committed sample district.
COMMUNITY_POINT = (120.30051409089091, 30.435743)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[ThreadedWorker]:
    with threaded_worker(clock=lambda: AT) as running:
        yield running


def _accounted(fw: ThreadedWorker) -> None:
    """Once the worker is idle, every record sent was counted in and came out forwarded or dead-lettered.

    (`inputs` is counted when a record is taken up and the outcome after its send, so the equation is
    checked once nothing is in flight.)
    """
    done = lambda: fw.counts["forwarded"] + fw.counts["dead_lettered"] >= fw.sent  # noqa: E731
    assert fw.wait(done), f"worker stalled: {fw.counts} after {fw.sent} sent"
    counts = dict(fw.counts)
    assert counts["inputs"] == fw.sent, counts
    assert counts["inputs"] == counts["forwarded"] + counts["dead_lettered"], counts


_KEYS = st.none() | st.binary(max_size=40)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(documents(AT), _KEYS), min_size=1, max_size=12))
def test_fuzzed_records_are_each_forwarded_or_dead_lettered(fuzzed: ThreadedWorker, batch: list[tuple[Sample, bytes | None]]) -> None:
    fuzzed.push([(s.kind, s.raw) for s, _ in batch], [k for _, k in batch])
    _accounted(fuzzed)


def _fixed_hostile_batch() -> list[Sample]:
    """Records every run sends whatever hypothesis drew: the worst sizes and encodings, one per topic."""
    big = orjson.dumps({"type": "declaration", "event_id": "big", "padding": "z" * 3_000_000})
    samples = []
    for kind in KINDS:
        for raw in (big, b"\xff\xfe\xfd" * 400_000, b'{"type":"nat_result","x":"\xed\xa0\x80"}', b"[" * 200_000,
                    b"", b"null", b'{"type":"' + KINDS[kind].encode() + b'","lon":NaN}'):
            samples.append(Sample(kind, raw, (), False, 0, "fixed"))
    return samples


def _valid_scan(event_id: str) -> bytes:
    first17 = "33010619250101777"
    return orjson.dumps({
        "type": "checkpoint_scan", "event_id": event_id, "checkpoint_id": "cp-01", "scanned_at": AT.isoformat(),
        "location": {"lon": COMMUNITY_POINT[0], "lat": COMMUNITY_POINT[1]},
        "people": [{"id_number": first17 + check_character(first17), "name": "After Fuzz", "phone": "13800138000",
                    "role": "driver"}],
    })


def _records(fw: ThreadedWorker, topic: str) -> list[Any]:
    return fw.records(topic)


def test_worker_stays_up_and_the_topics_account_for_every_input(fuzzed: ThreadedWorker) -> None:
    fuzzed.push([(s.kind, s.raw) for s in _fixed_hostile_batch()])
    _accounted(fuzzed)

    event_id = "scan-after-fuzz"
    fuzzed.push([("checkpoint-scans", _valid_scan(event_id))])
    _accounted(fuzzed)
    prefix = fuzzed.settings.topic("triage.")

    def triaged() -> list[dict]:
        found = []
        for topic in get_broker(fuzzed.settings.broker).topics():
            if topic.startswith(prefix):
                found += [m for m in (orjson.loads(r.value) for r in _records(fuzzed, topic)) if event_id in m.get("source_event_ids", [])]
        return found

    assert fuzzed.wait(lambda: bool(triaged()), 30), "a valid scan after the fuzz got no triage message"
    assert triaged()[0]["action"] == "hold"

    assert fuzzed.wait(lambda: fuzzed.counts["joined"] >= fuzzed.counts["person_events"], 30), fuzzed.counts
    counts = dict(fuzzed.counts)
    lookback = fuzzed.worker.runtime.lookback
    inputs = [r for kind in KINDS for r in _records(fuzzed, fuzzed.settings.topic(kind))]
    dead = [orjson.loads(r.value) for r in _records(fuzzed, fuzzed.settings.topic("dead-letters"))]
    # contact tracing's re-evaluation records (a JSON list of exposures each) share the topic; ingest's events are objects
    person_events = [e for e in (orjson.loads(r.value) for r in _records(fuzzed, fuzzed.settings.topic("person-events")))
                     if isinstance(e, dict)]

    assert len(inputs) == fuzzed.sent == counts["inputs"]
    assert len(dead) == counts["dead_lettered"]
    assert len(person_events) == counts["person_events"]
    assert all(letter["reason"] and letter["detail"] for letter in dead)
    assert counts["inputs"] == counts["forwarded"] + counts["dead_lettered"]

    by_place = {(d["source_topic"], d["partition"], d["offset"]): d for d in dead}
    assert len(by_place) == len(dead), "an input was dead-lettered twice"
    expected_events: Counter[tuple[str, str]] = Counter()
    forwarded = 0
    for record in inputs:
        place = (record.topic, record.partition, record.offset)
        try:
            people = ingest(record.value or b"", secret=fuzzed.settings.secret_bytes, now=AT, lookback=lookback,
                            source_topic=record.topic)
        except RejectedEvent as exc:
            assert place in by_place, f"rejected input {place} has no dead letter"
            assert by_place[place]["reason"] == exc.reason
            continue
        assert place not in by_place, f"accepted input {place} was dead-lettered: {by_place[place]['reason']}"
        forwarded += 1
        expected_events.update((p.source_topic, p.event_id) for p in people)
    assert forwarded == counts["forwarded"]
    assert forwarded + len(by_place) == len(inputs)
    assert Counter((e["source_topic"], e["event_id"]) for e in person_events) == expected_events
