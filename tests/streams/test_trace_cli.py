"""`epiflow trace`: the chain of an index case printed offline, as JSON and as GeoJSON."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from pipeline.identity import mask_id, person_key
from pipeline.settings import load_settings
from streams.cli import root
from tests.pipeline.conftest import AT
from tests.pipeline.test_contacts import AWAY, INDEX, LATER, NEIGHBOUR, RIDER, RIDER2, _trip


def _events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in _trip()))
    return path


def _key(person: dict) -> str:
    return person_key(load_settings().secret_bytes, person["id_number"])


def test_trace_prints_the_chain_of_an_index_case(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, ["trace", _key(INDEX), "--events", str(_events(tmp_path)), "--at", AT.isoformat()])
    assert result.exit_code == 0, result.output
    found = orjson.loads(result.stdout)
    assert found["index"]["masked_id"] == mask_id(INDEX["id_number"])
    assert [p["kind"] for p in found["index"]["places"]] == ["stop", "scan"]
    by_key = {c["person_key"]: c for c in found["contacts"]}
    assert (by_key[_key(RIDER)]["degree"], by_key[_key(RIDER)]["rule"], by_key[_key(RIDER)]["place"]) == (
        "close", "close-contact-vehicle", "cp-01")
    assert by_key[_key(NEIGHBOUR)]["rule"] == "close-contact-place"
    assert by_key[_key(RIDER2)]["degree"] == "secondary"
    assert by_key[_key(RIDER2)]["via_masked_id"] == mask_id(RIDER["id_number"])
    assert _key(LATER) not in by_key and _key(AWAY) not in by_key
    assert INDEX["id_number"] not in result.stdout
    assert found["counts"] == {"close": 2, "secondary": 1}


def test_trace_geojson_has_the_index_places_and_each_contact(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, ["trace", _key(INDEX), "--events", str(_events(tmp_path)), "--at", AT.isoformat(),
                                       "--geojson"])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert doc["type"] == "FeatureCollection"
    roles = [f["properties"]["role"] for f in doc["features"]]
    assert roles == ["index", "index", "close", "close", "secondary"]
    assert all(f["geometry"]["type"] == "Point" for f in doc["features"])


def test_trace_of_an_unknown_person_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(root, ["trace", "0" * 64, "--events", str(_events(tmp_path)), "--at", AT.isoformat()])
    assert result.exit_code == 1 and "no person with key" in result.output
