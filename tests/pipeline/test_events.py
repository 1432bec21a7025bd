"""Event contracts: every example file validates or fails exactly as its name says; schemas are current."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from pipeline.errors import RejectedEvent
from pipeline.events import CaseEvent, CommunityProperties, DeadLetter, RegionProperties
from pipeline.ingest import parse_input
from pipeline.schemas import schema_documents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.json"))
INPUT_TYPES = {"declaration", "checkpoint_scan", "nat_result"}
OTHER_MODELS = {
    "case_event": CaseEvent,
    "dead_letter": DeadLetter,
    "risk_region_properties": RegionProperties,
    "community_properties": CommunityProperties,
}


def test_there_are_valid_and_invalid_examples_for_every_type() -> None:
    names = [p.stem.split("__") for p in EXAMPLES]
    for kind in INPUT_TYPES | set(OTHER_MODELS):
        expected = [n[1] for n in names if n[0] == kind]
        assert "valid" in expected, kind
        assert any(e != "valid" for e in expected), kind


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_or_fails_as_named(path: Path) -> None:
    kind, expected, *_ = path.stem.split("__")
    raw = path.read_bytes()
    if kind in INPUT_TYPES:
        if expected == "valid":
            assert parse_input(raw).type == kind
        else:
            with pytest.raises(RejectedEvent) as caught:
                parse_input(raw)
            assert caught.value.reason == expected
    else:
        model = OTHER_MODELS[kind]
        if expected == "valid":
            model.model_validate(orjson.loads(raw))
        else:
            assert expected == "schema"
            with pytest.raises(ValidationError):
                model.model_validate(orjson.loads(raw))


def test_committed_schemas_equal_a_fresh_export() -> None:
    folder = ROOT / "config" / "schemas"
    fresh = schema_documents()
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(fresh)
    for name, content in fresh.items():
        assert (folder / name).read_bytes() == content, f"{name} is stale: run `epiflow schemas export`"


def test_validation_errors_never_echo_the_id_number() -> None:
    raw = (ROOT / "config/examples/declaration__id_checksum__last-character-changed.json").read_bytes()
    id_number = orjson.loads(raw)["person"]["id_number"]
    with pytest.raises(RejectedEvent) as caught:
        parse_input(raw)
    assert id_number not in str(caught.value)
    assert "person.id_number" in caught.value.detail
