"""Contact tracing on the stream: a positive NAT result leads to each contact's triage message on its
community topic, naming the contact rule and the index case's masked ID; repeats send nothing new.
On memory:// and on the real Kafka broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest

from pipeline.identity import mask_id
from pipeline.settings import Settings
from tests.pipeline.conftest import AT, nat, t
from tests.pipeline.test_contacts import (
    AWAY,
    BEFORE,
    INDEX,
    LATER,
    NEIGHBOUR,
    RIDER,
    RIDER2,
    _trip,
)
from tests.streams.harness import Bus, cleanup, deployment_settings, running_worker, wait_until

KIND = {"declaration": "declarations", "checkpoint_scan": "checkpoint-scans", "nat_result": "nat-results"}
EXPECTED = {
    RIDER["name"]: ("centralized_isolation", "close-contact-vehicle"),
    NEIGHBOUR["name"]: ("centralized_isolation", "close-contact-place"),
    RIDER2["name"]: ("home_isolation", "secondary-contact-vehicle"),
}
NOT_CONTACTS = [LATER["name"], AWAY["name"], BEFORE["name"]]


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def deployment(request: pytest.FixtureRequest) -> Iterator[Settings]:
    broker = "memory" if request.param == "memory" else "kafka://" + request.getfixturevalue("kafka_bootstrap")
    settings = deployment_settings(broker)
    yield settings
    cleanup(settings)


def _messages(bus: Bus) -> list[dict]:
    topics = [name for name in bus.topics("triage.") if ".triage.street." not in name]
    return [orjson.loads(r.value) for records in bus.records_of(topics).values() for r in records]


def _settled(worker, sent_before: int):  # noqa: ANN001, ANN202
    """True once every request was read and every contact record joined (and at least one more was read)."""
    c = worker.agents.tracing.counts
    return lambda: (c["requests_read"] >= c["requests_published"] > sent_before
                    and c["contact_records_joined"] >= c["contact_records_sent"])


def _push(bus: Bus, docs: list[dict]) -> None:
    for doc in docs:
        bus.send(KIND[doc["type"]], orjson.dumps(doc))
    bus.flush()


@pytest.mark.parametrize("positive_first", [False, True], ids=["positive-after-places", "positive-before-places"])
@pytest.mark.timeout(600)
def test_positive_result_triages_every_contact_with_rule_and_masked_index(deployment: Settings, positive_first: bool) -> None:
    docs = _trip()
    if positive_first:
        docs = docs[-1:] + docs[:-1]
    index_masked = mask_id(INDEX["id_number"])

    async def scenario() -> tuple[list[dict], list[dict]]:
        bus = Bus(deployment)
        async with running_worker(deployment, clock=lambda: AT, ready_within=240) as worker:
            counts = worker.agents.counts
            _push(bus, docs)
            assert await wait_until(lambda: counts["joined"] >= counts["person_events"] == 11, 90), counts
            assert await wait_until(_settled(worker, 0), 90), worker.agents.tracing.counts
            assert await wait_until(lambda: {m["name"] for m in _messages(bus)} >= set(EXPECTED), 60), _messages(bus)
            await asyncio.sleep(1.0)
            first = _messages(bus)
            published = worker.agents.tracing.counts["requests_published"]
            # a second positive of the same index case, and a replay of everything: nothing new for the contacts
            _push(bus, [*docs, nat("n-index-2", sampled=t("19 12:00"), result="positive", person=INDEX)])
            assert await wait_until(lambda: counts["joined"] >= counts["person_events"] == 23, 90), counts
            assert await wait_until(_settled(worker, published - 1), 90), worker.agents.tracing.counts
            await asyncio.sleep(1.5)
            second = _messages(bus)
        bus.close()
        return first, second

    first, second = asyncio.run(scenario())
    last = {}
    for m in first:
        last[m["name"]] = m
    for name, (action, rule) in EXPECTED.items():
        message = last[name]
        assert message["action"] == action, message
        reason = next(r for r in message["reasons"] if r["rule"] == rule)
        assert index_masked in reason["text"] and reason["at"], reason
        assert INDEX["id_number"] not in orjson.dumps(message).decode()
    for name in NOT_CONTACTS:
        rules = {r["rule"] for m in first if m["name"] == name for r in m["reasons"]}
        assert not any("contact" in rule for rule in rules), (name, rules)
    contacts = set(EXPECTED)
    assert sorted(m["message_id"] for m in second if m["name"] in contacts) == sorted(
        m["message_id"] for m in first if m["name"] in contacts), "a repeat sent the contacts something new"
