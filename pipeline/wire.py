"""Fast acceptance of raw input: decoding with the msgspec mirrors that stand beside the contracts in `pipeline.events`.

The pydantic models stay the contract (JSON Schemas, reasons, messages). The mirrors only say quickly that
a document is valid, with the values pydantic would give, except that resident ID numbers come back raw:
the caller checks them with `check_id`, as `events.Person` does, once per distinct number. Whatever they
refuse goes back to the pydantic path, which accepts or rejects it as usual; tests/pipeline/test_wire.py
holds the two paths to agreement.
"""

from __future__ import annotations

import re
from functools import reduce
from operator import or_

import msgspec

from pipeline.events import InputMirror, PersonEventMirror
from pipeline.inputs import KINDS

__all__ = ["decode", "decode_person_event"]

_DECODER = msgspec.json.Decoder(reduce(or_, (k.mirror for k in KINDS)))

#: msgspec rounds a fraction of a second beyond microseconds where pydantic truncates it, so such
#: a time takes the pydantic path; so does an escaped ASCII character (`\u0030`), which could hide one.
_SUB_MICROSECOND = re.compile(rb":[0-9]{2}:[0-9]{2}\.[0-9]{7}")
_ASCII_ESCAPE = re.compile(rb"\\u00[2-7]")


def decode(raw: bytes) -> InputMirror | None:
    """The document, validated but for its raw ID numbers, or None when only the pydantic path can decide.

    The rules left to Python (phone numbers, no (0, 0) position, stops in order) are each mirror's `checked`,
    called here rather than in `__post_init__`, which msgspec would call once per struct, at several times the cost.
    """
    if type(raw) is not bytes or _ASCII_ESCAPE.search(raw) is not None or _SUB_MICROSECOND.search(raw) is not None:
        return None
    try:
        event = _DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # invalid UTF-8 raises a UnicodeDecodeError
        return None
    return event if event.checked() else None


_PERSON_EVENT_DECODER = msgspec.json.Decoder(PersonEventMirror)


def decode_person_event(raw: bytes) -> PersonEventMirror | None:
    """A person event as ingest wrote it, or None for anything else (the caller then asks pydantic).

    Shape and types only: the input rules (no (0, 0) position, stops in order, phone patterns) were
    applied by ingest, the topic's one writer, before the event was written."""
    try:
        return _PERSON_EVENT_DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        return None
