"""Checkpoint coverage of key enterprises: the share of each one's expected vehicles and staff checked per day.

An enterprise registers its fleet (plates) and staff (ID numbers, pseudonymised here) in a CSV
`enterprise,enterprise_name,kind,value,name` (kind `vehicle` or `staff`). Every checkpoint scan that
ingest accepts marks its vehicle's plate and its people checked on the scan's day (display zone).
Pure: the offline command, the daily report and the dashboard all call `coverage`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from pipeline.errors import KeyGroupsError, RejectedEvent
from pipeline.events import CheckpointScan
from pipeline.identity import check_id, mask_id, person_key, redact_ids
from pipeline.ingest import parse_input

__all__ = [
    "REGISTRY_COLUMNS",
    "Check",
    "Coverage",
    "Enterprise",
    "check_of_scan",
    "coverage",
    "coverage_json",
    "coverage_of_records",
    "enterprise_from_json",
    "enterprise_to_json",
    "normalise_plate",
    "parse_registry",
]

REGISTRY_COLUMNS = ("enterprise", "enterprise_name", "kind", "value", "name")
_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PLATE_NOISE = re.compile(r"[\s·.\-]")


def normalise_plate(plate: str) -> str:
    """A plate as compared: no blanks, dots or dashes, upper case (`浙A·12345` → `浙A12345`)."""
    return _PLATE_NOISE.sub("", plate).upper()


@dataclass(frozen=True, slots=True)
class Enterprise:
    """A key enterprise's registered fleet (normalised plates) and staff (person key → masked ID, name)."""

    id: str
    name: str
    plates: tuple[str, ...]
    staff: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class Check:
    """What one accepted checkpoint scan checked: a plate (or ''), the person keys on board, when."""

    plate: str
    people: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class Coverage:
    """One enterprise on one day: expected and checked vehicles and people, and the unchecked ones."""

    enterprise: str
    name: str
    day: date
    vehicles: int
    vehicles_checked: int
    people: int
    people_checked: int
    unchecked_plates: tuple[str, ...]
    unchecked_people: tuple[str, ...]

    @property
    def vehicle_rate(self) -> float | None:
        return round(self.vehicles_checked / self.vehicles, 4) if self.vehicles else None

    @property
    def people_rate(self) -> float | None:
        return round(self.people_checked / self.people, 4) if self.people else None


def parse_registry(text: str, source: str, *, secret: bytes) -> tuple[list[Enterprise], list[dict[str, Any]]]:
    """The enterprises of a registry CSV, and each refused row with its line and reason (never its raw ID).

    Raises `KeyGroupsError` when the header is not `enterprise,enterprise_name,kind,value,name`.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != REGISTRY_COLUMNS:
        shown = redact_ids(",".join(header or [])[:120])
        raise KeyGroupsError(f"{source}:1: the header was {shown!r} but is expected to be {','.join(REGISTRY_COLUMNS)!r}")
    names: dict[str, str] = {}
    plates: dict[str, dict[str, None]] = {}
    staff: dict[str, dict[str, tuple[str, str, str]]] = {}
    refused: list[dict[str, Any]] = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        try:
            if len(cells) != len(REGISTRY_COLUMNS):
                raise RejectedEvent("registry_columns", f"{len(cells)} columns but a row has {len(REGISTRY_COLUMNS)}")
            enterprise, ent_name, kind, value, name = (c.strip() for c in cells)
            if _CODE.fullmatch(enterprise) is None:
                raise RejectedEvent("schema", "enterprise: must be a code (letters, digits, '._-')")
            if kind == "vehicle":
                plate = normalise_plate(value)
                if not 2 <= len(plate) <= 20:
                    raise RejectedEvent("schema", "value: not a plate")
                plates.setdefault(enterprise, {})[plate] = None
            elif kind == "staff":
                outcome = check_id(value)
                if not outcome.valid:
                    raise RejectedEvent(f"id_{outcome.reason}", f"resident ID number is invalid: {outcome.reason}")
                normalised: str = outcome.normalised  # type: ignore[assignment]
                key = person_key(secret, normalised)
                staff.setdefault(enterprise, {})[key] = (key, mask_id(normalised), name)
            else:
                raise RejectedEvent("schema", f"kind was {redact_ids(repr(kind)[:30])} but is expected to be vehicle or staff")
            names[enterprise] = ent_name or names.get(enterprise, enterprise)
        except RejectedEvent as exc:
            refused.append({"source": source, "line": line, "reason": exc.reason, "detail": f"{source} line {line}: {exc.detail}"})
    enterprises = [Enterprise(e, names[e], tuple(plates.get(e, {})), tuple(staff.get(e, {}).values())) for e in names]
    return enterprises, refused


def enterprise_to_json(enterprise: Enterprise) -> bytes:
    """An enterprise's registration as published on the key-enterprises control topic (no raw ID number)."""
    return orjson.dumps({"id": enterprise.id, "name": enterprise.name, "plates": list(enterprise.plates),
                         "staff": [{"person_key": k, "masked_id": m, "name": n} for k, m, n in enterprise.staff]})


def enterprise_from_json(raw: bytes) -> Enterprise:
    doc = orjson.loads(raw)
    return Enterprise(doc["id"], doc["name"], tuple(doc["plates"]),
                      tuple((s["person_key"], s["masked_id"], s["name"]) for s in doc["staff"]))


def check_of_scan(raw: bytes, *, secret: bytes, now: datetime, lookback: timedelta) -> Check | None:
    """The check a raw checkpoint-scan record makes, validated as ingest does; None for anything else or refused."""
    try:
        event = parse_input(raw)
    except RejectedEvent:
        return None
    if not isinstance(event, CheckpointScan):
        return None
    if event.scanned_at > now + timedelta(minutes=10) or event.scanned_at < now - lookback:
        return None
    plate = normalise_plate(event.vehicle.plate) if event.vehicle is not None else ""
    return Check(plate, tuple(person_key(secret, p.id_number) for p in event.people), event.scanned_at)


def coverage(enterprises: Iterable[Enterprise], checks: Iterable[Check], day: date, zone: ZoneInfo) -> list[Coverage]:
    """Per enterprise (by id), on `day` in `zone`: how many of its plates and staff some checkpoint checked."""
    plates: set[str] = set()
    people: set[str] = set()
    for check in checks:
        if check.at.astimezone(zone).date() == day:
            if check.plate:
                plates.add(check.plate)
            people.update(check.people)
    out = []
    for e in sorted(enterprises, key=lambda x: x.id):
        unchecked_plates = tuple(p for p in e.plates if p not in plates)
        unchecked_people = tuple(sorted(m for k, m, _ in e.staff if k not in people))
        out.append(Coverage(e.id, e.name, day, len(e.plates), len(e.plates) - len(unchecked_plates), len(e.staff),
                            len(e.staff) - len(unchecked_people), unchecked_plates, unchecked_people))
    return out


def coverage_json(rows: Iterable[Coverage]) -> list[dict[str, Any]]:
    return [{
        "enterprise": c.enterprise, "name": c.name, "day": c.day.isoformat(), "vehicles": c.vehicles,
        "vehicles_checked": c.vehicles_checked, "vehicle_rate": c.vehicle_rate, "people": c.people,
        "people_checked": c.people_checked, "people_rate": c.people_rate, "unchecked_plates": list(c.unchecked_plates),
        "unchecked_people": list(c.unchecked_people),
    } for c in rows]


def coverage_of_records(
    registrations: Iterable[bytes], scans: Iterable[bytes], day: date, zone: ZoneInfo, *, secret: bytes, now: datetime,
    lookback: timedelta,
) -> list[Coverage]:
    """`coverage` from the records of the key-enterprises topic (latest per enterprise) and raw checkpoint scans."""
    enterprises = {e.id: e for e in (enterprise_from_json(r) for r in registrations)}
    checks = [c for raw in scans if (c := check_of_scan(raw, secret=secret, now=now, lookback=lookback)) is not None]
    return coverage(enterprises.values(), checks, day, zone)
