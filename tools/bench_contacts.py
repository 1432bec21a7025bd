"""Contact tracing speed: one index case's contacts against many held places, and positive → last contact's triage.

``python -m tools.bench_contacts search --places N`` fills a place store with N synthetic places (a
tenth of as many people, each with ten places over 14 days across the sample district: checkpoint
scans and stays of 1–12 h), plants an index case with six places and known contacts, and times
`pipeline.contacts.candidates` (the vectorised space-then-time search over every held place) plus
`match` on what it returns.

``python -m tools.bench_contacts latency --tracked N [--broker URL]`` starts one worker, streams a
scenario through it (an index case in a vehicle with 20 others and beside 10 people at a stay, each
contact also riding on with someone after), holds N further tracked people's places (three each) in
the worker's place store, then sends the index case's positive NAT result and times from the moment
it enters the input topic to the broker timestamp of the last contact's triage message on its
community topic. Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pipeline.inputs import CHECKPOINT_SCANS, DECLARATIONS, NAT_RESULTS

__all__ = ["bench_latency", "bench_search"]

_BOX = (120.2248, 30.343516, 120.382262, 30.485402)  # the sample district's bounds
_DAY = 86_400


def _background(store: Any, places: int, now: int, rng: np.random.Generator, people_places: int = 10) -> None:
    """`places` synthetic rows, `people_places` per person, appended in blocks of a million."""
    from geo.sweep import KEY_DTYPE

    block = 1_000_000
    done = 0
    while done < places:
        n = min(block, places - done)
        people = -(-n // people_places)
        rows = np.zeros(people, dtype=KEY_DTYPE)
        rows["raw"] = rng.integers(0, 256, size=(people, 32), dtype=np.uint8)
        rows["packed"] = True
        keys = np.repeat(rows, people_places)[:n]
        lon = rng.uniform(_BOX[0], _BOX[2], n)
        lat = rng.uniform(_BOX[1], _BOX[3], n)
        t_from = now - rng.integers(0, 14 * _DAY, n)
        stay = rng.random(n) < 0.3
        t_to = t_from + np.where(stay, rng.integers(3_600, 12 * 3_600, n), 0)
        store.add_packed(keys, lon, lat, t_from, t_to)
        done += n


def bench_search(places: int, repeats: int = 5, seed: int = 7) -> dict[str, Any]:
    """Time one index case's contact search against `places` held places."""
    from geo.sweep import PlaceStore
    from pipeline.contacts import candidates, close_request, match
    from pipeline.rules import load_rules
    from pipeline.settings import load_settings
    from pipeline.state import Nat, PersonState, Place

    settings = load_settings(insecure_demo_secret=True)
    rules = load_rules(settings.path(settings.rules))
    rng = np.random.default_rng(seed)
    now = int(datetime.now(UTC).timestamp())
    store = PlaceStore()
    started = time.perf_counter()
    _background(store, places, now, rng)
    built = time.perf_counter() - started
    index_places = []
    for i in range(6):
        lon, lat = float(rng.uniform(_BOX[0], _BOX[2])), float(rng.uniform(_BOX[1], _BOX[3]))
        t = now - (i + 1) * 10 * 3_600
        if i % 3 == 0:
            index_places.append(Place(f"scan-{i}", 0, "scan", t, t, lon, lat, f"cp-{i}", "driver"))
        else:
            index_places.append(Place(f"decl-{i}", i, "stop", t, t + 3 * 3_600, lon, lat, f"place-{i}"))
    index = PersonState("index-case", "330***********001X", places=tuple(index_places),
                        nats=(Nat("nat-1", now - 3_600, now, "positive", "lab-1"),))
    planted: dict[str, PersonState] = {}
    for i, p in enumerate(index_places):
        for j in range(5):
            key = f"contact-{i}-{j}"
            if p.kind == "scan":
                mine = Place(p.event_id, 0, "scan", p.t_from, p.t_to, p.lon, p.lat, p.label, "passenger")
            else:
                mine = Place(f"d-{key}", 0, "stop", p.t_from + 1_800, p.t_to + 3_600, p.lon + 0.0003, p.lat, "nearby")
            planted[key] = PersonState(key, f"330***********{i}{j:02d}X", places=(mine,))
            store.add(key, mine.lon, mine.lat, mine.t_from, mine.t_to)
    request = close_request(index, rules.contacts)
    assert request is not None
    times = []
    cpu = []
    found: dict[str, int] = {}
    cands: list[str] = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        cands = candidates(request, store, rules.contacts)
        found = {k: len(match(request, planted[k], rules.contacts)) for k in cands if k in planted}
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    contacts = sum(1 for v in found.values() if v)
    return {
        "places": len(store),
        "store_mib": round(store.nbytes / 2**20, 1),
        "store_build_s": round(built, 2),
        "index_places": len(index_places),
        "search_s_best": round(min(times), 4),
        "search_s_median": round(statistics.median(times), 4),
        "search_cpu_s_median": round(statistics.median(cpu), 4),
        "repeats": repeats,
        "candidates": len(cands),
        "contacts": contacts,
        "planted_contacts": len(planted),
        "all_planted_found": contacts == len(planted),
    }


def _person(n: int) -> dict[str, str]:
    from pipeline.identity import check_character

    first17 = f"33010619800101{n:03d}"
    return {"id_number": first17 + check_character(first17), "name": f"测{n}", "phone": f"139{n:08d}"}


def _scenario(now: datetime) -> tuple[list[tuple[str, dict]], dict, list[str]]:
    """(kind, document) inputs before the positive, the positive NAT, and the contacts' ID numbers."""
    iso = lambda t: t.isoformat()  # noqa: E731
    index = _person(1)
    riders = [_person(n) for n in range(2, 22)]
    neighbours = [_person(n) for n in range(22, 32)]
    onward = [_person(n) for n in range(32, 62)]
    home = {"lon": 120.30, "lat": 30.43, "address": "测试社区1幢101室"}
    scanned = now - timedelta(hours=30)
    out: list[tuple[str, dict]] = [(CHECKPOINT_SCANS.topic, {
        "type": CHECKPOINT_SCANS.name, "event_id": "bench-scan-1", "checkpoint_id": "cp-01", "scanned_at": iso(scanned),
        "location": {"lon": 120.33, "lat": 30.40},
        "people": [{**index, "role": "driver"}, *({**p, "role": "passenger"} for p in riders)],
    })]
    stay_from, stay_to = now - timedelta(hours=50), now - timedelta(hours=47)
    for i, p in enumerate([index, *neighbours]):
        out.append((DECLARATIONS.topic, {
            "type": DECLARATIONS.name, "event_id": f"bench-decl-{i}", "person": p, "submitted_at": iso(now - timedelta(hours=46)),
            "arrival_at": iso(now - timedelta(hours=45)), "destination": home,
            "itinerary": [{"lon": 120.30 + 0.0002 * (i % 3), "lat": 30.44, "place": "测试餐厅",
                           "from": iso(stay_from + timedelta(minutes=5 * (i % 4))), "to": iso(stay_to)}],
        }))
    for i, (contact, other) in enumerate(zip([*riders, *neighbours], onward, strict=False)):
        out.append((CHECKPOINT_SCANS.topic, {
            "type": CHECKPOINT_SCANS.name, "event_id": f"bench-onward-{i}", "checkpoint_id": "cp-02",
            "scanned_at": iso(now - timedelta(hours=20, minutes=i)), "location": {"lon": 120.25, "lat": 30.36},
            "people": [{**contact, "role": "driver"}, {**other, "role": "passenger"}],
        }))
    positive = {"type": NAT_RESULTS.name, "event_id": "bench-nat-1", "person": index,
                "sampled_at": iso(now - timedelta(hours=3)), "reported_at": iso(now - timedelta(minutes=1)),
                "result": "positive", "lab_id": "lab-1"}
    return out, positive, [p["id_number"] for p in [*riders, *neighbours, *onward[:30]]]


async def _latency(broker: str, tracked: int) -> dict[str, Any]:
    from geo.sweep import PlaceStore
    from pipeline.identity import person_key
    from pipeline.settings import load_settings
    from streams.memory import drop_broker, get_broker
    from streams.worker import create_worker

    prefix = f"benchc{uuid.uuid4().hex[:8]}"
    url = f"memory://{prefix}" if broker == "memory" else broker
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = load_settings(broker=url, topic_prefix=prefix, partitions=4, insecure_demo_secret=True,
                             web_port=port, data_dir=Path(tempfile.mkdtemp(prefix=f"epiflow-{prefix}-")))
    worker = create_worker(settings, web_enabled=False)
    await worker.app.start()
    producer = None
    try:
        await asyncio.wait_for(worker.agents.control_ready.wait(), 300)
        now = datetime.now(UTC).replace(microsecond=0)
        inputs, positive, contact_ids = _scenario(now)
        contact_keys = {person_key(settings.secret_bytes, i) for i in contact_ids}

        if url.startswith("memory://"):
            memory = get_broker(url)

            def send(kind: str, doc: dict) -> float:
                memory.append(settings.topic(kind), None, orjson.dumps(doc))
                return time.time()
        else:
            from kafka import KafkaProducer

            producer = KafkaProducer(bootstrap_servers=url.removeprefix("kafka://"), linger_ms=0)

            def send(kind: str, doc: dict) -> float:
                producer.send(settings.topic(kind), orjson.dumps(doc)).get(30)
                return time.time()

        counts = worker.agents.counts
        for kind, doc in inputs:
            send(kind, doc)
        expected_events = sum(len(d["people"]) if "people" in d else 1 for _, d in inputs)
        while counts["joined"] < expected_events:
            await asyncio.sleep(0.05)
        rt = worker.runtime
        rng = np.random.default_rng(11)
        started = time.perf_counter()
        extra = PlaceStore()
        for rows in rt.places.chunks():
            extra.add_packed(*rows)
        _background(extra, 3 * tracked, int(now.timestamp()), rng, people_places=3)
        rt.places = extra
        held_s = time.perf_counter() - started
        sent_to: set[str] = set()
        worker.agents.listeners.append(lambda message, _: sent_to.add(message.person_key))
        t0 = send(NAT_RESULTS.topic, positive)
        tracing = worker.agents.tracing.counts
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not contact_keys <= sent_to:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        seen = _contact_messages(worker, settings, contact_keys, t0, producer is not None)
        latencies = sorted(seen.values())
        return {
            "broker": "memory://" if url.startswith("memory://") else "kafka",
            "tracked_people": tracked + len(contact_keys) + 1,
            "places_held": len(rt.places),
            "fill_place_store_s": round(held_s, 2),
            "contacts_expected": len(contact_keys),
            "contacts_triaged": len(seen),
            "positive_to_first_contact_s": round(latencies[0], 3) if latencies else None,
            "positive_to_last_contact_s": round(latencies[-1], 3) if latencies else None,
            "trace_requests": tracing["requests_published"],
            "search_s_sum": round(rt.metrics.contact_search_seconds._sum.get(), 4),
        }
    finally:
        if producer is not None:
            producer.close()
        await worker.app.stop()
        if url.startswith("memory://"):
            drop_broker(url)


def _contact_messages(worker: Any, settings: Any, contact_keys: set[str], t0: float, kafka: bool) -> dict[str, float]:
    """Per contact, seconds from `t0` to the broker timestamp of their first triage message after it."""
    from streams.memory import get_broker

    out: dict[str, float] = {}
    prefix = settings.topic("triage.")
    if not kafka:
        broker = get_broker(settings.broker)
        for topic in broker.topics():
            if topic.startswith(prefix) and ".street." not in topic:
                for r in broker.all_records(topic):
                    key = (r.key or b"").decode()
                    if key in contact_keys and r.timestamp / 1000 >= t0 and key not in out:
                        out[key] = r.timestamp / 1000 - t0
        return out
    return _kafka_contact_messages(settings, contact_keys, t0)


def _kafka_contact_messages(settings: Any, contact_keys: set[str], t0: float) -> dict[str, float]:
    from tools.drills import list_topics, read_topic

    bootstrap = settings.broker.removeprefix("kafka://")
    out: dict[str, float] = {}
    for topic in list_topics(bootstrap, settings.topic("triage.")):
        if ".street." in topic:
            continue
        for r in read_topic(bootstrap, topic):
            key = (r.key or b"").decode()
            if key in contact_keys and r.timestamp / 1000 >= t0 and key not in out:
                out[key] = r.timestamp / 1000 - t0
    return out


def bench_latency(broker: str, tracked: int) -> dict[str, Any]:
    return asyncio.run(_latency(broker, tracked))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_contacts", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    search = sub.add_parser("search", help="one index case's contacts against N held places")
    search.add_argument("--places", type=int, default=10_000_000)
    search.add_argument("--repeats", type=int, default=5)
    latency = sub.add_parser("latency", help="positive result in → last contact's triage message out")
    latency.add_argument("--tracked", type=int, default=1_000_000)
    latency.add_argument("--broker", default="memory", help="memory, or kafka://host:port")
    args = parser.parse_args(argv)
    if args.what == "search":
        result = bench_search(args.places, args.repeats)
    else:
        result = bench_latency(args.broker, args.tracked)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
