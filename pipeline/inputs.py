"""The input kinds: one entry per kind of document that comes in, and everything that lists kinds iterates it.

An entry names the kind's topic and example-file stem, its pydantic contract and msgspec mirror (with their
person-event payloads, in `pipeline.events`), the event time ingest checks for skew and the access role that
may post it over HTTP. A new kind is an entry here, its contract pair, its state mapping and its rule condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from pipeline.events import (
    CheckpointScan,
    CheckpointScanMirror,
    Declaration,
    DeclarationMirror,
    DeclarationPayload,
    DeclarationPayloadMirror,
    InputEvent,
    InputMirror,
    NatPayload,
    NatPayloadMirror,
    NatResult,
    NatResultMirror,
    ScanPayload,
    ScanPayloadMirror,
)

__all__ = ["BY_NAME", "BY_TOPIC", "CHECKPOINT_SCANS", "DECLARATIONS", "INPUT_ADAPTER", "KINDS", "NAMES", "NAT_RESULTS",
           "TOPICS", "InputKind", "event_time", "kind_of"]


@dataclass(frozen=True, slots=True)
class InputKind:
    """One kind of input document, as everything from the topic list to the JSON Schemas needs it."""

    #: the document's `type` and its person events' `kind`
    name: str
    #: the input topic's name in the settings (`settings.topic(...)`) and in the demo's and drills' maps
    topic: str
    #: the stem of its simulated and recorded stream files (`<stem>.jsonl`); its examples in config/examples start with `name`
    stem: str
    model: type[BaseModel]
    mirror: type[Any]
    #: the person-event payload built from a valid document and a person's role (`.of(event, role)`), and its mirror
    payload: type[BaseModel]
    payload_mirror: type[Any]
    #: the field holding the event time ingest checks for skew and the join orders by
    time_field: str
    #: the access role that may post it over HTTP (`streams.access`)
    api_role: str


DECLARATIONS = InputKind("declaration", "declarations", "declarations", Declaration, DeclarationMirror,
                         DeclarationPayload, DeclarationPayloadMirror, "submitted_at", "admin")
CHECKPOINT_SCANS = InputKind("checkpoint_scan", "checkpoint-scans", "checkpoint_scans", CheckpointScan, CheckpointScanMirror,
                             ScanPayload, ScanPayloadMirror, "scanned_at", "checkpoint")
NAT_RESULTS = InputKind("nat_result", "nat-results", "nat_results", NatResult, NatResultMirror,
                        NatPayload, NatPayloadMirror, "reported_at", "lab")

KINDS: tuple[InputKind, ...] = (DECLARATIONS, CHECKPOINT_SCANS, NAT_RESULTS)
NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)
TOPICS: tuple[str, ...] = tuple(k.topic for k in KINDS)
BY_NAME: dict[str, InputKind] = {k.name: k for k in KINDS}
BY_TOPIC: dict[str, InputKind] = {k.topic: k for k in KINDS}

#: validates any input document, dispatching on its `type`
INPUT_ADAPTER: TypeAdapter[InputEvent] = TypeAdapter(
    Annotated[reduce(or_, (k.model for k in KINDS)), Field(discriminator="type")])  # type: ignore[arg-type]


def kind_of(event: InputEvent | InputMirror) -> InputKind:
    """The entry of a validated document, pydantic or mirror."""
    return BY_NAME[event.type]


def event_time(event: InputEvent | InputMirror) -> datetime:
    """The event time ingest checks for skew: when it was submitted, scanned or reported."""
    return getattr(event, BY_NAME[event.type].time_field)  # type: ignore[no-any-return]
