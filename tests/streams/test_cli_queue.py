"""`epiflow queue`: one-line errors instead of tracebacks, no secret needed to read, no step on an unknown case."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.cases import Case
from streams.cli import main, root

CODE = "330106001"


@pytest.mark.parametrize(("argv", "words"), [
    (["queue", "tail", CODE], f"open /communities/{CODE}"),
    (["queue", "accept", "case-x"], "Accept and Resolve buttons"),
    (["queue", "resolve", "case-doesnotexist"], "Accept and Resolve buttons"),
])
def test_queue_on_the_embedded_broker_is_one_line_saying_what_to_do(
    argv: list[str], words: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EPIFLOW_BROKER", raising=False)
    monkeypatch.setattr(sys, "argv", ["epiflow", *argv])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: broker was 'memory://'") and "kafka://" in err and words in err


def test_an_unknown_error_type_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.cli import error_line

    assert error_line(FileNotFoundError(2, "No such file or directory", "x.yaml")).endswith("check the path and its permissions")
    assert error_line(ZeroDivisionError("boom")) is None


@pytest.fixture
def kafka_env(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A topic prefix of its own on the test broker, no HMAC secret in the environment; topics removed after."""
    from kafka import KafkaAdminClient

    prefix = f"tq{uuid.uuid4().hex[:10]}"
    monkeypatch.delenv("EPIFLOW_SECRET", raising=False)
    monkeypatch.setenv("EPIFLOW_TOPIC_PREFIX", prefix)
    yield prefix, f"kafka://{kafka_bootstrap}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="epiflow-tests-cleanup")
    try:
        ours = [t for t in admin.list_topics() if t.startswith(prefix)]
        if ours:
            admin.delete_topics(ours, timeout_ms=10_000, raise_errors=False)
    finally:
        admin.close()


def _send(bootstrap: str, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(topic, key=key, value=value, partition=partition).get(timeout=30)
    finally:
        producer.close()


def _records(bootstrap: str, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, allow_auto_create_topics=False)
    try:
        return [r.value for r in consumer]
    finally:
        consumer.close()


@pytest.mark.kafka
def test_queue_tail_reads_kafka_without_the_secret(kafka_env: tuple[str, str]) -> None:
    prefix, broker = kafka_env
    message = {"flagged_at": datetime.now(UTC).isoformat(), "action": "hold", "masked_id": "330***********123X",
               "name": "测试", "due_at": None, "case_id": "case-1", "reasons": [{"text": "no NAT"}]}
    _send(broker.removeprefix("kafka://"), f"{prefix}.triage.{CODE}", b"k", orjson.dumps(message))
    result = CliRunner().invoke(root, ["queue", "tail", CODE, "--from-beginning", "--limit", "1", "--broker", broker])
    assert result.exit_code == 0, result.output
    assert "330***********123X" in result.output and "case-1" in result.output


@pytest.mark.kafka
def test_a_case_step_on_an_unknown_case_is_refused_and_sends_nothing(kafka_env: tuple[str, str]) -> None:
    from kafka import KafkaAdminClient

    prefix, broker = kafka_env
    bootstrap = broker.removeprefix("kafka://")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics({f"{prefix}-worker-cases-changelog": {"num_partitions": 3, "replication_factor": 1}},
                            timeout_ms=10_000, wait_for_metadata=True)
    finally:
        admin.close()
    refused = CliRunner().invoke(root, ["queue", "resolve", "case-doesnotexist", "--note", "done", "--broker", broker])
    assert refused.exit_code == 1
    assert "no case 'case-doesnotexist'" in refused.output and "nothing was sent" in refused.output
    assert _records(bootstrap, f"{prefix}.case-events") == []

    from kafka.partitioner.default import murmur2

    now = datetime.now(UTC)
    case = Case(case_id="case-known", person_key="k", community=CODE, street=None, action="hold", severity=30,
                opened_at=now, due_at=now + timedelta(minutes=30))
    key = case.case_id.encode()
    _send(bootstrap, f"{prefix}-worker-cases-changelog", key,
          orjson.dumps({"case": case.model_dump(mode="json"), "message": {}}), partition=(murmur2(key) & 0x7FFFFFFF) % 3)
    accepted = CliRunner().invoke(root, ["queue", "accept", "case-known", "--by", "desk-1", "--broker", broker])
    assert accepted.exit_code == 0, accepted.output
    events = [orjson.loads(v) for v in _records(bootstrap, f"{prefix}.case-events")]
    assert [(e["case_id"], e["kind"], e["by"]) for e in events] == [("case-known", "accepted", "desk-1")]


@pytest.mark.kafka
def test_queue_request_and_answer_write_their_case_events(kafka_env: tuple[str, str]) -> None:
    from kafka import KafkaAdminClient
    from kafka.partitioner.default import murmur2

    prefix, broker = kafka_env
    bootstrap = broker.removeprefix("kafka://")
    changelog = f"{prefix}-worker-cases-changelog"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics({changelog: {"num_partitions": 3, "replication_factor": 1},
                             f"{prefix}.case-events": {"num_partitions": 3, "replication_factor": 1}}, timeout_ms=10_000,
                            wait_for_metadata=True)
    finally:
        admin.close()
    now = datetime.now(UTC)
    case = Case(case_id="case-asks", person_key="k", community=CODE, street=None, action="home_isolation", severity=40,
                opened_at=now, due_at=now + timedelta(minutes=30))
    key = case.case_id.encode()
    partition = (murmur2(key) & 0x7FFFFFFF) % 3
    _send(bootstrap, changelog, key, orjson.dumps({"case": case.model_dump(mode="json"), "message": {}}), partition)
    refused = CliRunner().invoke(root, ["queue", "request", "case-asks", "food", "米", "--broker", broker])
    assert refused.exit_code == 2 and "kind was 'food'" in refused.output and "nothing was sent" in refused.output
    posted = CliRunner().invoke(root, ["queue", "request", "case-asks", "medical", "发热", "--by", "desk-1",
                                       "--broker", broker])
    assert posted.exit_code == 0, posted.output
    [event] = [orjson.loads(v) for v in _records(bootstrap, f"{prefix}.case-events")]
    assert (event["kind"], event["request_kind"], event["note"], event["by"]) == ("request", "medical", "发热", "desk-1")
    assert datetime.fromisoformat(event["due_at"]) - datetime.fromisoformat(event["at"]) == timedelta(hours=1)

    unknown = CliRunner().invoke(root, ["queue", "answer", event["request_id"], "已送药", "--broker", broker])
    assert unknown.exit_code == 1 and "no request" in unknown.output, "the worker has not recorded the request yet"
    held = case.model_copy(update={"requests": ((event["request_id"], "medical", "发热", event["at"], "desk-1",
                                                 event["due_at"], "", "", "", ""),)})
    _send(bootstrap, changelog, key, orjson.dumps({"case": held.model_dump(mode="json"), "message": {}}), partition)
    answered = CliRunner().invoke(root, ["queue", "answer", event["request_id"], "已送药", "--by", "desk-2",
                                         "--broker", broker])
    assert answered.exit_code == 0, answered.output
    events = [orjson.loads(v) for v in _records(bootstrap, f"{prefix}.case-events")]
    assert [(e["kind"], e["request_id"], e["note"], e["by"]) for e in events[1:]] == \
        [("answered", event["request_id"], "已送药", "desk-2")]
