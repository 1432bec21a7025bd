"""Checkpoint API latency: p50/p99 of `POST /api/checkpoints/{id}/scans` at a fixed request rate, as JSON.

Runs `epiflow worker` as a subprocess (memory:// by default, `--broker kafka://host:port` for the real
broker), signs a checkpoint token into a temporary access file, then sends scans open-loop at `--rate`
per second for `--seconds` (each scan: one driver with a fresh ID, so every reply waits for the join).

    .venv/bin/python -m tools.bench_api --rate 200 --seconds 20 [--broker kafka://127.0.0.1:9092]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson

from pipeline.access import AccessList, access_file_text, new_token
from tests.streams.api_helpers import scan
from tools.kafka_clients import client_options
from tools.ports import free_port

REPO = Path(__file__).resolve().parent.parent


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _wait_ready(base: str, token: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.post(f"{base}/api/checkpoints/cp-01/scans", data=orjson.dumps(scan()),
                                        headers={"Authorization": f"Bearer {token}",
                                                 "Content-Type": "application/json"}) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("worker did not answer a scan in time")


async def _load(base: str, token: str, rate: float, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [orjson.dumps(scan(serial=i % 1000)) for i in range(int(rate * seconds))]

    async def one(session: aiohttp.ClientSession, body: bytes) -> None:
        started = time.perf_counter()
        try:
            async with session.post(f"{base}/api/checkpoints/cp-01/scans", data=body, headers=headers) as r:
                await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200:
                    latencies.append(time.perf_counter() - started)
        except aiohttp.ClientError:
            statuses[0] = statuses.get(0, 0) + 1

    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, body)))
        sent_in = time.perf_counter() - start
        await asyncio.gather(*tasks)
    ms = [1000 * v for v in latencies]
    return {
        "requests": len(bodies), "target_rate_per_s": rate, "achieved_send_rate_per_s": round(len(bodies) / sent_in, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(_percentile(ms, 0.50), 2) if ms else None,
        "p90_ms": round(_percentile(ms, 0.90), 2) if ms else None,
        "p99_ms": round(_percentile(ms, 0.99), 2) if ms else None,
        "max_ms": round(max(ms), 2) if ms else None,
    }


def _serve(broker: str, port: int) -> None:
    """The worker process: one Faust worker with its web server on `port` (settings from EPIFLOW_*)."""
    from faust import Worker as FaustWorker

    from pipeline.settings import load_settings
    from streams.worker import create_worker

    settings = load_settings(broker=broker, web_port=port, insecure_demo_secret=broker.startswith("kafka://") or None)
    FaustWorker(create_worker(settings).app, loglevel="warning").execute_from_commandline()


def _delete_topics(bootstrap: str, prefix: str) -> None:
    """Remove the run's topics (about 200 queue topics) so runs do not pile up on a shared broker."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**client_options(bootstrap, "kafka-python"))
    try:
        ours = [t for t in admin.list_topics() if t.startswith(prefix) or t.startswith(prefix[:-1] + "-worker")]
        if ours:
            admin.delete_topics(ours, timeout_ms=30_000)
    finally:
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--broker", default="memory://")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.broker, args.serve)
        return
    port = free_port()
    token = new_token()
    with tempfile.TemporaryDirectory() as tmp:
        access = Path(tmp) / "access.toml"
        grants = AccessList(()).add("checkpoint", "cp-01", token, created_at=datetime.now(UTC))
        access.write_text(access_file_text(grants.grants), encoding="utf-8")
        env = {**os.environ, "EPIFLOW_ACCESS": str(access), "EPIFLOW_TOPIC_PREFIX": f"bench{port}",
               "EPIFLOW_DATA_DIR": str(Path(tmp) / "data"), "EPIFLOW_LOG_LEVEL": "WARNING"}
        command = [sys.executable, "-m", "tools.bench_api", "--serve", str(port), "--broker", args.broker]
        log_path = REPO / "test-output" / "bench_api_worker.log"
        log_path.parent.mkdir(exist_ok=True)
        log_file = log_path.open("wb")
        worker = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            try:
                asyncio.run(_wait_ready(base, token))
            except RuntimeError:
                raise SystemExit(f"the worker did not answer a scan within 120 s; its log: {log_path}") from None
            result = asyncio.run(_load(base, token, args.rate, args.seconds))
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
            log_file.close()
            if args.broker.startswith("kafka://"):
                _delete_topics(args.broker.removeprefix("kafka://"), f"bench{port}.")
    print(orjson.dumps({"bench": "checkpoint_api_latency", "broker": args.broker.split("//")[0] + "//",
                        "seconds": args.seconds, **result}, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
