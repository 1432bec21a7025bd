"""Recorded input documents, moved to the present: `epiflow produce --now` and the README's examples.

A worker refuses events older than its lookback (`too_old`), so a recording from 2022 tells nothing today.
`redate` shifts every time in every document by one offset, so the latest event time becomes `now` and
every interval (submitted → arrival, sampled → reported, a stop's from → to, one record to the next) stays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import PipelineError
from pipeline.inputs import KINDS

__all__ = ["read_records", "redate"]

#: The time ingest checks for skew, per input type (as `pipeline.inputs.event_time`).
_EVENT_TIME = {k.name: k.time_field for k in KINDS}
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time with a UTC offset, or None for anything else."""
    if not isinstance(value, str) or not _STAMP.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.utcoffset() is not None else None


def _event_time(document: Any) -> datetime | None:
    if not isinstance(document, dict):
        return None
    return _time(document.get(_EVENT_TIME.get(document.get("type"), "")))


def _shifted(value: Any, shift: timedelta) -> Any:
    if isinstance(value, dict):
        return {k: _shifted(v, shift) for k, v in value.items()}
    if isinstance(value, list):
        return [_shifted(v, shift) for v in value]
    moment = _time(value)
    return value if moment is None else (moment + shift).isoformat()


def redate(records: Sequence[bytes], now: datetime) -> list[bytes]:
    """The records with every time moved by one whole-second offset, so the latest event time is at most `now`.

    Event times are `submitted_at`, `scanned_at` and `reported_at`; every other time moves with them and keeps
    its UTC offset. A record that is not a JSON object is kept as it is (ingest dead-letters it as usual).

    >>> from datetime import UTC
    >>> redate([b'{"type":"nat_result","sampled_at":"2022-06-18T08:00:00+08:00","reported_at":"2022-06-18T20:00:00+08:00"}'],
    ...        datetime(2026, 1, 2, 12, 0, tzinfo=UTC))
    [b'{"type":"nat_result","sampled_at":"2026-01-02T08:00:00+08:00","reported_at":"2026-01-02T20:00:00+08:00"}']
    """
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise PipelineError(f"now was {now!r} but is expected to be a timezone-aware datetime")
    documents: list[Any] = []
    for raw in records:
        try:
            documents.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            documents.append(None)
    times = [t for t in map(_event_time, documents) if t is not None]
    if not times:
        return list(records)
    shift = timedelta(seconds=math.floor((now - max(times)).total_seconds()))
    return [
        orjson.dumps(_shifted(d, shift)) if isinstance(d, dict) else raw
        for d, raw in zip(documents, records, strict=True)
    ]


def read_records(path: Path) -> list[bytes]:
    """The records of a file: one JSON document (or a JSON array of them) in a `.json` file, else one per line."""
    data = Path(path).read_bytes()
    if Path(path).suffix.lower() == ".json":
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise PipelineError(f"{path}: not one JSON document ({exc}); give a JSONL file one record per line") from None
        return [orjson.dumps(v) for v in value] if isinstance(value, list) else [orjson.dumps(value)]
    return [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]
