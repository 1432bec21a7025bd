"""A drill's deployment: its own topic prefix and work dir, its inputs, and a paced producer."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.inputs import KINDS
from tools.kafka_clients import client_options
from tools.ports import free_port
from tools.workers import WorkerProcess, start_worker

log = logging.getLogger(__name__)



REPO_ROOT = Path(__file__).resolve().parents[2]
#: set by `--keep`: leave each deployment's topics on the broker as well as its work dir
KEEP_TOPICS = False
#: how long a worker may take to be ready: on a loaded machine, joining the group, recovering its
#: tables and reading 2,400 risk regions has taken over 90 s
READY_TIMEOUT_S = 180.0
STREAM_FILES = {k.topic: f"{k.stem}.jsonl" for k in KINDS}


class DrillFailed(AssertionError):
    """A drill's check did not hold; the message says which and with what figures."""


@dataclass
class Deployment:
    """A throwaway deployment on one broker: its topic prefix, simulated input and worker environment."""

    bootstrap: str
    prefix: str
    folder: Path
    manifest: dict[str, Any]
    partitions: int
    store: str = "memory://"
    session_timeout: float = 10.0
    workers: list[WorkerProcess] = field(default_factory=list)
    #: further EPIFLOW_* variables of every worker (e.g. EPIFLOW_ACCESS for a deployment that serves pages)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Any:
        from pipeline.settings import load_settings

        return load_settings(
            broker=f"kafka://{self.bootstrap}", topic_prefix=self.prefix, partitions=self.partitions,
            regions=self.folder / "risk_regions.geojson", insecure_demo_secret=True,
        )

    @property
    def env(self) -> dict[str, str]:
        """EPIFLOW_* variables every worker, publisher and reader of this deployment shares."""
        return {
            "EPIFLOW_BROKER": f"kafka://{self.bootstrap}",
            "EPIFLOW_TOPIC_PREFIX": self.prefix,
            "EPIFLOW_PARTITIONS": str(self.partitions),
            "EPIFLOW_STORE": self.store,
            "EPIFLOW_REGIONS": str(self.folder / "risk_regions.geojson"),
            "EPIFLOW_INSECURE_DEMO_SECRET": "true",
            # Faust's own: how soon the group notices a dead member (default 60 s) and rebalances without it
            "BROKER_SESSION_TIMEOUT": str(self.session_timeout),
            "BROKER_HEARTBEAT_INTERVAL": str(max(0.5, self.session_timeout / 10)),
            **self.extra_env,
        }

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def start_worker(self, name: str = "worker", web_port: int | None = None) -> WorkerProcess:
        """A worker subprocess of this deployment; a restart passes the dead one's port to keep its log
        and its data dir (a RocksDB store then recovers from its own files plus the changelog's tail)."""
        port = web_port or free_port()
        env = {**self.env, "EPIFLOW_DATA_DIR": str(self.folder / f"data-{port}")}
        worker = start_worker(env, port, log_dir=self.folder / "logs", name=name)
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive]

    def epiflow(self, *args: str, timeout: float = 60.0) -> str:
        """Run an `epiflow` command against this deployment; raise DrillFailed if it fails."""
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args], cwd=REPO_ROOT, env={**os.environ, **self.env},
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if result.returncode != 0:
            raise DrillFailed(f"epiflow {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-800:]}")
        return result.stdout.strip()

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate(timeout=20)

    def cleanup(self) -> None:
        """Delete the deployment's topics (kept with `--keep`, to look into a failed drill)."""
        from kafka import KafkaAdminClient

        if KEEP_TOPICS:
            return
        with contextlib.suppress(Exception):
            admin = KafkaAdminClient(**client_options(self.bootstrap, "kafka-python"), request_timeout_ms=10_000)
            try:
                ours = [t for t in admin.list_topics() if t.startswith(self.prefix + ".") or t.startswith(self.prefix + "-")]
                if ours:
                    admin.delete_topics(ours, timeout_ms=20_000)
            finally:
                admin.close()


def new_deployment(
    bootstrap: str, workdir: Path, *, people: int, seed: int = 11, partitions: int = 4, store: str = "memory://"
) -> Deployment:
    """A fresh topic prefix and a simulation anchored at now (the workers use the wall clock), on table `store`."""
    from pipeline.simulate import write_simulation

    if people < 1:
        raise ValueError(f"people={people!r} must be at least 1")
    prefix = f"drill{uuid.uuid4().hex[:10]}"
    folder = Path(workdir) / prefix
    at = datetime.now(UTC).replace(microsecond=0)
    manifest = write_simulation(folder, seed, people, at)
    return Deployment(bootstrap=bootstrap, prefix=prefix, folder=folder, manifest=manifest, partitions=partitions,
                      store=store)


def input_records(folder: Path) -> list[tuple[str, bytes]]:
    """(kind, raw line) for every simulated input record, interleaved in the simulation's order per stream."""
    from pipeline.evaluate import read_lines

    per_kind = {kind: list(read_lines(folder / name)) for kind, name in STREAM_FILES.items()}
    out: list[tuple[str, bytes]] = []
    longest = max(len(v) for v in per_kind.values())
    for i in range(longest):
        for kind, lines in per_kind.items():
            if i < len(lines):
                out.append((kind, lines[i]))
    return out


class Pusher:
    """Produces records to the input topics from a background thread, optionally at a fixed rate.

    With `hold_after`, it stops after that many records until `release()`: a drill whose hostile act
    must land mid-stream holds the rest of the input back until the act is done, however slow it was.
    """

    def __init__(self, deployment: Deployment, records: list[tuple[str, bytes]], rate: float | None = None,
                 hold_after: int | None = None) -> None:
        self.deployment = deployment
        self.records = records
        self.rate = rate
        self.hold_after = hold_after
        self._released = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None
        self.started_at = 0.0
        self.finished_at = 0.0
        self._thread = threading.Thread(target=self._run, name="drill-pusher", daemon=True)

    def start(self) -> Pusher:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def release(self) -> None:
        """Let a held pusher send the rest."""
        self._released.set()

    def _run(self) -> None:
        from kafka import KafkaProducer

        try:
            producer = KafkaProducer(**client_options(self.deployment.bootstrap, "kafka-python"), linger_ms=5, acks="all",
                                     retries=2_147_483_647, max_block_ms=120_000)
            try:
                held_s = 0.0
                for n, (kind, raw) in enumerate(self.records, 1):
                    # a null value (tombstone) needs a key: kafka-python refuses a record with neither
                    producer.send(self.deployment.topic(kind), key=None if raw is not None else b"drill-null", value=raw)
                    self.sent = n
                    if n == self.hold_after:
                        producer.flush(timeout=120)
                        held = time.monotonic()
                        self._released.wait(timeout=300)
                        held_s = time.monotonic() - held
                    if self.rate:
                        lag = self.started_at + held_s + n / self.rate - time.monotonic()
                        if lag > 0:
                            time.sleep(lag)
                producer.flush(timeout=120)
            finally:
                producer.close(timeout=30)
        except BaseException as exc:  # reported by join()
            self.error = exc
        self.finished_at = time.monotonic()

    def join(self, timeout: float = 300.0) -> int:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise DrillFailed(f"input producer still running after {timeout:.0f} s ({self.sent} sent)")
        if self.error is not None:
            raise DrillFailed(f"input producer failed after {self.sent} records: {self.error!r}")
        return self.sent
