"""`POST /api/key-groups/{group}/roster`: an enterprise's token posts a roster; rows are enrolled for that enterprise
(reminders also go to its queue), a bad row is dead-lettered with its line, other roles are refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline.access import AccessList, access_file_text, new_token
from streams.key_groups import enterprise_topic_name
from streams.memory import get_broker
from tests.key_group_data import B, D, make_id
from tests.streams.api_helpers import RunningWorker, start_worker


@pytest.fixture
def site(tmp_path: Path) -> Iterator[RunningWorker]:
    tokens = {"enterprise": new_token(), "lab": new_token(), "admin": new_token()}
    now = datetime.now(UTC)
    access = AccessList(()).add("enterprise", "E01", tokens["enterprise"], created_at=now)
    access = access.add("lab", "lab-1", tokens["lab"], created_at=now).add("admin", "", tokens["admin"], created_at=now)
    running = start_worker(tmp_path / "access.toml")
    # after the start, which writes its own tokens there; the worker picks up the change on the next request
    (tmp_path / "access.toml").write_text(access_file_text(access.grants), encoding="utf-8")
    running.tokens.update(tokens)
    yield running
    running.stop()


def _csv(*rows: str) -> bytes:
    return ("id_number,name,phone,community\n" + "\n".join(rows) + "\n").encode("utf-8")


def test_an_enterprise_posts_its_roster(site: RunningWorker) -> None:
    body = _csv(f"{B},李娜,13900139002,330106001", f"{D},刘洋,13900139004,330106001", f"{make_id(20)[:-1]}Y,某人,139001,x")
    status, reply = site.call("POST", "/api/key-groups/cold_chain/roster", body, token=site.tokens["enterprise"],
                              headers={"Content-Type": "text/csv"})
    assert (status, reply) == (202, {"accepted": 3, "group": "cold_chain", "enterprise": "E01"})
    kg = site.worker.agents.key_groups
    deadline = time.monotonic() + 30
    while (kg.counts["enrolled"] < 2 or site.worker.agents.counts["roster_dead_lettered"] < 1) and time.monotonic() < deadline:
        time.sleep(0.1)
    entries = [e for _, e in kg.local_entries()]
    assert sorted((e.group, e.enterprise) for e in entries) == [("cold_chain", "E01")] * 2
    settings = site.worker.settings
    broker = get_broker(settings.broker)
    letters = [orjson.loads(r.value) for r in broker.all_records(settings.topic("dead-letters"))]
    assert [(d["reason"], d["detail"].split(":")[0]) for d in letters] == [("id_characters", "E01/cold_chain.csv line 4")]
    # neither has a negative NAT on file: both are overdue from enrolment on, once 24 h have passed
    site.worker.runtime.clock = lambda: datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    topic = enterprise_topic_name(settings.topic_prefix, "E01")
    deadline = time.monotonic() + 30
    while not (broker.has_topic(topic) and len(broker.all_records(topic)) >= 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    queued = [orjson.loads(r.value) for r in broker.all_records(topic)]
    assert sorted(m["kind"] for m in queued) == ["test_reminder", "test_reminder"]
    assert all(m["enterprise"] == "E01" for m in queued)
    # the same roster again: same enrolments, the reminders of this overdue period are not sent twice
    again, _ = site.call("POST", "/api/key-groups/cold_chain/roster", body, token=site.tokens["enterprise"],
                         headers={"Content-Type": "text/csv"})
    assert again == 202
    deadline = time.monotonic() + 30
    while kg.counts["enrolled"] < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3 * 1.0)  # three looks of the reminder timer
    assert len(broker.all_records(topic)) == 2


@pytest.mark.parametrize(("token", "group", "status"), [("lab", "cold_chain", 403), (None, "cold_chain", 401),
                                                         ("enterprise", "nurses", 404)])
def test_others_are_refused(site: RunningWorker, token: str | None, group: str, status: int) -> None:
    got, _ = site.call("POST", f"/api/key-groups/{group}/roster", _csv(f"{B},李娜,13900139002,330106001"),
                       token=site.tokens[token] if token else None, headers={"Content-Type": "text/csv"})
    assert got == status


def test_a_roster_with_the_wrong_header_is_refused_whole(site: RunningWorker) -> None:
    got, reply = site.call("POST", "/api/key-groups/cold_chain/roster", b"group,id_number\nx,y\n",
                           token=site.tokens["enterprise"], headers={"Content-Type": "text/csv"})
    assert got == 422 and "header" in str(reply)


def test_a_broken_key_groups_publish_is_refused_and_the_last_good_one_stays(site: RunningWorker) -> None:
    from tests.key_group_data import GROUPS_YAML

    settings = site.worker.settings
    broker = get_broker(settings.broker)
    kg = site.worker.agents.key_groups
    before = kg.groups.version
    broker.append(settings.topic("key-groups"), b"active", GROUPS_YAML.replace("every_hours: 48", "every_hours: -1").encode())
    deadline = time.monotonic() + 15
    while not any(r["kind"] == "key_groups" for r in site.worker.runtime.refusals) and time.monotonic() < deadline:
        time.sleep(0.05)
    refusal = next(r for r in site.worker.runtime.refusals if r["kind"] == "key_groups")
    assert ":8: groups[1].every_hours: was -1" in refusal["detail"] and kg.groups.version == before
    broker.append(settings.topic("key-groups"), b"active", GROUPS_YAML.encode())
    deadline = time.monotonic() + 15
    while kg.groups.version != "kg-test-1" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kg.groups.ids == ("cold_chain", "freight_drivers", "school_staff")
