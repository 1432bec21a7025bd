"""Hypothesis strategies for hostile input: valid documents of every input type, and mutations of them.

Valid documents follow the contracts in `pipeline/events.py` (resident IDs carry a correct GB 11643
check character) and are anchored at a given `at`, so ingest with `now=at` accepts them. Mutators
turn a valid document into wrong types, missing and extra fields, huge strings, odd numbers and
Unicode, deep nesting, invalid UTF-8 and multi-megabyte bodies, always as the raw bytes a producer sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import strategies as st

from pipeline.identity import PROVINCE_CODES, check_character

__all__ = [
    "KINDS",
    "Sample",
    "checkpoint_scans",
    "declarations",
    "documents",
    "hostile_documents",
    "mutated_documents",
    "mutated_features",
    "mutated_rules_texts",
    "nat_results",
    "odd_text",
    "resident_ids",
    "valid_documents",
    "valid_feature",
]

#: Input topic kind → document `type`.
KINDS = {"declarations": "declaration", "checkpoint-scans": "checkpoint_scan", "nat-results": "nat_result"}

_ZONES = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45))]
#: Numbers no coordinate may take; NaN and ±inf only exist as the non-standard `NaN` / `Infinity` literals.
_BAD_NUMBERS = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 2**63, -(2**64)]
#: Numbers at the edges that may or may not be valid where they land.
_EDGE_NUMBERS = [5e-324, -0.0, 0.0, 180.0000001, -90.5, 1e308, -1e308, 2**63 - 1]
_ODD_CHARS = "\x00\x01\x7f\u200b\u200d\u202e\u2066\ufeff\ufffd\u0301\u0336\U0001f9a0\U0001f468\u200d\U0001f469\u0660\uff13\u3000\u00a0𝟘"


@dataclass(frozen=True)
class Sample:
    """One input record: the topic kind it goes to, its bytes, and the resident IDs it was built from."""

    kind: str
    raw: bytes
    ids: tuple[str, ...]
    valid: bool
    people: int = 1
    mutation: str = "none"


def resident_ids(born_after: date = date(1930, 1, 1), born_before: date = date(2012, 12, 31)) -> st.SearchStrategy[str]:
    """Valid 18-character resident ID numbers: real province, calendar birth date, correct check character."""
    def build(province: str, area: int, born: date, serial: int, lower_x: bool) -> str:
        first17 = f"{province}{area:04d}{born:%Y%m%d}{serial:03d}"
        check = check_character(first17)
        return first17 + (check.lower() if lower_x and check == "X" else check)

    return st.builds(
        build, st.sampled_from(sorted(PROVINCE_CODES)), st.integers(0, 9999),
        st.dates(born_after, born_before), st.integers(0, 999), st.booleans(),
    )


def _text(max_size: int = 30) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=max_size)


def odd_text() -> st.SearchStrategy[str]:
    """Strings with control characters, bidi overrides, zero-width joiners, combining marks, emoji, non-ASCII digits."""
    return st.text(st.sampled_from(_ODD_CHARS) | st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)


_PHONES = st.from_regex(r"\+?1[3-9][0-9]{9}", fullmatch=True)
_LONS = st.floats(73.5, 135.0, allow_nan=False)
_LATS = st.floats(18.0, 53.5, allow_nan=False)


def _time(at: datetime, earliest: timedelta, latest: timedelta) -> st.SearchStrategy[str]:
    """An ISO 8601 time with an offset between `at + earliest` and `at + latest`."""
    span = int((latest - earliest).total_seconds())
    return st.builds(
        lambda s, zone: (at + earliest + timedelta(seconds=s)).astimezone(zone).isoformat(),
        st.integers(0, span), st.sampled_from(_ZONES),
    )


def _person(ids: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"id_number": ids, "name": _text(20), "phone": _PHONES})


@st.composite
def _stop(draw: st.DrawFn, at: datetime) -> dict[str, Any]:
    start = draw(st.integers(-13 * 86_400, -3_600))
    length = draw(st.integers(0, 3 * 86_400))
    zone = draw(st.sampled_from(_ZONES))
    return {
        "lon": draw(_LONS), "lat": draw(_LATS), "place": draw(_text(40)),
        "from": (at + timedelta(seconds=start)).astimezone(zone).isoformat(),
        "to": (at + timedelta(seconds=start + length)).astimezone(zone).isoformat(),
    }


def declarations(at: datetime) -> st.SearchStrategy[dict[str, Any]]:
    """Valid declaration documents submitted up to 13 days before `at` (or a few minutes after)."""
    required = {
        "type": st.just("declaration"),
        "event_id": st.uuids().map(lambda u: f"decl-{u.hex}"),
        "submitted_at": _time(at, -timedelta(days=13), timedelta(minutes=5)),
        "person": _person(resident_ids()),
        "arrival_at": _time(at, -timedelta(days=2), timedelta(days=3)),
        "destination": st.fixed_dictionaries({"lon": _LONS, "lat": _LATS, "address": _text(60)}),
        "itinerary": st.lists(_stop(at), max_size=6),
    }
    optional = {"nat_report": st.fixed_dictionaries({
        "sampled_at": _time(at, -timedelta(days=3), timedelta(0)),
        "result": st.sampled_from(["negative", "positive"]), "lab": _text(20),
    })}
    return st.fixed_dictionaries(required, optional=optional)


def checkpoint_scans(at: datetime) -> st.SearchStrategy[dict[str, Any]]:
    """Valid checkpoint scans (with or without a vehicle) of 1..6 people."""
    vehicle = st.fixed_dictionaries({
        "plate": _text(12),
        "origin": st.fixed_dictionaries({"lon": _LONS, "lat": _LATS, "place": _text(40)}),
        "departed_at": _time(at, -timedelta(days=3), timedelta(0)),
    })
    person = st.fixed_dictionaries({
        "id_number": resident_ids(), "name": _text(20), "phone": _PHONES,
        "role": st.sampled_from(["driver", "passenger", "pedestrian"]),
    })
    return st.fixed_dictionaries(
        {
            "type": st.just("checkpoint_scan"),
            "event_id": st.uuids().map(lambda u: f"scan-{u.hex}"),
            "checkpoint_id": st.sampled_from(["cp-01", "cp-02", "cp-05"]) | _text(20),
            "scanned_at": _time(at, -timedelta(days=13), timedelta(minutes=5)),
            "location": st.fixed_dictionaries({"lon": _LONS, "lat": _LATS}),
            "people": st.lists(person, min_size=1, max_size=6),
        },
        optional={"vehicle": vehicle | st.none()},
    )


def nat_results(at: datetime) -> st.SearchStrategy[dict[str, Any]]:
    """Valid NAT results reported up to 13 days before `at`."""
    return st.fixed_dictionaries({
        "type": st.just("nat_result"),
        "event_id": st.uuids().map(lambda u: f"nat-{u.hex}"),
        "person": _person(resident_ids()),
        "sampled_at": _time(at, -timedelta(days=14), -timedelta(days=13)),
        "reported_at": _time(at, -timedelta(days=13), timedelta(minutes=5)),
        "result": st.sampled_from(["negative", "positive", "invalid"]),
        "lab_id": _text(20),
    })


def _ids_of(document: dict[str, Any]) -> tuple[str, ...]:
    people = document.get("people") or [document.get("person") or {}]
    return tuple(p["id_number"] for p in people if isinstance(p, dict) and isinstance(p.get("id_number"), str))


_BUILDERS = {"declarations": declarations, "checkpoint-scans": checkpoint_scans, "nat-results": nat_results}


def _kinded(at: datetime, kinds: tuple[str, ...]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.one_of(*(_BUILDERS[k](at).map(lambda d, k=k: (k, d)) for k in kinds))


def valid_documents(at: datetime, kinds: tuple[str, ...] = tuple(KINDS)) -> st.SearchStrategy[Sample]:
    """Valid documents of the given kinds as bytes, ingest accepts each one at `now=at`."""
    return _kinded(at, kinds).map(lambda kd: Sample(
        kd[0], orjson.dumps(kd[1]), _ids_of(kd[1]), True, len(kd[1].get("people", [None])),
    ))


# --- mutators ---------------------------------------------------------------------------------------

Path = tuple[str | int, ...]


def _paths(value: Any, path: Path = ()) -> list[Path]:
    """Every path into a JSON value (the root included)."""
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, path + (key,)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_paths(item, path + (i,)))
    return out


def _get(value: Any, path: Path) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    copy = orjson.loads(orjson.dumps(value))
    parent = _get(copy, path[:-1])
    parent[path[-1]] = new
    return copy


def _delete(value: Any, path: Path) -> Any:
    copy = orjson.loads(orjson.dumps(value))
    parent = _get(copy, path[:-1])
    del parent[path[-1]]
    return copy


_JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | odd_text()
_ANY_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text(), inner, max_size=4), max_leaves=12)


def _encode_loose(value: Any) -> bytes:
    """JSON with NaN / Infinity literals and \\u escapes (what a sloppy producer writes)."""
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def _mutation(draw: st.DrawFn, kind: str, document: dict[str, Any]) -> tuple[str, bytes]:
    """One named mutation of `document`, as the bytes to send."""
    paths = _paths(document)
    inner = [p for p in paths if p]
    strings = [p for p in inner if isinstance(_get(document, p), str)]
    dicts = [p for p in paths if isinstance(_get(document, p), dict)]
    coords = [p for p in inner if p[-1] in ("lon", "lat")]
    ids = [p for p in inner if p[-1] == "id_number"]
    name = draw(st.sampled_from([
        "wrong_type", "missing", "extra", "huge_string", "odd_number", "odd_number_literal", "odd_unicode",
        "lone_surrogate", "deep_nesting", "too_deep", "invalid_utf8", "truncated", "multi_megabyte",
        "not_an_object", "other_type", "bad_id", "many_people", "naive_time", "swap_kind",
    ]))
    if name == "wrong_type":
        return name, orjson.dumps(_set(document, draw(st.sampled_from(inner)), draw(_ANY_JSON)))
    if name == "missing":
        return name, orjson.dumps(_delete(document, draw(st.sampled_from(inner))))
    if name == "extra":
        where = draw(st.sampled_from(dicts))
        key = draw(odd_text().filter(lambda k: k not in _get(document, where)))
        return name, orjson.dumps(_set(document, where + (key,), draw(_ANY_JSON)))
    if name == "huge_string":
        size = draw(st.sampled_from([201, 2_001, 100_000]))
        return name, orjson.dumps(_set(document, draw(st.sampled_from(strings)), draw(st.sampled_from("x中\U0001f9a0")) * size))
    if name == "odd_number":
        return name, orjson.dumps(_set(document, draw(st.sampled_from(coords or inner)), draw(st.sampled_from(_EDGE_NUMBERS))))
    if name == "odd_number_literal":
        return name, _encode_loose(_set(document, draw(st.sampled_from(coords or inner)), draw(st.sampled_from(_BAD_NUMBERS))))
    if name == "odd_unicode":
        return name, orjson.dumps(_set(document, draw(st.sampled_from(strings)), draw(odd_text())))
    if name == "lone_surrogate":
        return name, _encode_loose(_set(document, draw(st.sampled_from(strings)), "a\ud800b"))
    if name in ("deep_nesting", "too_deep"):
        depth = draw(st.integers(100, 900)) if name == "deep_nesting" else draw(st.integers(1_100, 100_000))
        marker = "__DEEP__"
        text = orjson.dumps(_set(document, draw(st.sampled_from(inner)), marker))
        opener = draw(st.sampled_from([b"[", b'{"a":']))
        closer = b"]" if opener == b"[" else b"}"
        return name, text.replace(b'"' + marker.encode() + b'"', opener * depth + b"1" + closer * depth)
    if name == "invalid_utf8":
        raw = orjson.dumps(document)
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80\x80", b"\xf8\x88\x80\x80\x80"]))
        return name, raw[:at] + junk + raw[at:]
    if name == "truncated":
        raw = orjson.dumps(document)
        return name, raw[: draw(st.integers(0, len(raw) - 1))]
    if name == "multi_megabyte":
        size = draw(st.sampled_from([1_100_000, 2_500_000]))
        where = draw(st.sampled_from(dicts))
        how = draw(st.sampled_from(["field", "list", "whitespace"]))
        if how == "whitespace":
            return name, orjson.dumps(document) + b" " * size
        filler: Any = "y" * size if how == "field" else list(range(size // 8))
        return name, orjson.dumps(_set(document, where + ("padding",), filler))
    if name == "not_an_object":
        return name, draw(st.sampled_from([b"", b"null", b"[]", b"42", b'"declaration"', b"true", b"[{}]", b"\x00"]) | _ANY_JSON.map(orjson.dumps))
    if name == "other_type":
        return name, orjson.dumps({**document, "type": draw(st.sampled_from(["", "Declaration", "nat-result", None, 3, ["declaration"]]) | odd_text())})
    if name == "bad_id" and ids:
        good = _get(document, draw(st.sampled_from(ids)))
        bad = draw(st.sampled_from([
            good[:17], good + "0", good[:17] + ("0" if good[17] != "0" else "1"), "99" + good[2:],
            good[:10] + "1340" + good[14:], good[:5] + "\uff13" + good[6:], good[:5] + "\u0663" + good[6:],
            " " + good + "\t", good.replace(good[7], "A", 1),
        ]))
        return name, orjson.dumps(_set(document, draw(st.sampled_from(ids)), bad))
    if name == "many_people" and kind == "checkpoint-scans":
        people = document["people"] * (61 // len(document["people"]) + 1)
        return name, orjson.dumps({**document, "people": people})
    if name == "naive_time":
        times = [p for p in strings if p[-1] in ("submitted_at", "scanned_at", "reported_at", "from", "to", "sampled_at", "arrival_at", "departed_at")]
        if times:
            where = draw(st.sampled_from(times))
            value = draw(st.sampled_from(["2026-06-01T08:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z", "yesterday", "1e308"]))
            return name, orjson.dumps(_set(document, where, value))
    if name == "swap_kind":
        return name, orjson.dumps(document)
    return "extra_root", orjson.dumps({**document, "unexpected": True})


def mutated_documents(at: datetime, kinds: tuple[str, ...] = tuple(KINDS)) -> st.SearchStrategy[Sample]:
    """A valid document of one of `kinds`, mutated once; `swap_kind` sends it to another kind's topic."""
    @st.composite
    def build(draw: st.DrawFn) -> Sample:
        kind, document = draw(_kinded(at, kinds))
        name, raw = draw(_mutation(kind, document))
        topic = draw(st.sampled_from([k for k in KINDS if k != kind])) if name == "swap_kind" else kind
        return Sample(topic, raw, _ids_of(document), False, len(document.get("people", [None])), name)

    return build()


def hostile_documents(kinds: tuple[str, ...] = tuple(KINDS)) -> st.SearchStrategy[Sample]:
    """Bytes with no document behind them: arbitrary binary and arbitrary JSON values."""
    return st.builds(
        lambda kind, raw: Sample(kind, raw, (), False, 0, "arbitrary"),
        st.sampled_from(kinds),
        st.binary(max_size=300) | _ANY_JSON.map(orjson.dumps),
    )


def documents(at: datetime, kinds: tuple[str, ...] = tuple(KINDS)) -> st.SearchStrategy[Sample]:
    """The mix a worker is fed: valid, mutated and arbitrary records."""
    return st.one_of(valid_documents(at, kinds), mutated_documents(at, kinds), mutated_documents(at, kinds), hostile_documents(kinds))


# --- control documents ------------------------------------------------------------------------------

def valid_feature(region_id: str = "fz-1", level: str = "high") -> dict[str, Any]:
    """A small valid risk-region GeoJSON Feature."""
    return {
        "type": "Feature", "id": region_id,
        "properties": {"id": region_id, "level": level, "name": "Fuzz region", "effective_from": "2026-05-01T00:00:00+08:00"},
        "geometry": {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.1, 30.0], [120.1, 30.1], [120.0, 30.1], [120.0, 30.0]]]},
    }


@st.composite
def mutated_features(draw: st.DrawFn) -> Any:
    """A risk-region Feature with one thing wrong (or an arbitrary JSON value)."""
    feature = valid_feature()
    paths = [p for p in _paths(feature) if p]
    coords = [p for p in paths if len(p) >= 4 and p[:2] == ("geometry", "coordinates")]
    name = draw(st.sampled_from(["wrong_type", "missing", "odd_number", "geometry", "property", "arbitrary"]))
    if name == "wrong_type":
        path = draw(st.sampled_from([p for p in paths if p != ("id",) and p[-1] != "name"]))
        return _set(feature, path, draw(_ANY_JSON.filter(lambda v, old=_get(feature, path): v != old)))
    if name == "missing":
        return _delete(feature, draw(st.sampled_from([("type",), ("geometry",), ("properties",), ("properties", "level"), ("properties", "effective_from"), ("geometry", "coordinates"), ("geometry", "type")])))
    if name == "odd_number":
        return _set(feature, draw(st.sampled_from(coords)), draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 400.0, -95.0])))
    if name == "geometry":
        return _set(feature, ("geometry",), draw(st.sampled_from([
            {"type": "Point", "coordinates": [120.0, 30.0]},
            {"type": "Polygon", "coordinates": []},
            {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.1, 30.0]]]},
            {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.0, 30.0], [120.0, 30.0], [120.0, 30.0]]]},
            {"type": "Polygon", "coordinates": [[120.0, 30.0]]},
            {"type": "Polygon", "coordinates": "nope"},
            {"type": "MultiPolygon", "coordinates": [[[[1, 2]]]]},
            {"type": "GeometryCollection", "geometries": []},
            {"type": "Hexagon", "coordinates": []},
            {"type": "Polygon"},
            {},
            {"type": "LineString", "coordinates": [[120.0, 30.0], [121.0, 31.0]]},
        ])))
    if name == "property":
        key, value = draw(st.sampled_from([
            ("level", "critical"), ("level", ""), ("level", None), ("effective_from", "2026-05-01T00:00:00"),
            ("effective_from", "not a time"), ("effective_from", None), ("effective_until", "1999-01-01T00:00:00+08:00"),
            ("id", ""), ("id", None), ("name", ""), ("effective_from", 1e308),
        ]))
        if key == "id":
            return {**_set(feature, ("properties", key), value), "id": value}
        return _set(feature, ("properties", key), value)
    return draw(_ANY_JSON)


@st.composite
def mutated_rules_texts(draw: st.DrawFn, text: str) -> tuple[str, str]:
    """A rules document (YAML text) with one thing wrong: (mutation name, text)."""
    lines = text.splitlines()
    name = draw(st.sampled_from([
        "delete_line", "duplicate_line", "garble_line", "bad_indent", "truncate", "negative", "unknown_key",
        "unknown_action", "not_mapping", "empty", "tabs", "odd_unicode", "deep_nesting", "huge", "yaml_tags",
    ]))
    body = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if name == "delete_line":
        i = draw(st.sampled_from(body))
        return name, "\n".join(lines[:i] + lines[i + 1:])
    if name == "duplicate_line":
        i = draw(st.sampled_from(body))
        return name, "\n".join(lines[: i + 1] + lines[i:])
    if name == "garble_line":
        i = draw(st.sampled_from(body))
        return name, "\n".join(lines[:i] + [lines[i] + draw(st.sampled_from([": :", " [", " {", "'", '"', " *x", " &a &b", " !!python/object:os.system ls"]))] + lines[i + 1:])
    if name == "bad_indent":
        i = draw(st.sampled_from(body))
        return name, "\n".join(lines[:i] + ["   " + lines[i]] + lines[i + 1:])
    if name == "truncate":
        return name, text[: draw(st.integers(0, len(text) - 1))]
    if name == "negative":
        return name, text.replace("lookback_days: 14", f"lookback_days: {draw(st.sampled_from(['-1', '.nan', '.inf', '-.inf', '1e999', 'abc', '[]', 'null']))}")
    if name == "unknown_key":
        return name, text.replace("windows:", f"{draw(st.sampled_from(['wndows', 'extra', 'version2']))}: 1\nwindows:", 1)
    if name == "unknown_action":
        return name, text.replace("then: {action: transfer}", f"then: {{action: {draw(st.sampled_from(['teleport', 'Transfer', '1', 'null']))}}}", 1)
    if name == "not_mapping":
        return name, draw(st.sampled_from(["- a\n- b\n", "42\n", "'just text'\n", "null\n", "~\n", "[]\n"]))
    if name == "empty":
        return name, draw(st.sampled_from(["", "\n\n", "# only a comment\n", "---\n", "--- \n...\n"]))
    if name == "tabs":
        return name, text.replace("  ", "\t", 3)
    if name == "odd_unicode":
        return name, text.replace("version:", draw(odd_text()) + "version:", 1)
    if name == "deep_nesting":
        depth = draw(st.integers(200, 5_000))
        return name, text.replace("when: {nat_positive: true}", "when: " + "{all: [" * depth + "{nat_positive: true}" + "]}" * depth, 1)
    if name == "huge":
        return name, text.replace('version: "2022.06-national-9"', f'version: "{"v" * draw(st.sampled_from([65, 100_000]))}"', 1)
    return name, text.replace("timezone: Asia/Shanghai", draw(st.sampled_from([
        "timezone: !!python/name:os.system", "timezone: !!binary aGVsbG8=", "timezone: &a [*a]", "timezone: Mars/Olympus",
        "timezone: ../../etc/passwd", "timezone: 2022-01-01",
    ])), 1)
