"""Hand-made key groups, rosters and NAT results shared by the offline, stream and page tests of key groups."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from pipeline.identity import check_character, mask_id

GROUPS_YAML = """\
version: "kg-test-1"
groups:
  - id: cold_chain
    name: {zh: 冷链从业人员, en: Cold-chain workers}
    every_hours: 24
  - id: freight_drivers
    name: {zh: 货运司机, en: Freight drivers}
    every_hours: 48
  - id: school_staff
    name: {zh: 学校教职员工, en: School staff}
    every_hours: 168
"""


def make_id(n: int) -> str:
    """A valid resident ID number, different for each `n` (born 1990-01-01 in Beijing)."""
    first17 = f"11010519900101{n:03d}"
    return first17 + check_character(first17)


A, B, C, D, E = (make_id(n) for n in (11, 12, 13, 14, 15))
MASKED = {who: mask_id(who) for who in (A, B, C, D, E)}


def roster_csv(community: str = "330106001") -> str:
    """A cold-chain roster of A, B, C; B is also a freight driver with D; line 7 has a bad check character."""
    bad = A[:-1] + ("0" if A[-1] != "0" else "1")
    return "\n".join([
        "group,id_number,name,phone,community",
        f"cold_chain,{A},张伟,13900139001,{community}",
        f"cold_chain,{B},李娜,13900139002,{community}",
        f"cold_chain,{C},王芳,13900139003,{community}",
        f"freight_drivers,{B},李娜,13900139002,{community}",
        f"freight_drivers,{D},刘洋,13900139004,{community}",
        f"cold_chain,{bad},赵敏,13900139005,{community}",
        f"nurses,{E},陈静,13900139006,{community}",
        "",
    ])


def nat(eid: str, who: str, sampled: datetime, result: str = "negative") -> bytes:
    return orjson.dumps({
        "type": "nat_result", "event_id": eid, "person": {"id_number": who, "name": "某人", "phone": "13900139000"},
        "sampled_at": sampled.isoformat(), "reported_at": (sampled + timedelta(hours=2)).isoformat(), "result": result,
        "lab_id": "lab-1",
    })


def results(at: datetime) -> list[bytes]:
    """At `at`: A tested negative 5 h ago (on time everywhere); B 30 h ago (on time as a driver, late for cold
    chain); C only positive; D negative 3 days ago (late)."""
    return [
        nat("n-a", A, at - timedelta(hours=5)),
        nat("n-b", B, at - timedelta(hours=30)),
        nat("n-c", C, at - timedelta(hours=4), "positive"),
        nat("n-d", D, at - timedelta(hours=72)),
    ]


def registry_csv() -> str:
    """Cold-store Co. registers two trucks and staff A and B; Port Co. one truck."""
    return "\n".join([
        "enterprise,enterprise_name,kind,value,name",
        "E01,冷库公司,vehicle,浙A·12345,",
        "E01,冷库公司,vehicle,浙A·67890,",
        f"E01,冷库公司,staff,{A},张伟",
        f"E01,冷库公司,staff,{B},李娜",
        "E02,港口公司,vehicle,浙B-11111,",
        "",
    ])


def scan(eid: str, at: datetime, plate: str | None, people: list[str]) -> bytes:
    doc: dict = {
        "type": "checkpoint_scan", "event_id": eid, "checkpoint_id": "cp-01", "scanned_at": at.isoformat(),
        "location": {"lon": 120.30051409089091, "lat": 30.435743},
        "people": [{"id_number": who, "name": "某人", "phone": "13900139000", "role": "driver" if i == 0 else "passenger"}
                   for i, who in enumerate(people)],
    }
    if plate is not None:
        doc["vehicle"] = {"plate": plate, "origin": {"lon": 120.2, "lat": 30.3, "place": "杭州"},
                          "departed_at": (at - timedelta(hours=2)).isoformat()}
    return orjson.dumps(doc)
