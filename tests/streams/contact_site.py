"""A memory:// worker with web pages that has traced the contact scenario of `tests/pipeline/test_contacts.py`."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from pipeline.identity import person_key
from streams.memory import get_broker
from tests.pipeline.conftest import AT
from tests.pipeline.test_contacts import INDEX, _trip
from tests.streams.api_helpers import RunningWorker, start_worker

KIND = {"declaration": "declarations", "checkpoint_scan": "checkpoint-scans", "nat_result": "nat-results"}


def traced_site(access: Path) -> tuple[RunningWorker, str]:
    """A worker frozen at the scenario's time that has joined the trip and traced the index case; returns it
    and the index case's person key."""
    running = start_worker(access)
    worker = running.worker
    worker.runtime.clock = lambda: AT
    settings = worker.runtime.settings
    broker = get_broker(settings.broker)
    for doc in _trip():
        broker.append(settings.topic(KIND[doc["type"]]), None, orjson.dumps(doc))
    counts, tracing = worker.agents.counts, worker.agents.tracing.counts
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (counts["joined"] >= 11 and tracing["requests_read"] >= tracing["requests_published"] >= 2
                and tracing["contact_records_joined"] >= tracing["contact_records_sent"] >= 3):
            break
        time.sleep(0.2)
    time.sleep(0.5)
    return running, person_key(settings.secret_bytes, INDEX["id_number"])
