"""Two `epiflow worker` processes on the real broker serving pages and the API, with tokens for every
community, a simulated run streamed through them, and what `epiflow evaluate` expects of their queues."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.access import AccessList, access_file_text, new_token
from streams.partitioner import key_partition
from tools.drills import (
    READY_TIMEOUT_S,
    Deployment,
    Pusher,
    finish,
    input_records,
    new_deployment,
    offline,
    triage_records,
)
from tools.workers import WorkerProcess

OPEN = ("open", "accepted")


@dataclass
class Cluster:
    """A deployment of two workers, the tokens by name (`admin`, `checkpoint`, `community:<code>`), and the run's
    figures and offline expectation (open case ids per community; persons whose verdict changed while it ran)."""

    deployment: Deployment
    workers: list[WorkerProcess]
    tokens: dict[str, str]
    figures: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, set[str]] = field(default_factory=dict)
    expected_actions: Counter[str] = field(default_factory=Counter)
    unsettled: set[str] = field(default_factory=set)

    def base(self, worker: WorkerProcess) -> str:
        return f"http://127.0.0.1:{worker.web_port}"

    def call(self, worker: WorkerProcess, method: str, path: str, token: str | None = None,
             body: dict | None = None) -> tuple[int, Any, dict[str, str]]:
        """One HTTP request to `worker`; (status, JSON body or text, headers)."""
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(self.base(worker) + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                status, raw, headers = reply.status, reply.read(), dict(reply.headers)
        except urllib.error.HTTPError as exc:
            status, raw, headers = exc.code, exc.read(), dict(exc.headers)
        kind = headers.get("Content-Type", "")
        return status, orjson.loads(raw) if "json" in kind and raw else raw.decode("utf-8", "replace"), headers

    def queue(self, worker: WorkerProcess, code: str, token: str | None = None) -> tuple[int, Any]:
        status, body, _ = self.call(worker, "GET", f"/api/communities/{code}/cases", token or self.tokens["admin"])
        return status, body

    def open_ids(self, worker: WorkerProcess, code: str) -> set[str] | None:
        """The open or accepted case ids of `code`'s queue on `worker`; None while it answers 503."""
        status, body = self.queue(worker, code)
        if status == 503:
            return None
        assert status == 200, (status, body)
        return {c["case_id"] for c in body["cases"] if c["status"] in OPEN} - self.unsettled

    def holders(self) -> dict[int, WorkerProcess]:
        """Partition → the live worker whose assignment holds it (from each worker's `/api/offsets`)."""
        topic = self.deployment.topic("case-events")
        out: dict[int, WorkerProcess] = {}
        for worker in self.workers:
            if worker.alive:
                _, rows, _ = self.call(worker, "GET", "/api/offsets")
                out.update((r["partition"], worker) for r in rows if r["topic"] == topic)
        return out

    def owner(self, case_id: str, holders: dict[int, WorkerProcess] | None = None) -> WorkerProcess:
        """The live worker holding the case's partition."""
        partition = key_partition(case_id.encode(), self.deployment.partitions)
        found = (holders or self.holders()).get(partition)
        if found is None:
            raise AssertionError(f"no live worker holds partition {partition} of the case events")
        return found

    def communities(self) -> list[str]:
        from geo.load import load_communities

        settings = self.deployment.settings
        return [c.code for c in load_communities(settings.path(settings.communities))] + ["unassigned"]

    def stop(self) -> None:
        self.deployment.stop()
        self.deployment.cleanup()


def _access(path: Path, communities: list[str]) -> dict[str, str]:
    tokens = {"admin": new_token(), "checkpoint": new_token(), **{f"community:{c}": new_token() for c in communities}}
    access = AccessList(())
    now = datetime.now(UTC)
    access = access.add("admin", "", tokens["admin"], created_at=now)
    access = access.add("checkpoint", "cp-01", tokens["checkpoint"], created_at=now)
    for code in communities:
        access = access.add("community", code, tokens[f"community:{code}"], created_at=now)
    path.write_text(access_file_text(access.grants), encoding="utf-8")
    return tokens


def start_cluster(bootstrap: str, workdir: Path, *, people: int, partitions: int = 4, timeout: float = 300) -> Cluster:
    """Two workers on a fresh deployment, the simulation streamed through them and drained, expectations computed."""
    deployment = new_deployment(bootstrap, workdir, people=people, partitions=partitions)
    cluster = Cluster(deployment, [], {})
    cluster.tokens = _access(deployment.folder / "access.toml", [c for c in cluster.communities() if c != "unassigned"])
    deployment.extra_env["EPIFLOW_ACCESS"] = str(deployment.folder / "access.toml")
    try:
        cluster.workers = [deployment.start_worker("a"), deployment.start_worker("b")]
        for worker in cluster.workers:
            worker.wait_ready(READY_TIMEOUT_S, min_regions=1)
        t0 = datetime.now(UTC)
        pusher = Pusher(deployment, input_records(deployment.folder)).start()
        cluster.figures = finish(deployment, pusher, t0, timeout)
        t1 = datetime.now(UTC)
        _expect(cluster, offline(deployment, t0), offline(deployment, t1))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _expect(cluster: Cluster, early: dict[str, tuple[str, str]], late: dict[str, tuple[str, str]]) -> None:
    """Open case ids per community as offline decides: each flagged person's case is the one of their last
    triage message (whose action and community the drills' comparison checked against offline)."""
    last: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
    for record in triage_records(cluster.deployment):
        message = orjson.loads(record.value)
        order = (record.timestamp, record.offset)
        if message["person_key"] not in last or order > last[message["person_key"]][0]:
            last[message["person_key"]] = (order, message)
    for person, (action, community) in late.items():
        message = last.get(person, (None, None))[1]
        if early.get(person, (action, community)) != (action, community):
            if message is not None:
                cluster.unsettled.add(message["case_id"])
            continue
        if action == "clear":
            continue
        assert message is not None and message["community"] == community, (person[:12], action, community)
        cluster.expected.setdefault(community, set()).add(message["case_id"])
        cluster.expected_actions[action] += 1


def wait_until(predicate: Any, timeout: float, step: float = 0.1) -> float:
    """Seconds until `predicate()` held; AssertionError after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started
