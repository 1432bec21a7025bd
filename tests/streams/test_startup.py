"""Start-up that nothing can break: inputs posted the moment the web port opens, on memory:// and Kafka.

The web server answers before Faust declares the topics. An input accepted then would create its
topic with the broker's default partition count (1 here), and the worker's own declaration with its
count would fail or leave the topic mis-partitioned. The API answers 503 with `Retry-After` until the
topics exist and the rules are active, and no producer creates a topic by sending to it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

import streams.agents
from pipeline.settings import Settings
from streams.memory import MemoryBroker, UnknownTopic, get_broker
from streams.memory import Producer as MemoryProducer
from streams.worker import Worker, create_worker
from tests.streams.api_helpers import declaration, nat_result, scan, write_access
from tests.streams.harness import cleanup, deployment_settings, wait_until

pytestmark = pytest.mark.timeout(240)

#: How long the test holds back the worker's readiness after its topics are declared, so the window
#: in which the port is open but the worker not ready is long enough to be hit every run.
HOLD_BACK_S = 1.5
INPUT_KINDS = ("declarations", "checkpoint-scans", "nat-results")


@dataclass
class Posted:
    """Every answer of one endpoint: status, Retry-After header, body."""

    path: str
    answers: list[tuple[int, str | None, Any]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Inputs the API took (a scan answered 504 was taken too: only its decision was late)."""
        return sum(1 for status, _, _ in self.answers if status in (200, 202, 504))

    @property
    def answered(self) -> bool:
        return any(status in (200, 202) for status, _, _ in self.answers)


#: How long the worker may take to come up (declaring ~400 topics on a busy shared machine takes a while).
READY_WITHIN_S = 150

def _post(base: str, path: str, body: dict[str, Any], token: str) -> tuple[int, str | None, Any]:
    request = urllib.request.Request(base + path, data=orjson.dumps(body), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    body = orjson.loads(raw) if raw and "json" in headers.get("Content-Type", "") else raw.decode("utf-8", "replace")
    return status, headers.get("Retry-After"), body


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _partition_counts(settings: Settings, topics: list[str]) -> dict[str, int | None]:
    if settings.broker.startswith("memory://"):
        broker = get_broker(settings.broker)
        return {topic: broker.partition_count(topic) for topic in topics}
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=settings.broker.removeprefix("kafka://"))
    try:
        return {topic: len(consumer.partitions_for_topic(topic) or ()) or None for topic in topics}
    finally:
        consumer.close()


def _settings(broker_url: str, tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    tokens = write_access(tmp_path / "access.toml")
    broker = "memory" if broker_url.startswith("memory://") else broker_url
    return deployment_settings(broker, access=str(tmp_path / "access.toml"), partitions=3), tokens


def test_inputs_posted_as_the_port_opens_are_refused_then_processed(
    broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, tokens = _settings(broker_url, tmp_path)
    declare_queues = streams.agents._declare_queues

    async def slow_declare_queues(agents: Any) -> None:
        await declare_queues(agents)
        await asyncio.sleep(HOLD_BACK_S)

    monkeypatch.setattr(streams.agents, "_declare_queues", slow_declare_queues)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    worker: Worker = create_worker(settings)
    base = f"http://127.0.0.1:{settings.web_port}"
    endpoints: list[tuple[Posted, Callable[[], dict[str, Any]], str]] = [
        (Posted("/api/declarations"), declaration, tokens["admin"]),
        (Posted("/api/checkpoints/cp-01/scans"), scan, tokens["checkpoint"]),
        (Posted("/api/nat-results"), nat_result, tokens["lab"]),
        (Posted("/api/cases/no-such-case/accept"), dict, tokens["admin"]),
    ]
    started = asyncio.run_coroutine_threadsafe(worker.app.start(), loop)
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while not _port_open(settings.web_port):
            assert time.monotonic() < deadline, "the web port never opened"
            time.sleep(0.01)
        while time.monotonic() < deadline:
            for posted, document, token in endpoints:
                posted.answers.append(_post(base, posted.path, document(), token))
            if all(posted.answered for posted, _, _ in endpoints[:3]):
                break
            time.sleep(0.05)
        started.result(READY_WITHIN_S)
        while not worker.agents.control_ready.is_set():
            assert time.monotonic() < deadline, f"the worker was not ready within {READY_WITHIN_S} s"
            time.sleep(0.1)

        for posted, _, _ in endpoints:
            statuses = [status for status, _, _ in posted.answers]
            early = [(status, retry) for status, retry, _ in posted.answers if status == 503]
            assert early, f"{posted.path}: no 503 while the worker was starting: {statuses}"
            assert all(retry == "2" for _, retry in early), f"{posted.path}: a 503 without Retry-After"
            assert statuses.index(503) == 0, f"{posted.path}: answered {statuses[0]} before the worker was ready"
            settled = statuses[statuses.index(next(s for s in statuses if s != 503)):]
            assert 503 not in settled, f"{posted.path}: 503 again after the worker was ready: {statuses}"
        for posted, _, _ in endpoints[:3]:
            assert {status for status, _, _ in posted.answers} <= {503, 200, 202, 504}, posted.answers
        assert {status for status, _, _ in endpoints[3][0].answers} <= {503, 404}

        assert worker.runtime.rules is not None
        assert _partition_counts(settings, [settings.topic(kind) for kind in INPUT_KINDS]) == {
            settings.topic(kind): settings.partitions for kind in INPUT_KINDS}
        accepted = sum(posted.accepted for posted, _, _ in endpoints[:3])
        counts = worker.agents.counts
        assert asyncio.run_coroutine_threadsafe(
            wait_until(lambda: counts["forwarded"] >= accepted and counts["joined"] >= counts["person_events"], 60),
            loop).result(90), counts
        assert counts["inputs"] == counts["forwarded"] == accepted and counts["dead_lettered"] == 0, counts
        decision = next(body for status, _, body in endpoints[1][0].answers if status == 200)
        assert decision["decision"] in ("pass", "hold") and decision["rules_version"] == worker.runtime.rules_version
    finally:
        asyncio.run_coroutine_threadsafe(worker.app.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        cleanup(settings)


def test_the_memory_producer_creates_no_topic(run_async: Callable[..., Any]) -> None:
    settings = deployment_settings("memory")
    broker: MemoryBroker = get_broker(settings.broker)
    worker = create_worker(settings, web_enabled=False)

    async def send_undeclared() -> None:
        await worker.app.producer.start()
        try:
            assert isinstance(worker.app.producer, MemoryProducer)
            with pytest.raises(UnknownTopic, match="declare it first"):
                await worker.app.producer.send(settings.topic("declarations"), None, b"{}", None, None, None)
            await worker.topics.inputs["declarations"].maybe_declare()
            await worker.app.producer.send(settings.topic("declarations"), None, b"{}", None, None, None)
        finally:
            await worker.app.producer.stop()

    try:
        run_async(send_undeclared())
        assert broker.partition_count(settings.topic("declarations")) == settings.partitions
    finally:
        cleanup(settings)


@pytest.mark.kafka
def test_the_kafka_producer_creates_no_topic(kafka_bootstrap: str, run_async: Callable[..., Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.kafka
    from streams.kafka import TopicNotDeclared, TopicTrackingProducer

    monkeypatch.setattr(streams.kafka, "TOPIC_WAIT_S", 1.0)
    settings = deployment_settings(f"kafka://{kafka_bootstrap}")
    missing = settings.topic("never-declared")

    async def send_undeclared() -> None:
        producer = TopicTrackingProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            with pytest.raises(TopicNotDeclared, match="declare it first"):
                await producer.send_and_wait(missing, b"x")
        finally:
            await producer.stop()

    try:
        run_async(send_undeclared())
        assert _partition_counts(settings, [missing]) == {missing: None}
    finally:
        cleanup(settings)
