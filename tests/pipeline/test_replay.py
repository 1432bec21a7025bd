"""Re-dating recorded inputs (`epiflow produce --now`): the examples become current and keep their intervals."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import pipeline.replay
from pipeline.errors import PipelineError, RejectedEvent
from pipeline.ingest import ingest
from pipeline.replay import read_records, redate
from pipeline.settings import REPO_ROOT
from streams.cli import root

EXAMPLES = REPO_ROOT / "config" / "examples"
VALID = sorted(p for p in EXAMPLES.glob("*__valid.json") if p.name.split("__")[0] in ("declaration", "checkpoint_scan", "nat_result"))
NOW = datetime(2026, 12, 1, 20, 0, 30, 500000, tzinfo=UTC)
LOOKBACK = timedelta(days=14)


def _times(document: dict, found: list[str] | None = None) -> list[str]:
    found = [] if found is None else found
    for key, value in document.items():
        if isinstance(value, dict):
            _times(value, found)
        elif isinstance(value, list):
            for item in value:
                _times(item, found) if isinstance(item, dict) else None
        elif isinstance(value, str) and key.endswith(("_at", "from", "to")):
            found.append(value)
    return found


def test_doctests() -> None:
    assert doctest.testmod(pipeline.replay).failed == 0


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_a_valid_example_is_refused_as_too_old_until_it_is_redated(path: Path) -> None:
    (raw,) = read_records(path)
    with pytest.raises(RejectedEvent, match="too_old"):
        ingest(raw, secret=b"s" * 16, now=NOW, lookback=LOOKBACK)
    (moved,) = redate([raw], NOW)
    assert ingest(moved, secret=b"s" * 16, now=NOW, lookback=LOOKBACK)
    before = [datetime.fromisoformat(t) for t in _times(orjson.loads(raw))]
    after = [datetime.fromisoformat(t) for t in _times(orjson.loads(moved))]
    shifts = {b - a for a, b in zip(before, after, strict=True)}
    assert len(shifts) == 1 and next(iter(shifts)).microseconds == 0
    assert [t.utcoffset() for t in after] == [t.utcoffset() for t in before]


def test_records_keep_their_offsets_to_each_other_and_the_latest_is_now() -> None:
    records = [read_records(EXAMPLES / "declaration__valid.json")[0], read_records(EXAMPLES / "nat_result__valid.json")[0], b"{broken"]
    declaration, nat, broken = redate(records, NOW)
    assert broken == b"{broken"
    submitted = datetime.fromisoformat(orjson.loads(declaration)["submitted_at"])
    reported = datetime.fromisoformat(orjson.loads(nat)["reported_at"])
    assert NOW - timedelta(seconds=1) < reported <= NOW
    assert reported - submitted == timedelta(hours=10, minutes=30)


def test_nothing_to_anchor_on_and_naive_now() -> None:
    assert redate([b"[1]", b"x"], NOW) == [b"[1]", b"x"]
    with pytest.raises(PipelineError, match="timezone-aware"):
        redate([], NOW.replace(tzinfo=None))


def test_produce_now_writes_the_redated_examples(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, ["produce", "--now", "--topic", "checkpoint-scans", "--out", "-",
                                       str(EXAMPLES / "checkpoint_scan__valid.json")])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    scanned = datetime.fromisoformat(orjson.loads(line)["scanned_at"])
    assert abs(scanned - datetime.now(UTC)) < timedelta(minutes=1)
