"""Documents and a running worker for the API and browser tests."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.identity import check_character

#: Community codes of the committed sample district, with a point inside each.
COMMUNITY_A = ("330106001", 120.30051409089091, 30.435743)
COMMUNITY_B = ("330106002", 120.31517905194949, 30.431418)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resident_id(serial: int) -> str:
    """A valid resident ID number (checksum included) that differs by `serial`."""
    first17 = f"33010619850412{serial % 1000:03d}"
    return first17 + check_character(first17)


def scan(checkpoint: str = "cp-01", *, where: tuple[str, float, float] = COMMUNITY_A, serial: int | None = None,
         people: int = 1) -> dict[str, Any]:
    """A checkpoint scan at a point inside a community, of drivers with no NAT on file (so: hold)."""
    now = datetime.now(UTC)
    serial = uuid.uuid4().int % 1000 if serial is None else serial
    return {
        "type": "checkpoint_scan", "event_id": f"scan-{uuid.uuid4().hex[:12]}", "checkpoint_id": checkpoint,
        "scanned_at": now.isoformat(), "location": {"lon": where[1], "lat": where[2]},
        "people": [
            {"id_number": resident_id(serial + i), "name": f"Person {serial + i}", "phone": "13800138000",
             "role": "driver" if i == 0 else "passenger"}
            for i in range(people)
        ],
    }


def nat_result(lab: str = "lab-1", serial: int = 7) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "type": "nat_result", "event_id": f"nat-{uuid.uuid4().hex[:12]}",
        "person": {"id_number": resident_id(serial), "name": "N", "phone": "13800138000"},
        "sampled_at": (now - timedelta(hours=3)).isoformat(), "reported_at": (now - timedelta(minutes=5)).isoformat(),
        "result": "negative", "lab_id": lab,
    }


def declaration(serial: int = 9) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "type": "declaration", "event_id": f"decl-{uuid.uuid4().hex[:12]}", "submitted_at": now.isoformat(),
        "person": {"id_number": resident_id(serial), "name": "D", "phone": "13800138000"},
        "arrival_at": (now + timedelta(hours=5)).isoformat(),
        "destination": {"lon": COMMUNITY_A[1], "lat": COMMUNITY_A[2], "address": "1 Road"},
        "itinerary": [{"lon": 121.47, "lat": 31.23, "place": "Shanghai", "from": (now - timedelta(days=2)).isoformat(),
                       "to": (now - timedelta(days=1)).isoformat()}],
    }
