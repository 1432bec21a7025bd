"""JSON Schemas of the event contracts, exported to `config/schemas/` for producers in other languages."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from pipeline.events import (
    CaseEvent,
    CommunityProperties,
    DeadLetter,
    LoopMessage,
    PersonEvent,
    RegionProperties,
    TriageMessage,
)
from pipeline.inputs import KINDS

__all__ = ["SCHEMA_MODELS", "schema_documents", "write_schemas"]

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    **{k.name: k.model for k in KINDS},
    "person_event": PersonEvent,
    "triage_message": TriageMessage,
    "loop_message": LoopMessage,
    "case_event": CaseEvent,
    "dead_letter": DeadLetter,
    "risk_region_properties": RegionProperties,
    "community_properties": CommunityProperties,
}


def schema_documents() -> dict[str, bytes]:
    """File name → schema bytes (sorted keys, indented), deterministic so a test can compare."""
    return {
        f"{name}.schema.json": orjson.dumps(
            model.model_json_schema(by_alias=True), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        ) + b"\n"
        for name, model in SCHEMA_MODELS.items()
    }


def write_schemas(folder: Path) -> list[Path]:
    """Write every schema into `folder` and return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in schema_documents().items():
        path = folder / name
        path.write_bytes(content)
        written.append(path)
    return written
