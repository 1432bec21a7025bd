"""Community page latency in a cluster: `python -m tools.bench_pages [--district 100000] [--community 2000]`.

Two `epiflow worker` processes on the Kafka broker (`EPIFLOW_TEST_BROKER`, else the test broker) are given
`--district` open cases through the cases topic, `--community` of them in one community and the rest spread
over the others; then `GET /api/communities/{code}/cases` is asked `--requests` times on each worker, one
request at a time, for that community and for another one (its share of the rest). Prints one JSON object: latency
p50 / p99 / max in ms per worker and community, the time the cases took to load, and the workers' RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

__all__ = ["main"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _messages(codes: list[str], district: int, community: int, rules_version: str) -> list[tuple[bytes, bytes]]:
    """`district` triage messages opening open cases: `community` of them in `codes[0]`, the rest round-robin."""
    now = datetime.now(UTC)
    out = []
    for i in range(district):
        code = codes[0] if i < community else codes[1 + i % (len(codes) - 1)]
        case_id = f"case-bench{i:015d}"
        message = {
            "message_id": f"msg-bench{i:019d}", "case_id": case_id, "person_key": f"{i:064x}",
            "masked_id": f"330***********{i % 10000:04d}", "name": f"测试{i}", "phone": "13800138000", "community": code,
            "action": "hold", "previous_action": None, "severity": 30, "due_at": (now + timedelta(days=1)).isoformat(),
            "reasons": [{"rule": "bench", "text": "性能测试"}], "rules_version": rules_version,
            "flagged_at": now.isoformat(), "source_event_ids": [f"scan-bench{i}"], "address": "1 Road",
        }
        out.append((case_id.encode(), orjson.dumps(message)))
    return out


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from kafka import KafkaProducer

    from tools.kafka_clients import client_options

    producer = KafkaProducer(**client_options(bootstrap, "kafka-python"), linger_ms=20, batch_size=256 * 1024)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(120)
    finally:
        producer.close()


async def _get(session: Any, url: str, token: str) -> tuple[int, bytes]:
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as reply:
        return reply.status, await reply.read()


def _wait_loaded(bootstrap: str, changelog: str, total: int, timeout: float) -> float:
    """Seconds until the cases table's changelog holds `total` records (each case is written once on opening)."""
    from kafka import KafkaConsumer, TopicPartition

    from tools.kafka_clients import client_options

    reader = KafkaConsumer(**client_options(bootstrap, "kafka-python"), group_id=None, enable_auto_commit=False)
    started = time.monotonic()
    try:
        while True:
            tps = [TopicPartition(changelog, p) for p in (reader.partitions_for_topic(changelog) or ())]
            held = sum(reader.end_offsets(tps).values()) if tps else 0
            if held >= total:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise SystemExit(f"the cases table holds {held} of {total} cases after {timeout:.0f} s")
            time.sleep(2.0)
    finally:
        reader.close()


async def _latencies(base: str, code: str, token: str, requests: int) -> dict[str, Any]:
    import aiohttp

    times: list[float] = []
    cases = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            started = time.perf_counter()
            status, body = await _get(session, f"{base}/api/communities/{code}/cases", token)
            times.append(1000 * (time.perf_counter() - started))
            if status != 200:
                raise SystemExit(f"GET {base}/api/communities/{code}/cases answered {status}: {body[:200]!r}")
            cases = len(orjson.loads(body)["cases"])
    return {"community": code, "cases_shown": cases, "requests": requests, "p50_ms": round(_percentile(times, 0.5), 1),
            "p99_ms": round(_percentile(times, 0.99), 1), "max_ms": round(max(times), 1),
            "mean_ms": round(statistics.fmean(times), 1)}


def _rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def _bootstrap() -> tuple[str, contextlib.AbstractContextManager[Any]]:
    external = os.environ.get("EPIFLOW_TEST_BROKER", "").strip()
    if external:
        return external, contextlib.nullcontext()
    from tools.kafka_broker import shared_broker

    stack = contextlib.ExitStack()
    return stack.enter_context(shared_broker()), stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--district", type=int, default=100_000, help="open cases in the district")
    parser.add_argument("--community", type=int, default=2_000, help="open cases of the measured community")
    parser.add_argument("--requests", type=int, default=200, help="page requests per worker and community")
    args = parser.parse_args()
    if not 0 < args.community < args.district:
        raise SystemExit(f"--community {args.community} must be positive and below --district {args.district}")
    from geo.load import load_communities
    from pipeline.access import AccessList, access_file_text, new_token
    from tools.drills import READY_TIMEOUT_S, new_deployment

    bootstrap, holding = _bootstrap()
    with holding, tempfile.TemporaryDirectory() as tmp:
        deployment = new_deployment(bootstrap, Path(tmp), people=10, partitions=4)
        token = new_token()
        access = AccessList(()).add("admin", "", token, created_at=datetime.now(UTC))
        (Path(tmp) / "access.toml").write_text(access_file_text(access.grants), encoding="utf-8")
        deployment.extra_env["EPIFLOW_ACCESS"] = str(Path(tmp) / "access.toml")
        settings = deployment.settings
        codes = [c.code for c in load_communities(settings.path(settings.communities))]
        try:
            workers = [deployment.start_worker(f"pages-{uuid.uuid4().hex[:4]}") for _ in range(2)]
            ready = [w.wait_ready(READY_TIMEOUT_S) for w in workers]
            records = _messages(codes, args.district, args.community, ready[0]["rules_version"])
            started = time.monotonic()
            _produce(bootstrap, deployment.topic("cases"), records)
            bases = [f"http://127.0.0.1:{w.web_port}" for w in workers]
            loaded = _wait_loaded(bootstrap, f"{deployment.prefix}-worker-cases-changelog", args.district, 1800)
            load_s = time.monotonic() - started
            small = codes[1]
            per_worker = []
            for worker, base in zip(workers, bases, strict=True):
                per_worker.append({
                    "worker": worker.web_port, "rss_mb": _rss_mb(worker.pid),
                    "large": asyncio.run(_latencies(base, codes[0], token, args.requests)),
                    "small": asyncio.run(_latencies(base, small, token, args.requests)),
                })
        finally:
            deployment.stop()
            deployment.cleanup()
    large = [w["large"] for w in per_worker]
    print(orjson.dumps({
        "bench": "community_page_latency", "workers": 2, "partitions": 4, "district_cases": args.district,
        "community_cases": args.community, "requests_per_worker": args.requests,
        "p50_ms": max(x["p50_ms"] for x in large), "p99_ms": max(x["p99_ms"] for x in large),
        "small_community_cases": per_worker[0]["small"]["cases_shown"],
        "small_p50_ms": max(w["small"]["p50_ms"] for w in per_worker),
        "small_p99_ms": max(w["small"]["p99_ms"] for w in per_worker),
        "load_s": round(load_s, 1), "waited_s": round(loaded, 1), "per_worker": per_worker,
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
