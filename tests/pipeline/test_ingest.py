"""Ingest: fan-out, pseudonymisation, time skew, and a reason for every rejection."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.errors import RejectedEvent
from pipeline.identity import person_key
from pipeline.ingest import ingest

ROOT = Path(__file__).resolve().parents[2]
SCAN = orjson.loads((ROOT / "config/examples/checkpoint_scan__valid.json").read_bytes())
SCANNED = datetime.fromisoformat(SCAN["scanned_at"])
LOOKBACK = timedelta(days=14)


def _ingest(doc: object, now: datetime = SCANNED) -> list:
    return ingest(orjson.dumps(doc), secret=b"test-secret-0123456789", now=now, lookback=LOOKBACK)


def test_a_vehicle_scan_fans_out_to_one_event_per_person() -> None:
    events = _ingest(SCAN)
    assert [e.payload.role for e in events] == ["driver", "passenger"]
    assert events[0].person_key == person_key(b"test-secret-0123456789", SCAN["people"][0]["id_number"])
    assert all(e.event_id == SCAN["event_id"] and e.kind == "checkpoint_scan" for e in events)
    for event in events:
        assert SCAN["people"][0]["id_number"] not in event.model_dump_json()
        assert SCAN["people"][1]["id_number"] not in event.model_dump_json()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"type": "tweet"}', "unknown_type"),
        (b'{"type": "checkpoint_scan"}', "schema"),
    ],
)
def test_unusable_bytes_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(RejectedEvent) as caught:
        ingest(raw, secret=b"s" * 16, now=SCANNED, lookback=LOOKBACK)
    assert caught.value.reason == reason
    assert caught.value.detail


def test_events_more_than_ten_minutes_ahead_are_refused() -> None:
    assert _ingest(SCAN, now=SCANNED - timedelta(minutes=10))
    with pytest.raises(RejectedEvent, match="in_future"):
        _ingest(SCAN, now=SCANNED - timedelta(minutes=10, seconds=1))


def test_events_older_than_the_lookback_are_refused() -> None:
    assert _ingest(SCAN, now=SCANNED + LOOKBACK)
    with pytest.raises(RejectedEvent, match="too_old"):
        _ingest(SCAN, now=SCANNED + LOOKBACK + timedelta(seconds=1))


def test_timezone_is_required() -> None:
    naive = dict(SCAN, scanned_at="2022-06-19T07:12:00")
    with pytest.raises(RejectedEvent, match="scanned_at"):
        _ingest(naive)


@pytest.mark.parametrize(
    ("literal", "reason"),
    [(b"NaN", "invalid_json"), (b"Infinity", "invalid_json"), (b"1e308", "coordinates"), (b"-181.0", "coordinates"), (b"0", "coordinates")],
)
def test_impossible_coordinates_are_rejected(literal: bytes, reason: str) -> None:
    template = orjson.dumps(dict(SCAN, location={"lon": 111.0, "lat": 0.0 if literal == b"0" else 30.0}))
    raw = template.replace(b'"lon":111.0', b'"lon":' + literal)
    with pytest.raises(RejectedEvent) as caught:
        ingest(raw, secret=b"s" * 16, now=SCANNED, lookback=LOOKBACK)
    assert caught.value.reason == reason
