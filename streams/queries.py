"""Read models for the cluster: a by-community index of this worker's cases, and the scatter-gather that lets
any worker answer for the whole district.

Each worker keeps a `CaseIndex` (community → its case keys and their partitions) in step with the cases
table, so one community's share costs in proportion to that community's cases. A request for a queue or the
dashboard asks every worker the router knows for its share (this worker's own without HTTP) and is complete
only when the shares together cover every partition of the cases table; otherwise `Incomplete` is raised
and the caller answers 503 with Retry-After, never a partial queue shown as whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from yarl import URL

__all__ = [
    "FORWARDED_HEADER",
    "SHARE_TIMEOUT_S",
    "CaseIndex",
    "DecodedCases",
    "Incomplete",
    "Share",
    "forwarded_headers",
    "gather_shares",
    "held_partitions",
    "owner_url",
    "peer_urls",
    "decode_share",
    "encode_share",
]

log = logging.getLogger(__name__)

#: Header on a request one worker makes of another (a forwarded case step, a share): it is answered there.
FORWARDED_HEADER = "X-Epiflow-Forwarded"
#: How long a worker waits for another worker's share (seconds) before the answer is incomplete.
SHARE_TIMEOUT_S = 2.0
#: Request headers passed on to the other workers: who is asking, in which language.
_PASSED = ("Authorization", "Cookie", "Accept-Language")


class Incomplete(Exception):
    """The shares gathered do not cover every partition of the cases table (a worker is down or rebalancing)."""

    def __init__(self, missing: Iterable[int]) -> None:
        self.missing = sorted(missing)
        super().__init__(f"partitions {self.missing} of the cases table answered by no worker")


@dataclass
class CaseIndex:
    """community code → {case key: partition} for the cases this worker holds, and each key's community."""

    by_community: dict[str, dict[bytes, int]] = field(default_factory=dict)
    community_of: dict[bytes, str] = field(default_factory=dict)

    def put(self, key: bytes, community: str, partition: int) -> None:
        """Record that case `key` (in `partition`) now belongs to `community` (a case follows its person)."""
        old = self.community_of.get(key)
        if old is not None and old != community:
            keys = self.by_community.get(old)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self.by_community[old]
        self.community_of[key] = community
        self.by_community.setdefault(community, {})[key] = partition

    def rebuild(self, rows: Iterable[tuple[bytes, str, int]]) -> None:
        """Start again from `(key, community, partition)` rows (after a table recovery)."""
        self.by_community.clear()
        self.community_of.clear()
        for key, community, partition in rows:
            self.put(key, community, partition)

    def keys_of(self, community: str, partitions: set[int] | frozenset[int]) -> list[tuple[bytes, int]]:
        """The case keys of `community` in `partitions` (the ones this worker serves now)."""
        return [(k, p) for k, p in self.by_community.get(community, {}).items() if p in partitions]

    def all_keys(self, partitions: set[int] | frozenset[int]) -> list[tuple[bytes, int]]:
        return [(k, p) for keys in self.by_community.values() for k, p in keys.items() if p in partitions]

    def __len__(self) -> int:
        return len(self.community_of)


class DecodedCases:
    """Decoded case records by their bytes, the oldest forgotten past `limit`: a queue polled every second
    decodes only the cases that changed since the last poll. Callers must not modify what they get."""

    def __init__(self, decode: Callable[[bytes], Any], limit: int = 20_000) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit!r} is expected to be a positive number of records")
        self._decode, self._limit = decode, limit
        self._items: dict[bytes, Any] = {}

    def __call__(self, raw: bytes) -> Any:
        hit = self._items.get(raw)
        if hit is None:
            hit = self._items[raw] = self._decode(raw)
            if len(self._items) > self._limit:
                del self._items[next(iter(self._items))]
        return hit

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Share:
    """What one worker answered: the cases-table partitions it serves now and its payload for them."""

    partitions: frozenset[int]
    payload: Any


def encode_share(partitions: Iterable[int], payload: Any) -> bytes:
    """A share on the wire (msgpack: case records travel as bytes)."""
    return msgspec.msgpack.encode({"partitions": sorted(partitions), "payload": payload})


def decode_share(body: bytes) -> Share:
    data = msgspec.msgpack.decode(body)
    return Share(frozenset(int(p) for p in data["partitions"]), data["payload"])


def held_partitions(app: Any, table: Any, recovering: bool) -> frozenset[int]:
    """The partitions of `table` this worker actively serves now: none while it is still recovering them."""
    if recovering:
        return frozenset()
    topic = table.changelog_topic.get_topic_name()
    try:
        actives = app.assignor.assigned_actives()
    except AttributeError:
        return frozenset()
    return frozenset(tp.partition for tp in actives if tp.topic == topic)


def _ident(url: URL | str) -> tuple[str, int]:
    url = URL(str(url))
    return (url.host or "", int(url.port or 80))


def peer_urls(app: Any, table: Any) -> list[URL]:
    """The web servers of the other workers the router knows for `table` (this worker excluded)."""
    try:
        hosts = app.router.table_metadata(table.name)
    except (KeyError, AttributeError):
        return []
    own = _ident(app.conf.canonical_url)
    return [URL(h) for h in sorted(hosts) if _ident(h) != own]


def owner_url(app: Any, table: Any, key: bytes) -> URL | None:
    """The web server of the worker that holds `key` of `table`; None when it is this worker or not known yet."""
    try:
        url = app.router.key_store(table.name, key)
    except Exception as exc:  # no assignment or topic metadata yet (a starting worker): answer here
        log.debug("no owner known for a key of %s: %s", table.name, type(exc).__name__)
        return None
    return None if _ident(url) == _ident(app.conf.canonical_url) else url


def forwarded_headers(request: Any) -> dict[str, str]:
    """The caller's credentials and language, marked as asked by a worker."""
    headers = {name: request.headers[name] for name in _PASSED if name in request.headers}
    headers[FORWARDED_HEADER] = "1"
    return headers


async def gather_shares(
    app: Any,
    table: Any,
    path: str,
    request: Any,
    local: Callable[[], Share],
) -> list[Share]:
    """This worker's share and every other worker's (`GET <peer><path>`), complete over `table`'s partitions.

    A peer that does not answer in `SHARE_TIMEOUT_S`, or answers with an error, adds no partitions. Raises
    `Incomplete` when some partition is held by nobody who answered, or claimed by two workers (a handover
    in progress: counting it twice would be as wrong as not at all).
    """
    own = local()
    peers = peer_urls(app, table)
    headers = forwarded_headers(request)
    timeout = aiohttp.ClientTimeout(total=SHARE_TIMEOUT_S)

    async def ask(base: URL) -> Share | None:
        try:
            async with app.http_client.get(base.with_path(path).with_query(request.query), headers=headers,
                                           timeout=timeout) as reply:
                body = await reply.read()
                if reply.status == 200:
                    return decode_share(body)
                log.info("share not given peer=%s path=%s status=%s", base, path, reply.status)
        except (TimeoutError, aiohttp.ClientError, OSError, msgspec.DecodeError, KeyError) as exc:
            log.info("share not given peer=%s path=%s error=%s", base, path, type(exc).__name__)
        return None

    answers = await asyncio.gather(*(ask(p) for p in peers))
    shares = [own, *(a for a in answers if a is not None)]
    covered: set[int] = set()
    twice: set[int] = set()
    for share in shares:
        twice |= covered & share.partitions
        covered |= share.partitions
    missing = (set(range(table.partitions)) - covered) | twice
    if missing:
        raise Incomplete(missing)
    return shares
