"""The msgspec fast path and the pydantic path agree: same accept/reject, same reason and detail, same values.

`Observer` (offline evaluation) must give, for any bytes, exactly what `ingest` followed by
`observation_of` gives; `wire.decode` may accept only what `parse_input` accepts, with the same values.
Fed with the contract's examples, the simulator's good and bad records, the fuzzers' documents and
mutations aimed at the rules where the two libraries could differ.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import wire
from pipeline.errors import RejectedEvent
from pipeline.events import (
    CheckpointScan,
    CheckpointScanMirror,
    Declaration,
    DeclarationMirror,
    NatResult,
    NatResultMirror,
)
from pipeline.identity import check_character, check_id
from pipeline.ingest import Observer, ingest, parse_input
from pipeline.settings import load_settings
from pipeline.simulate import SAMPLE_ANCHOR, load_sample_geography, simulate_records
from pipeline.state import Observation, observation_of
from tests.fuzz.strategies import Sample, _paths, documents, valid_documents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "config" / "examples").glob("*.json")
                  if p.stem.split("__")[0] in ("declaration", "checkpoint_scan", "nat_result"))
SECRET = b"wire-test-secret"
LOOKBACK = timedelta(days=14)
FUZZ_AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

Outcome = tuple[str, Any]


def _reference(raw: bytes | str, now: datetime) -> Outcome:
    """What the pydantic path (`ingest`, then `observation_of`) makes of the bytes."""
    try:
        return "ok", [observation_of(e) for e in ingest(raw, secret=SECRET, now=now, lookback=LOOKBACK)]
    except RejectedEvent as exc:
        return "rejected", (exc.reason, exc.detail)


def _fast(raw: bytes | str, now: datetime, observer: Observer | None = None) -> Outcome:
    observe = observer or Observer(secret=SECRET, now=now, lookback=LOOKBACK)
    try:
        return "ok", observe(raw)
    except RejectedEvent as exc:
        return "rejected", (exc.reason, exc.detail)


def _plain(value: Any) -> Any:
    """A comparable form of a decoded document: structs and models as dicts, times as ISO text with offset."""
    if isinstance(value, msgspec.Struct):
        out = {f: _plain(getattr(value, f)) for f in value.__struct_fields__}
        if isinstance(value, DeclarationMirror | CheckpointScanMirror | NatResultMirror):
            out["type"] = value.type
        return out
    if isinstance(value, Declaration | CheckpointScan | NatResult):
        return _plain(value.model_dump())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def _normalised_ids(plain: dict[str, Any]) -> dict[str, Any]:
    """The decoded document with its ID numbers normalised, as the pydantic contract returns them."""
    for holder in plain.get("people") or [plain.get("person")]:
        if isinstance(holder, dict):
            holder["id_number"] = check_id(holder["id_number"]).normalised
    return plain


def _assert_same(raw: bytes | str, now: datetime) -> Outcome:
    """Both paths agree on `raw`; and whatever the msgspec mirrors accept, pydantic accepts with the same values."""
    fast, reference = _fast(raw, now), _reference(raw, now)
    assert fast == reference
    decoded = wire.decode(raw) if isinstance(raw, bytes) else None
    if decoded is not None:
        people = decoded.people if isinstance(decoded, CheckpointScanMirror) else [decoded.person]
        if all(check_id(p.id_number).valid for p in people):
            assert _normalised_ids(_plain(decoded)) == _plain(parse_input(raw))
    return fast


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_contract_example_gets_the_same_outcome(path: Path) -> None:
    raw = path.read_bytes()
    doc = orjson.loads(raw)
    at = doc.get("submitted_at") or doc.get("scanned_at") or doc.get("reported_at")
    now = datetime.fromisoformat(at) if isinstance(at, str) and re.match(r"\d{4}-\d\d-\d\dT", at) else SAMPLE_ANCHOR
    outcome, _ = _assert_same(raw, now)
    assert outcome == ("ok" if path.stem.endswith("__valid") else "rejected")
    if path.stem.endswith("__valid"):
        assert wire.decode(raw) is not None, "a valid example should take the fast path"


def test_simulated_good_and_bad_records_get_the_same_outcome() -> None:
    s = load_settings()
    geo = load_sample_geography(s.path(s.regions), s.path(s.communities), s.path(s.checkpoints), SAMPLE_ANCHOR)
    observer = Observer(secret=SECRET, now=SAMPLE_ANCHOR, lookback=LOOKBACK)
    bad_kinds = set()
    fast_path = 0
    for _, raw, bad in simulate_records(17, 400, SAMPLE_ANCHOR, geo, bad_share=0.4):
        assert _fast(raw, SAMPLE_ANCHOR, observer) == _reference(raw, SAMPLE_ANCHOR)
        if bad is None:
            fast_path += wire.decode(raw) is not None
            assert wire.decode(raw) is not None
        else:
            bad_kinds.add(bad)
    assert bad_kinds == {"invalid_json", "id_checksum", "coordinates", "in_future"}
    assert fast_path > 300


def test_one_observer_gives_each_record_what_a_fresh_one_gives() -> None:
    """The per-observer cache of checked ID numbers changes nothing, whatever came before."""
    s = load_settings()
    geo = load_sample_geography(s.path(s.regions), s.path(s.communities), s.path(s.checkpoints), SAMPLE_ANCHOR)
    records = [raw for _, raw, _ in simulate_records(5, 200, SAMPLE_ANCHOR, geo, bad_share=0.3)]
    shared = Observer(secret=SECRET, now=SAMPLE_ANCHOR, lookback=LOOKBACK)
    for raw in records + records:
        assert _fast(raw, SAMPLE_ANCHOR, shared) == _fast(raw, SAMPLE_ANCHOR)


@FUZZ
@given(valid_documents(FUZZ_AT))
def test_valid_fuzzed_documents_take_the_fast_path_with_the_same_result(sample: Sample) -> None:
    outcome, observations = _assert_same(sample.raw, FUZZ_AT)
    assert outcome == "ok"
    assert all(isinstance(o, Observation) for o in observations)
    assert wire.decode(sample.raw) is not None


@FUZZ
@given(documents(FUZZ_AT))
def test_fuzzed_and_hostile_documents_get_the_same_outcome(sample: Sample) -> None:
    _assert_same(sample.raw, FUZZ_AT)


# --- mutations aimed where msgspec and pydantic could part ways ------------------------------------

def _iso(value: datetime) -> str:
    return value.isoformat()


_IN_WINDOW = FUZZ_AT - timedelta(days=2, hours=3, minutes=4, seconds=5)
_TIMES = [
    _iso(_IN_WINDOW), _iso(_IN_WINDOW.astimezone(UTC)).replace("+00:00", "Z"), _iso(_IN_WINDOW).replace("T", "t").replace("+00:00", "z"),
    _iso(_IN_WINDOW).replace("T", " "), _iso(_IN_WINDOW).replace("T", "_"), _iso(_IN_WINDOW).replace("+00:00", "+0000"),
    _iso(_IN_WINDOW).replace("+00:00", "-00:00"), _iso(_IN_WINDOW).replace("+00:00", "+00"), _iso(_IN_WINDOW).replace("+00:00", ""),
    _iso(_IN_WINDOW).replace("+00:00", "+24:00"), _iso(_IN_WINDOW).replace("+00:00", "+23:59"), _iso(_IN_WINDOW).replace(":05+", ":60+"),
    _iso(_IN_WINDOW).replace(":05+", ".5+"), _iso(_IN_WINDOW).replace(":05+", ":05.123456+"), _iso(_IN_WINDOW).replace(":05+", ":05.1234567+"),
    _iso(_IN_WINDOW).replace(":05+", ":05.9999995+"), _iso(_IN_WINDOW).replace(":05+", ":05.9999999999+"),
    _iso(_IN_WINDOW).replace(":05+", ":05,5+"), _iso(_IN_WINDOW).replace(":05+", ":05.+"), _iso(_IN_WINDOW).replace(":04:05", ":04"),
    _iso(_IN_WINDOW) + "\n", " " + _iso(_IN_WINDOW), str(int(_IN_WINDOW.timestamp())), int(_IN_WINDOW.timestamp()),
    float(_IN_WINDOW.timestamp()), "2026-02-29T00:00:00Z", "0001-01-01T00:00:00+14:00", "2026-05-30T24:00:00Z",
    _iso(_IN_WINDOW.astimezone(UTC).replace(tzinfo=None)) + "+05:45", "2026-05-30T08:00:00.000000Z",
]
_PHONES = ["13900139000", "+8613900139000", "139 0013 9000", "139-0013-9000", "13900139000\n", "13900139000 ", " 13900139000",
           "1390", "13900", "+13900", "1" * 20, "1" * 21, "+" + "1" * 20, "-1390013", "+", "", "１３９００１３９０００", 13900139000]
_NUMBERS = [0, 0.0, -0.0, 180, -180, 180.0000001, -180.0000001, 90, -90, 90.0000001, 1e-300, 5e-324, 120.1234567, 30,
            True, "120.5", None, 1e308, 2**64 - 1]
_TEXTS = ["", "a", "x" * 200, "x" * 201, "\U0001f600" * 200, "\U0001f600" * 201, "\n", "é" * 2000, "é" * 2001, "x" * 128, "x" * 129,
          "a\u0000b", "\u200b", 7, None]
_TIME_KEYS = ("submitted_at", "arrival_at", "scanned_at", "reported_at", "sampled_at", "departed_at", "from", "to")
_TEXT_KEYS = ("name", "place", "address", "plate", "lab", "lab_id", "checkpoint_id", "event_id")



def _set(document: Any, path: tuple, new: Any) -> Any:
    copy = orjson.loads(orjson.dumps(document))
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = new
    return copy


@st.composite
def _edge_documents(draw: st.DrawFn) -> bytes:
    """A valid fuzzed document with one value swapped for a hard case, or its bytes bent where JSON allows."""
    document = orjson.loads(draw(valid_documents(FUZZ_AT)).raw)
    paths = [p for p in _paths(document) if p]
    how = draw(st.sampled_from(["time", "phone", "number", "null_island", "text", "id", "alias", "duplicate", "escape", "null", "list"]))
    swaps = {
        "time": ([p for p in paths if p[-1] in _TIME_KEYS], _TIMES),
        "phone": ([p for p in paths if p[-1] == "phone"], _PHONES),
        "number": ([p for p in paths if p[-1] in ("lon", "lat")], _NUMBERS),
        "text": ([p for p in paths if p[-1] in _TEXT_KEYS], _TEXTS),
    }
    if how in swaps and swaps[how][0]:
        where, values = swaps[how]
        return orjson.dumps(_set(document, draw(st.sampled_from(where)), draw(st.sampled_from(values))))
    points = [p for p in paths if isinstance(_get(document, p), dict) and "lon" in _get(document, p)]
    if how == "null_island" and points:
        where = draw(st.sampled_from(points))
        lon, lat = draw(st.sampled_from([(0, 0), (0.0, -0.0), (-0.0, 0), (0, 1e-300)]))
        return orjson.dumps(_set(_set(document, where + ("lon",), lon), where + ("lat",), lat))
    if how == "id":
        where = draw(st.sampled_from([p for p in paths if p[-1] == "id_number"]))
        good = _get(document, where)
        bad = draw(st.sampled_from([good.lower(), f" {good} ", good[:17] + "x", "\uff11" + good[1:], good[:17], good + "1", good[:17] + "Y"]))
        return orjson.dumps(_set(document, where, bad))
    if how == "null":
        return orjson.dumps({**document, draw(st.sampled_from(["nat_report", "vehicle", "itinerary", "person", "people"])): None})
    key = "people" if "people" in document else "itinerary" if "itinerary" in document else None
    if how == "list" and key:
        items = document[key] or [None]
        size = draw(st.sampled_from([0, 50, 51, 60, 61]))
        return orjson.dumps({**document, key: (items * size)[:size]})
    raw = orjson.dumps(document)
    if how == "alias" and b'"from":' in raw:
        return raw.replace(b'"from":', draw(st.sampled_from([b'"from_":', b'"from_":"x","from":'])), 1)
    if how == "duplicate":
        key_bytes = draw(st.sampled_from([b'"name":', b'"type":', b'"lon":', b'"event_id":']))
        value = draw(st.sampled_from([b'"x",', b'"",', b"1,", b'"declaration",', b'"nat_result",', b"0,"]))
        return raw.replace(key_bytes, key_bytes + value + key_bytes, 1)
    if how == "escape":
        text = raw.decode()
        target = draw(st.sampled_from(["T", ":", "0", "1", "2", ".", "+", "a", "e", "中"]))
        if target in text:
            index = draw(st.sampled_from([m.start() for m in re.finditer(re.escape(target), text)]))
            return (text[:index] + f"\\u{ord(target):04x}" + text[index + 1:]).encode()
    return raw + draw(st.sampled_from([b" ", b"\n", b"\t\r\n", b" x", b"\x00"]))


def _get(document: Any, path: tuple) -> Any:
    for part in path:
        document = document[part]
    return document


@FUZZ
@given(_edge_documents())
def test_hard_cases_get_the_same_outcome(raw: bytes) -> None:
    _assert_same(raw, FUZZ_AT)


@pytest.mark.parametrize("raw", [
    b'{"type":"nat_result","event_id":"e","person":{"id_number":"11010519491231002X","name":"a","phone":"12345"},'
    b'"sampled_at":"2026-05-30T12:05:03.1234567+08:00","reported_at":"2026-05-30T15:06:54+08:00","result":"negative","lab_id":"l"}',
    b'{"type":"nat_result","event_id":"e","person":{"id_number":"11010519491231002X","name":"a","phone":"12345\\n"},'
    b'"sampled_at":"2026-05-30T12:05:03+08:00","reported_at":"2026-05-30T15:06:54+08:00","result":"negative","lab_id":"l"}',
    b'{"type":"nat_result","event_id":"e","person":{"id_number":"11010519491231002X","name":"a","phone":"12345"},'
    b'"sampled_at":"2026-05-30T12:05:03+08:00","reported_at":"2026-05-30T15:06:54.9999999+08:00","result":"negative","lab_id":"l"}',
    "a str, not bytes",
])
def test_the_cases_msgspec_would_read_differently_are_left_to_pydantic(raw: bytes | str) -> None:
    """Sub-microsecond fractions (msgspec rounds, pydantic truncates) and a trailing newline in a pattern."""
    assert wire.decode(raw) is None  # type: ignore[arg-type]
    _assert_same(raw, FUZZ_AT)


def test_an_id_born_after_the_observer_started_is_left_to_ingest() -> None:
    """The observer's day is taken once; a number valid only from a later day still ends as `ingest` says."""
    first17 = "11010520100505123"
    observer = Observer(secret=SECRET, now=FUZZ_AT, lookback=LOOKBACK)
    observer._today = date(2000, 1, 1)
    raw = orjson.dumps({
        "type": "nat_result", "event_id": "e", "person": {"id_number": first17 + check_character(first17), "name": "a", "phone": "12345"},
        "sampled_at": "2026-05-30T12:05:03+08:00", "reported_at": "2026-05-30T15:06:54+08:00", "result": "negative", "lab_id": "l",
    })
    assert _fast(raw, FUZZ_AT, observer) == _reference(raw, FUZZ_AT)
    assert _fast(raw, FUZZ_AT, observer)[0] == "ok"


@pytest.mark.parametrize("shift", [
    timedelta(minutes=10), timedelta(minutes=10, microseconds=1), timedelta(minutes=10, seconds=1), timedelta(0),
    -LOOKBACK, -LOOKBACK - timedelta(microseconds=1), -LOOKBACK - timedelta(seconds=1), -LOOKBACK + timedelta(microseconds=1),
])
@pytest.mark.parametrize("kind", ["nat_result", "declaration", "checkpoint_scan"])
def test_the_time_window_edges_are_judged_alike(shift: timedelta, kind: str) -> None:
    at = (FUZZ_AT + shift).isoformat()
    person = {"id_number": "11010519491231002X", "name": "a", "phone": "12345"}
    document: dict[str, Any] = {
        "nat_result": {"type": "nat_result", "event_id": "e", "person": person, "sampled_at": at, "reported_at": at,
                       "result": "negative", "lab_id": "l"},
        "declaration": {"type": "declaration", "event_id": "e", "submitted_at": at, "person": person, "arrival_at": at,
                        "destination": {"lon": 120.1, "lat": 30.2, "address": "x"}, "itinerary": []},
        "checkpoint_scan": {"type": "checkpoint_scan", "event_id": "e", "checkpoint_id": "cp", "scanned_at": at,
                            "location": {"lon": 120.1, "lat": 30.2}, "people": [{**person, "role": "driver"}]},
    }[kind]
    outcome = _assert_same(orjson.dumps(document), FUZZ_AT)
    assert outcome[0] == ("ok" if -LOOKBACK <= shift <= timedelta(minutes=10) else "rejected")
