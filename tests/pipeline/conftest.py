"""Shared fixtures for pipeline tests: the default rules, hand-made regions and communities, event builders."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest
import shapely

from geo.communities import Community, CommunityIndex
from geo.regions import Region, RiskIndex
from pipeline.ingest import ingest
from pipeline.rules import Rules, load_rules
from pipeline.settings import REPO_ROOT

CST = timezone(timedelta(hours=8))
AT = datetime(2022, 6, 20, 12, 0, 0, tzinfo=CST)
SECRET = b"pipeline-test-secret-0123456789"
ID_NUMBER = "11010519491231002X"
PERSON = {"id_number": ID_NUMBER, "name": "张伟", "phone": "13900139000"}
HIGH_PT = (116.35, 39.95)
MED_PT = (121.45, 31.25)
LOW_PT = (113.25, 23.15)
LIFTED_PT = (118.75, 32.05)
PLAIN_PT = (112.90, 28.20)
HOME_PT = (120.30, 30.43)
CHECKPOINT_PT = (120.50, 30.50)


def t(text: str) -> datetime:
    """A time on 2022-06 in +08:00, e.g. t('19 08:00') or t('19 08:00:01')."""
    day, clock = text.split()
    if clock.count(":") == 1:
        clock += ":00"
    return datetime.fromisoformat(f"2022-06-{day}T{clock}+08:00")


def iso(value: datetime) -> str:
    return value.isoformat()


def declaration(eid: str = "d-1", *, stops=(), report: datetime | None = None, arrival: datetime | None = None,
                submitted: datetime | None = None, dest=HOME_PT, person=PERSON) -> dict:
    arrival = arrival or t("20 10:00")
    doc = {
        "type": "declaration",
        "event_id": eid,
        "submitted_at": iso(submitted or arrival - timedelta(hours=14)),
        "person": person,
        "arrival_at": iso(arrival),
        "destination": {"lon": dest[0], "lat": dest[1], "address": "兰学社区3幢201室"},
        "itinerary": [
            {"lon": pt[0], "lat": pt[1], "place": f"place-{i}", "from": iso(a), "to": iso(b)} for i, (pt, a, b) in enumerate(stops)
        ],
    }
    if report is not None:
        doc["nat_report"] = {"sampled_at": iso(report), "result": "negative", "lab": "lab-1"}
    return doc


def nat(eid: str = "n-1", *, sampled: datetime, reported: datetime | None = None, result: str = "negative", person=PERSON) -> dict:
    return {
        "type": "nat_result",
        "event_id": eid,
        "person": person,
        "sampled_at": iso(sampled),
        "reported_at": iso(reported or sampled + timedelta(hours=1)),
        "result": result,
        "lab_id": "lab-1",
    }


def scan(eid: str = "s-1", *, at: datetime, role: str = "driver", origin=None, departed: datetime | None = None,
         location=CHECKPOINT_PT, people=None) -> dict:
    doc = {
        "type": "checkpoint_scan",
        "event_id": eid,
        "checkpoint_id": "cp-01",
        "scanned_at": iso(at),
        "location": {"lon": location[0], "lat": location[1]},
        "people": people or [{**PERSON, "role": role}],
    }
    if origin is not None:
        doc["vehicle"] = {
            "plate": "浙A·12345",
            "origin": {"lon": origin[0], "lat": origin[1], "place": "origin-town"},
            "departed_at": iso(departed or at - timedelta(hours=5)),
        }
    return doc


def events_of(*docs: dict, now: datetime = AT):
    """Ingest raw documents exactly as the pipeline does; returns the person events."""
    out = []
    for doc in docs:
        out.extend(ingest(orjson.dumps(doc), secret=SECRET, now=now, lookback=timedelta(days=14)))
    return out


def box_region(rid: str, level: str, pt, start: datetime, until: datetime | None = None, half: float = 0.05) -> Region:
    return Region(rid, level, f"{rid}-name", start, until, shapely.box(pt[0] - half, pt[1] - half, pt[0] + half, pt[1] + half))


@pytest.fixture(scope="session")
def rules() -> Rules:
    return load_rules(REPO_ROOT / "config" / "rules.yaml")


@pytest.fixture()
def regions() -> RiskIndex:
    return RiskIndex([
        box_region("R-HIGH", "high", HIGH_PT, t("01 00:00")),
        box_region("R-MED", "medium", MED_PT, t("05 00:00")),
        box_region("R-LOW", "low", LOW_PT, t("01 00:00")),
        box_region("R-LIFTED", "high", LIFTED_PT, t("01 00:00"), t("15 00:00")),
    ])


@pytest.fixture(scope="session")
def communities() -> CommunityIndex:
    return CommunityIndex([
        Community("330106001", "兰学社区", "翠苑街道", shapely.box(120.29, 30.42, 120.31, 30.44)),
        Community("330106002", "卡口社区", "三墩镇", shapely.box(120.45, 30.45, 120.55, 30.55)),
    ])
