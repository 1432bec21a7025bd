"""Key-group rosters: CSV rows (`group,id_number,name,phone,community`) → validated, pseudonymised enrolments.

A roster file becomes one raw row document per data line (`roster_rows`), which travels like any
input; `roster_entry` validates one of them — ID number, group, phone, community — and pseudonymises
the ID, or raises `RejectedEvent` whose detail names the file and line. Offline and stream call the same.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Container
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson

from pipeline.errors import KeyGroupsError, RejectedEvent
from pipeline.identity import check_id, mask_id, person_key, redact_ids
from pipeline.key_groups import KeyGroups

__all__ = ["COLUMNS", "ROW_TYPE", "RosterEntry", "entry_from_json", "entry_to_json", "roster_entry", "roster_rows"]

#: The columns a roster file has, in this order, on its first line.
COLUMNS = ("group", "id_number", "name", "phone", "community")
ROW_TYPE = "roster_row"
_PHONE = re.compile(r"\+?[0-9][0-9 \-]{4,19}")
_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One person enrolled in one key group; `enterprise` is set when the roster came from an enterprise."""

    group: str
    person_key: str
    masked_id: str
    name: str
    phone: str
    community: str
    enterprise: str
    source: str
    line: int
    enrolled_at: str


def roster_rows(
    text: str, source: str, *, enterprise: str = "", submitted_at: datetime, group: str | None = None
) -> list[bytes]:
    """The row documents of a roster file, one per non-blank data line, with its line number; unvalidated.

    With `group` (a roster posted for one group) the file has no `group` column. Raises `KeyGroupsError`
    when the header is not `group,id_number,name,phone,community` (without `group,` when `group` is given).
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = next(reader, None)
    expected = COLUMNS if group is None else COLUMNS[1:]
    if header is None or tuple(h.strip() for h in header) != expected:
        shown = redact_ids(",".join(header or [])[:120])
        raise KeyGroupsError(f"{source}:1: the header was {shown!r} but is expected to be {','.join(expected)!r}")
    rows = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        rows.append(orjson.dumps({
            "type": ROW_TYPE, "source": source, "line": line, "enterprise": enterprise,
            "submitted_at": submitted_at.isoformat(), "cells": cells if group is None else [group, *cells],
        }))
    return rows


def _reject(reason: str, where: str, problem: str) -> RejectedEvent:
    return RejectedEvent(reason, f"{where}: {problem}")


def roster_entry(
    raw: bytes | str, *, secret: bytes, groups: KeyGroups, communities: Container[str] | None = None
) -> RosterEntry:
    """Validate one row document and pseudonymise its ID number; raise `RejectedEvent` naming file, line and problem.

    With `communities`, a row naming a community outside them is refused (its reminders would reach nobody).
    """
    try:
        doc: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RejectedEvent("invalid_json", f"not valid JSON (UTF-8): {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != ROW_TYPE:
        raise RejectedEvent("unknown_type", f"expected a JSON object with 'type' {ROW_TYPE!r}")
    source, line, cells = doc.get("source"), doc.get("line"), doc.get("cells")
    if not isinstance(source, str) or not isinstance(line, int) or not isinstance(cells, list) \
            or not all(isinstance(c, str) for c in cells):
        raise RejectedEvent("schema", "a roster row needs 'source' (text), 'line' (number) and 'cells' (list of text)")
    where = f"{source} line {line}"
    if len(cells) != len(COLUMNS):
        raise _reject("roster_columns", where, f"{len(cells)} columns but a row has {len(COLUMNS)}: {','.join(COLUMNS)}")
    group, id_number, name, phone, community = (c.strip() for c in cells)
    if groups.get(group) is None:
        shown = redact_ids(repr(group)[:40])
        raise _reject("unknown_group", where, f"group {shown} is not in key groups {groups.version} "
                                              f"(expected one of {', '.join(groups.ids)})")
    outcome = check_id(id_number)
    if not outcome.valid:
        raise _reject(f"id_{outcome.reason}", where, f"resident ID number is invalid: {outcome.reason}")
    if not 1 <= len(name) <= 200:
        raise _reject("schema", where, "name: must be 1 to 200 characters")
    if _PHONE.fullmatch(phone) is None:
        raise _reject("schema", where, "phone: not a phone number (digits, spaces, '-', optional leading '+')")
    if _CODE.fullmatch(community) is None:
        raise _reject("schema", where, "community: must be a community code (letters, digits, '._-')")
    if communities is not None and community not in communities:
        raise _reject("unknown_community", where, f"community {community!r} is not in the district's communities")
    enterprise = doc.get("enterprise") or ""
    submitted = doc.get("submitted_at") or ""
    if not isinstance(enterprise, str) or not isinstance(submitted, str):
        raise _reject("schema", where, "'enterprise' and 'submitted_at' must be text")
    normalised: str = outcome.normalised  # type: ignore[assignment]
    return RosterEntry(group, person_key(secret, normalised), mask_id(normalised), name, phone, community,
                       enterprise, source, line, submitted)


def entry_to_json(entry: RosterEntry) -> bytes:
    """An enrolment as it travels on the roster-members topic (no raw ID number)."""
    return orjson.dumps(asdict(entry))


def entry_from_json(raw: bytes) -> RosterEntry:
    """The enrolment `entry_to_json` wrote."""
    return RosterEntry(**orjson.loads(raw))
