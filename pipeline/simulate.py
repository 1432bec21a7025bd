"""Seeded streams of declarations, checkpoint scans and NAT results over the sample geography.

Everything is relative to an anchor time `at`: the sample risk regions (dated around
`SAMPLE_ANCHOR`) are shifted by `at - SAMPLE_ANCHOR`, and every event time lies in
`[at - lookback, at]`, so a live worker whose clock reads `at` accepts them. The same seed gives the
same bytes. A share of records is deliberately bad (broken JSON, bad ID checksum, impossible
coordinates, timestamps far in the future) to exercise the dead-letter path.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import shapely

from geo.checkpoints import Checkpoint
from geo.communities import Community
from geo.load import load_checkpoints, load_communities, load_regions, region_to_feature
from geo.regions import LEVELS, Region
from pipeline.errors import SimulationError
from pipeline.identity import PROVINCE_CODES, check_character
from pipeline.inputs import BY_TOPIC, CHECKPOINT_SCANS, DECLARATIONS, KINDS, NAT_RESULTS, TOPICS

__all__ = [
    "SAMPLE_ANCHOR",
    "STREAMS",
    "Geography",
    "StreamKind",
    "load_sample_geography",
    "shift_regions",
    "simulate_records",
    "simulate_stream",
    "write_simulation",
]

#: an input kind's topic name (`pipeline.inputs`), as the simulated records carry it
StreamKind = str
STREAMS: tuple[StreamKind, ...] = TOPICS
CST = timezone(timedelta(hours=8))
#: The moment the sample risk regions in config/geo are "now" for.
SAMPLE_ANCHOR = datetime(2022, 6, 20, 12, 0, 0, tzinfo=CST)
_STREAM_FILES = {k.topic: f"{k.stem}.jsonl" for k in KINDS}
_H = 3600
_D = 86400

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉斌宇浩凯健俊帆帅旭宁欣怡佳琪晨阳博文轩然"
_LABS = ("lab-hz-01", "lab-hz-02", "lab-hz-03", "lab-adicon", "lab-kingmed", "lab-dian")
_PLATE_PREFIX = ("浙A", "浙B", "苏E", "沪D", "皖A", "赣A", "闽D", "鲁B", "豫A", "粤B")


@dataclass(frozen=True)
class Geography:
    """What the simulator draws places from: risk regions (already shifted), communities, checkpoints."""

    regions: Sequence[Region]
    communities: Sequence[Community]
    checkpoints: Sequence[Checkpoint]


def shift_regions(regions: Sequence[Region], delta: timedelta) -> list[Region]:
    """The regions with their designation and lifting times moved by `delta`."""
    if not isinstance(delta, timedelta):
        raise SimulationError(f"delta was {delta!r} but is expected to be a timedelta")
    return [
        dataclasses.replace(
            r,
            effective_from=r.effective_from + delta,
            effective_until=None if r.effective_until is None else r.effective_until + delta,
        )
        for r in regions
    ]


def load_sample_geography(regions: Path, communities: Path, checkpoints: Path, at: datetime) -> Geography:
    """Load the sample files and shift the risk regions so they are current at `at`."""
    shifted = shift_regions(load_regions(regions), at - SAMPLE_ANCHOR)
    return Geography(shifted, load_communities(communities), load_checkpoints(checkpoints))


def _inner_points(geoms: Sequence, rng: np.random.Generator, per: int) -> list[list[tuple[float, float]]]:
    """Up to `per` random points inside each polygon (its representative point when sampling misses)."""
    out = []
    for geom in geoms:
        minx, miny, maxx, maxy = geom.bounds
        xs = rng.uniform(minx, maxx, per * 4)
        ys = rng.uniform(miny, maxy, per * 4)
        inside = shapely.contains_xy(geom, xs, ys)
        pts = [(round(float(x), 6), round(float(y), 6)) for x, y in zip(xs[inside][:per], ys[inside][:per], strict=True)]
        if not pts:
            rp = geom.representative_point()
            pts = [(round(rp.x, 6), round(rp.y, 6))]
        out.append(pts)
    return out


class _Gen:
    """One simulation run; `records()` gives (push time, sequence, stream kind, document or raw bytes)."""

    def __init__(self, seed: int, people: int, at: datetime, geo: Geography, bad_share: float, lookback: timedelta) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.people = people
        self.at = int(at.timestamp())
        self.lookback = int(lookback.total_seconds())
        self.bad_share = bad_share
        nprng = np.random.default_rng(seed)
        self.regions = list(geo.regions)
        if not self.regions:
            raise SimulationError("the simulator needs at least one risk region")
        self.r_from = [int(r.effective_from.timestamp()) for r in self.regions]
        self.r_until = [2**62 if r.effective_until is None else int(r.effective_until.timestamp()) for r in self.regions]
        self.r_points = _inner_points([r.geometry for r in self.regions], nprng, 6)
        self.communities = list(geo.communities)
        if not self.communities:
            raise SimulationError("the simulator needs at least one community")
        self.c_points = _inner_points([c.geometry for c in self.communities], nprng, 8)
        self.checkpoints = list(geo.checkpoints)
        if not self.checkpoints:
            raise SimulationError("the simulator needs at least one checkpoint")
        self.provinces = sorted(PROVINCE_CODES - {"71", "81", "82"})
        self.seq = 0
        self.out: list[tuple[int, int, str, object]] = []
        self.counts: Counter[str] = Counter()

    # -- helpers -----------------------------------------------------------------------------
    def iso(self, t: int) -> str:
        return datetime.fromtimestamp(t, CST).isoformat()

    def person(self) -> dict:
        rng = self.rng
        province = rng.choice(self.provinces)
        area = f"{province}{rng.randint(1, 9):02d}{rng.randint(1, 30):02d}"
        born = datetime(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 64))
        first17 = f"{area}{born:%Y%m%d}{rng.randint(0, 999):03d}"
        name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.randint(1, 2)))
        phone = f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"
        return {"id_number": first17 + check_character(first17), "name": name, "phone": phone}

    def event_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seed}-{self.seq:09d}"

    def push_time(self, occurred: int) -> int:
        rng = self.rng
        if rng.random() < 0.05:
            return occurred + rng.randint(_H, 18 * _H)
        return occurred + rng.randint(0, 120)

    def emit(self, kind: StreamKind, doc: dict, occurred: int) -> None:
        self.seq += 1
        self.out.append((self.push_time(occurred), self.seq, kind, doc))

    def region_at(self, t: int, levels: tuple[str, ...] = LEVELS) -> int | None:
        """A random region in force at `t`, of one of `levels`, or None after a few misses."""
        rng = self.rng
        n = len(self.regions)
        for _ in range(24):
            i = rng.randrange(n)
            if self.r_from[i] <= t < self.r_until[i] and self.regions[i].level in levels:
                return i
        return None

    def somewhere(self) -> tuple[float, float, str]:
        """A point near, usually not inside, some risk region: an ordinary place."""
        rng = self.rng
        i = rng.randrange(len(self.regions))
        x, y = rng.choice(self.r_points[i])
        dx, dy = rng.choice((-1, 1)) * rng.uniform(0.15, 0.8), rng.choice((-1, 1)) * rng.uniform(0.15, 0.8)
        return round(x + dx, 6), round(max(18.5, min(53.0, y + dy)), 6), self.regions[i].name[:3] + "市区"

    def risky_place(self, t: int, levels: tuple[str, ...] = LEVELS) -> tuple[float, float, str] | None:
        i = self.region_at(t, levels)
        if i is None:
            return None
        x, y = self.rng.choice(self.r_points[i])
        return x, y, self.regions[i].name

    def lab_nat(self, person: dict, sampled: int, result: str | None = None) -> None:
        rng = self.rng
        reported = sampled + rng.randint(3 * _H, 30 * _H)
        if reported > self.at or sampled < self.at - self.lookback:
            return
        if result is None:
            roll = rng.random()
            result = "positive" if roll < 0.03 else ("invalid" if roll < 0.04 else "negative")
        doc = {
            "type": NAT_RESULTS.name,
            "event_id": self.event_id("nat"),
            "person": person,
            "sampled_at": self.iso(sampled),
            "reported_at": self.iso(reported),
            "result": result,
            "lab_id": rng.choice(_LABS),
        }
        self.emit(NAT_RESULTS.topic, doc, reported)
        if rng.random() < 0.03:
            self.emit(NAT_RESULTS.topic, doc, reported + rng.randint(60, 6 * _H))

    # -- people --------------------------------------------------------------------------------
    def traveler(self) -> None:
        rng = self.rng
        person = self.person()
        arrival = self.at - rng.randint(_H, 5 * _D)
        submitted = arrival - rng.randint(_H, 36 * _H)
        stops = []
        end = arrival - rng.randint(2 * _H, 12 * _H)
        for _ in range(rng.randint(1, 3)):
            start = end - rng.randint(4 * _H, 72 * _H)
            if start < self.at - self.lookback + _D:
                break
            place = self.risky_place(end) if rng.random() < 0.45 else None
            lon, lat, label = place if place is not None else self.somewhere()
            stops.append({"lon": lon, "lat": lat, "place": label, "from": self.iso(start), "to": self.iso(end)})
            end = start - rng.randint(2 * _H, 24 * _H)
        stops.reverse()
        if rng.random() < 0.9:
            ci = rng.randrange(len(self.communities))
            dx, dy = rng.choice(self.c_points[ci])
            address = f"{self.communities[ci].name}{rng.randint(1, 40)}幢{rng.randint(1, 30)}0{rng.randint(1, 4)}室"
        else:
            dx, dy, address = self.somewhere()
        doc = {
            "type": DECLARATIONS.name,
            "event_id": self.event_id("decl"),
            "submitted_at": self.iso(submitted),
            "person": person,
            "arrival_at": self.iso(arrival),
            "destination": {"lon": dx, "lat": dy, "address": address},
            "itinerary": stops,
        }
        roll = rng.random()
        if roll < 0.6:
            sampled = arrival - rng.randint(4 * _H, 46 * _H)
            doc["nat_report"] = {"sampled_at": self.iso(sampled), "result": "negative", "lab": rng.choice(_LABS)}
        elif roll < 0.7:
            sampled = arrival - rng.randint(50 * _H, 90 * _H)
            doc["nat_report"] = {"sampled_at": self.iso(sampled), "result": "negative", "lab": rng.choice(_LABS)}
        self.emit(DECLARATIONS.topic, doc, submitted)
        if rng.random() < 0.3:
            self.lab_nat(person, arrival - rng.randint(6 * _H, 40 * _H), "negative")
        if rng.random() < 0.5:
            self.lab_nat(person, arrival + rng.randint(_H, 20 * _H))

    def vehicle(self) -> int:
        """One truck with 1–3 people through 1–2 checkpoints; returns how many people it carried."""
        rng = self.rng
        crew = [self.person() for _ in range(rng.randint(1, 3))]
        pedestrian = rng.random() < 0.08
        first = self.at - rng.randint(10 * 60, 3 * _D)
        for k in range(rng.randint(1, 2)):
            scanned = first + k * rng.randint(_H, 10 * _H)
            if scanned > self.at:
                break
            cp = rng.choice(self.checkpoints)
            doc = {
                "type": CHECKPOINT_SCANS.name,
                "event_id": self.event_id("scan"),
                "checkpoint_id": cp.id,
                "scanned_at": self.iso(scanned),
                "location": {"lon": round(cp.lon, 6), "lat": round(cp.lat, 6)},
            }
            if pedestrian:
                doc["people"] = [{**p, "role": "pedestrian"} for p in crew]
            else:
                departed = scanned - rng.randint(2 * _H, 16 * _H)
                place = self.risky_place(departed) if rng.random() < 0.45 else None
                lon, lat, label = place if place is not None else self.somewhere()
                plate = f"{rng.choice(_PLATE_PREFIX)}·{rng.randint(10000, 99999)}"
                doc["vehicle"] = {"plate": plate, "origin": {"lon": lon, "lat": lat, "place": label}, "departed_at": self.iso(departed)}
                doc["people"] = [{**p, "role": "driver" if i == 0 else "passenger"} for i, p in enumerate(crew)]
            self.emit(CHECKPOINT_SCANS.topic, doc, scanned)
        for p in crew:
            roll = rng.random()
            if roll < 0.7:
                self.lab_nat(p, first - rng.randint(4 * _H, 44 * _H))
            elif roll < 0.8:
                self.lab_nat(p, first - rng.randint(50 * _H, 80 * _H))
        return len(crew)

    def resident(self) -> None:
        person = self.person()
        for _ in range(self.rng.randint(1, 2)):
            self.lab_nat(person, self.at - self.rng.randint(6 * _H, 10 * _D))

    def run(self) -> None:
        rng = self.rng
        made = 0
        while made < self.people:
            roll = rng.random()
            if roll < 0.70:
                self.traveler()
                made += 1
            elif roll < 0.85:
                made += self.vehicle()
            else:
                self.resident()
                made += 1
        self.out.sort(key=lambda r: (r[0], r[1]))

    # -- bad records ---------------------------------------------------------------------------
    def spoil(self, kind: str, doc: dict) -> tuple[bytes, str]:
        rng = self.rng
        choice = rng.choice(("invalid_json", "id_checksum", "coordinates", "in_future"))
        doc = orjson.loads(orjson.dumps(doc))
        if choice == "invalid_json":
            raw = orjson.dumps(doc)
            return raw[: max(1, len(raw) // 2)], choice
        if choice == "id_checksum":
            holder = doc["people"][0] if "people" in doc else doc["person"]
            number = holder["id_number"]
            wrong = [c for c in "0123456789X" if c != number[-1]]
            holder["id_number"] = number[:-1] + rng.choice(wrong)
        elif choice == "coordinates" and kind != NAT_RESULTS.topic:
            if "destination" in doc:
                doc["destination"]["lon"] = 200.0 + rng.random() * 50
            else:
                doc["location"]["lat"] = -95.0 - rng.random() * 5
        else:
            choice = "in_future"
            field = BY_TOPIC[kind].time_field
            doc[field] = self.iso(self.at + rng.randint(2 * _D, 30 * _D))
        return orjson.dumps(doc), choice

    def records(self) -> Iterator[tuple[str, bytes, str | None]]:
        """(stream kind, raw bytes, bad-record kind or None) in arrival order."""
        self.run()
        rng = self.rng
        for _, _, kind, doc in self.out:
            if self.bad_share and rng.random() < self.bad_share:
                raw, bad = self.spoil(kind, doc)
                yield kind, raw, bad
            else:
                yield kind, orjson.dumps(doc), None


def _check_args(seed: int, people: int, at: datetime, bad_share: float) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise SimulationError(f"seed was {seed!r} but is expected to be a non-negative integer")
    if not isinstance(people, int) or people < 1:
        raise SimulationError(f"people was {people!r} but is expected to be a positive integer")
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise SimulationError(f"at was {at!r} but is expected to be a timezone-aware datetime")
    if not 0.0 <= bad_share <= 1.0:
        raise SimulationError(f"bad_share was {bad_share!r} but is expected to be between 0 and 1")


def simulate_records(
    seed: int, people: int, at: datetime, geo: Geography, *, bad_share: float = 0.02, lookback: timedelta = timedelta(days=14)
) -> Iterator[tuple[str, bytes, str | None]]:
    """(stream kind, raw JSON bytes, bad kind or None) in arrival order; `geo.regions` must be current at `at`."""
    _check_args(seed, people, at, bad_share)
    return _Gen(seed, people, at, geo, bad_share, lookback).records()


def simulate_stream(
    seed: int,
    people: int,
    at: datetime,
    geo: Geography | None = None,
    *,
    bad_share: float = 0.02,
    lookback: timedelta = timedelta(days=14),
) -> Iterator[tuple[str, bytes]]:
    """(input kind, raw JSON bytes) in arrival order, for the streaming layer's producers.

    Without `geo`, the sample files in config/geo are loaded and shifted to `at`.
    """
    if geo is None:
        geo = _default_geography(at)
    for kind, raw, _ in simulate_records(seed, people, at, geo, bad_share=bad_share, lookback=lookback):
        yield kind, raw


def _default_geography(at: datetime) -> Geography:
    from pipeline.settings import load_settings

    s = load_settings()
    return load_sample_geography(s.path(s.regions), s.path(s.communities), s.path(s.checkpoints), at)


def _regions_geojson(regions: Sequence[Region]) -> bytes:
    lines = [b'{"type": "FeatureCollection", "name": "risk_regions", "features": [']
    features = [orjson.dumps(region_to_feature(r)) for r in regions]
    lines.append(b",\n".join(features))
    lines.append(b"]}")
    return b"\n".join(lines) + b"\n"


def write_simulation(
    out: Path,
    seed: int,
    people: int,
    at: datetime,
    geo: Geography | None = None,
    *,
    bad_share: float = 0.02,
    lookback: timedelta = timedelta(days=14),
    progress=None,  # noqa: ANN001 - optional callable(count)
) -> dict:
    """Write the per-stream JSONL files, the merged `events.jsonl`, the shifted regions and a manifest."""
    _check_args(seed, people, at, bad_share)
    if geo is None:
        geo = _default_geography(at)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    handles = {kind: (out / name).open("wb") for kind, name in _STREAM_FILES.items()}
    try:
        with (out / "events.jsonl").open("wb") as merged:
            for n, (kind, raw, spoilt) in enumerate(simulate_records(seed, people, at, geo, bad_share=bad_share, lookback=lookback), 1):
                line = raw + b"\n"
                merged.write(line)
                handles[kind].write(line)
                counts[kind] += 1
                if spoilt:
                    bad[spoilt] += 1
                if progress is not None and n % 10_000 == 0:
                    progress(n)
    finally:
        for handle in handles.values():
            handle.close()
    (out / "risk_regions.geojson").write_bytes(_regions_geojson(geo.regions))
    manifest = {
        "at": at.isoformat(),
        "seed": seed,
        "people": people,
        "bad_share": bad_share,
        "lookback_days": lookback.total_seconds() / _D,
        "counts": {kind: counts[kind] for kind in STREAMS},
        "events": sum(counts.values()),
        "bad_records": dict(sorted(bad.items())),
        "files": {**{kind: name for kind, name in _STREAM_FILES.items()}, "merged": "events.jsonl", "regions": "risk_regions.geojson"},
    }
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return manifest
