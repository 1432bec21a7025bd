"""Contact tracing on the stream: trace requests every worker reads, contacts re-evaluated through the join.

When the join sees a person turn positive (or a positive person's places change), it publishes a
trace request (their places since 4 days before the sample) to the compacted `contact-traces`
topic, keyed by degree and person. Every worker reads that topic in full, as it reads the control
topics, searches the places it holds (`pipeline.contacts.candidates`, vectorised), checks each
candidate's own state (`match`), and sends each contact a re-evaluation record on `person-events`
carrying the exposures. The join folds those into the `contacts` table and into the verdict, so the
contact's triage message goes out like any other. A close contact's first exposure publishes their
own request (secondary contacts). Places that reach the join after a request are checked against
the live requests there. Everything is idempotent: a known exposure changes nothing, so a repeat or
a replay sends nothing new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from geo.proximity import near_in_time
from geo.sweep import PlaceStore, keys_of
from pipeline.contacts import (
    Exposure,
    TraceRequest,
    close_request,
    decode_exposures,
    decode_request,
    encode_exposures,
    encode_request,
    match,
    merge_exposures,
    secondary_request,
)
from pipeline.state import PersonState, state_from_bytes
from streams.control import REEVALUATE, control_log_for

__all__ = ["CONTACT", "RequestPlaces", "Tracing", "has_header"]

log = logging.getLogger(__name__)

#: Header of a re-evaluation record that carries exposures (the value is their JSON list).
CONTACT = "epiflow-contact"
#: Radius of the search of new places against live requests: the widest a place rule can reach.
_WIDEST_M = 5_000.0


@dataclass
class RequestPlaces:
    """The live requests' places, appended as requests arrive: row key = the request's number in `owners`.

    A request read again under its topic key gets a new number; the rows of its old number stay in the
    store but no longer count (`current`), until the stale rows outnumber the live ones and the owner rebuilds.
    """

    store: PlaceStore = field(default_factory=lambda: PlaceStore(chunk_size=1 << 16))
    owners: list[str] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)

    @property
    def live(self) -> int:
        return len(self.numbers)

    @property
    def stale(self) -> int:
        """Versions of requests read again since: their rows stay in the store but no longer count."""
        return len(self.owners) - len(self.numbers)

    def hold(self, request: TraceRequest) -> None:
        """Append `request`'s places (all but its origin) under a new number; an older version stops counting."""
        number = len(self.owners)
        self.owners.append(request.topic_key)
        self.numbers[request.topic_key] = number
        ps = [p for p in request.places if p.kind != "origin"]
        if ps:
            self.store.add([str(number)] * len(ps), [p.lon for p in ps], [p.lat for p in ps], [p.t_from for p in ps],
                           [p.t_to for p in ps])

    def current(self, number: int) -> bool:
        """Whether rows under `number` belong to the latest version of their request."""
        return self.numbers.get(self.owners[number]) == number


def has_header(headers: Any, name: str) -> bool:
    if not headers:
        return False
    items = headers.items() if hasattr(headers, "items") else headers
    return any(k == name for k, _ in items)


@dataclass
class Tracing:
    """One worker's side of tracing: the live requests it has read, and the counts tests wait on."""

    agents: Any
    contacts: Any
    topic: str
    requests: dict[str, TraceRequest] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    counts: dict[str, int] = field(default_factory=lambda: {
        "requests_published": 0, "requests_read": 0, "contact_records_sent": 0, "contact_records_joined": 0,
        "exposures_new": 0,
    })
    _held: RequestPlaces | None = None

    # -- the join's side ---------------------------------------------------------------------
    def exposures_of(self, key: bytes, partition: int) -> tuple[Exposure, ...]:
        return decode_exposures(self.contacts.get_in(key, partition))

    def incoming(self, events: Sequence[Any]) -> dict[bytes, list[Exposure]]:
        """Exposures carried by the batch's contact records, per person key."""
        out: dict[bytes, list[Exposure]] = {}
        for event in events:
            if has_header(event.headers, CONTACT):
                out.setdefault(event.key, []).extend(decode_exposures(event.value))
                self.counts["contact_records_joined"] += 1
        return out

    def exposures_for(
        self, keys: Sequence[bytes], partitions: dict[bytes, int], incoming: dict[bytes, list[Exposure]]
    ) -> tuple[dict[str, tuple[Exposure, ...]], dict[bytes, tuple[tuple[Exposure, ...], tuple[Exposure, ...]]]]:
        """Each batch person's exposures after the batch (by person key string, for the verdicts), and the
        (before, after) of those whose exposures changed."""
        if self.agents.runtime.rules is None or self.agents.runtime.rules.contacts is None:
            return {}, {}
        live: dict[str, tuple[Exposure, ...]] = {}
        changed: dict[bytes, tuple[tuple[Exposure, ...], tuple[Exposure, ...]]] = {}
        for key in keys:
            old = self.exposures_of(key, partitions[key])
            new = merge_exposures(old, incoming.get(key, ())) if key in incoming else old
            if new:
                live[key.decode()] = new
            if len(new) != len(old):
                changed[key] = (old, new)
                self.counts["exposures_new"] += len(new) - len(old)
        return live, changed

    async def after_batch(
        self, outcomes: Sequence[tuple[bytes, PersonState, PersonState]],
        changed: dict[bytes, tuple[tuple[Exposure, ...], tuple[Exposure, ...]]], partitions: dict[bytes, int],
    ) -> list[Awaitable[Any]]:
        """After the join wrote its states: store changed exposures, publish the requests that changed,
        and check new places against the live requests. Returns the delivery futures."""
        rules = self.agents.runtime.rules
        if rules is None or rules.contacts is None:
            return []
        contacts = rules.contacts
        deliveries = []
        rows = [(key, encode_exposures(new), partitions[key]) for key, (_, new) in changed.items()]
        if rows:
            deliveries += await self.contacts.put_many(rows)
        fresh: list[PersonState] = []
        for key, before, after in outcomes:
            places_changed = after.places != before.places
            if places_changed:
                fresh.append(after)
            if after.nats != before.nats or places_changed:
                request = close_request(after, contacts)
                if request is not None and request != close_request(before, contacts):
                    deliveries.append(await self.publish(request))
            old, new = changed.get(key, (None, None))
            if new is not None or places_changed:
                exposures = new if new is not None else self.exposures_of(key, partitions[key])
                request = secondary_request(after, exposures, contacts)
                previous = secondary_request(before, old if old is not None else exposures, contacts)
                if request is not None and request != previous:
                    deliveries.append(await self.publish(request))
        if fresh and self.requests:
            deliveries += await self._against_requests(fresh)
        return deliveries

    async def publish(self, request: TraceRequest) -> Awaitable[Any]:
        await self.ready.wait()
        self.counts["requests_published"] += 1
        return await self.agents.app.producer.send(self.topic, request.topic_key.encode(), encode_request(request),
                                                   None, None, None)

    async def _against_requests(self, states: Sequence[PersonState]) -> list[Awaitable[Any]]:
        """New places of the batch's people against every live request (the request came first)."""
        rules = self.agents.runtime.rules
        held = self._request_places()
        store, owners = held.store, held.owners
        keys: list[str] = []
        places = []
        for s in states:
            keys += [s.person_key] * len(s.places)
            places += s.places
        if not places or not len(store):
            return []
        near = near_in_time(store, [p.lon for p in places], [p.lat for p in places], [p.t_from for p in places],
                            [p.t_to for p in places], radius_m=_WIDEST_M, min_overlap_s=0)
        numbers = (int(n) for n in keys_of(near.key))
        pairs = {(owners[n], keys[int(q)]) for n, q in zip(numbers, near.query, strict=True) if held.current(n)}
        by_key = {s.person_key: s for s in states}
        found: dict[str, list[Exposure]] = {}
        for topic_key, person in sorted(pairs):
            request = self.requests.get(topic_key)
            if request is not None:
                hits = match(request, by_key[person], rules.contacts)
                if hits:
                    found.setdefault(person, []).extend(hits)
        return [await self._send_contact(key, exposures) for key, exposures in found.items()]

    def _request_places(self) -> RequestPlaces:
        """The live requests' places in one store whose key is the request's number (rebuilt when mostly stale)."""
        if self._held is None:
            self._held = RequestPlaces()
            for topic_key in sorted(self.requests):
                self._held.hold(self.requests[topic_key])
        return self._held

    async def _send_contact(self, person_key: str, exposures: Sequence[Exposure]) -> Awaitable[Any]:
        self.counts["contact_records_sent"] += 1
        topic = self.agents.topics.person_events.get_topic_name()
        return await self.agents.app.producer.send(
            topic, person_key.encode(), encode_exposures(exposures), None, None, {REEVALUATE: b"1", CONTACT: b"1"}
        )

    # -- every worker: read requests, search the places held here -----------------------------
    async def follow(self) -> None:
        """Read the trace topic from its start, then follow it; requests that arrive together are searched
        together against this worker's places (one pass over the store for all of them)."""
        rt = self.agents.runtime
        feed = control_log_for(rt.settings, self.topic)
        await feed.start()
        self.ready.set()
        queue: asyncio.Queue[tuple[bytes | None, bytes | None]] = asyncio.Queue()
        searching = asyncio.ensure_future(self._search_queued(queue))
        try:
            if rt.rules is None:
                await self.agents.control_ready.wait()
            for record in await feed.read_to_end():
                queue.put_nowait(record)
            async for record in feed.follow():
                queue.put_nowait(record)
        finally:
            searching.cancel()
            await feed.stop()

    async def _search_queued(self, queue: asyncio.Queue) -> None:
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            requests = [r for r in (self._read(key, value) for key, value in batch) if r is not None]
            if not requests:
                continue
            try:
                await asyncio.gather(*await self.search_many(requests))
            except Exception:  # one batch of requests never stops the reader
                log.exception("trace search failed topic=%s requests=%d", self.topic, len(requests))

    def _read(self, key: bytes | None, value: bytes | None) -> TraceRequest | None:
        self.counts["requests_read"] += 1
        if key is None or value is None:
            return None
        try:
            request = decode_request(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("trace request refused topic=%s reason=%s", self.topic, type(exc).__name__)
            return None
        self.requests[request.topic_key] = request
        if self._held is not None:
            self._held.hold(request)
            if self._held.stale > self._held.live:
                self._held = None
        return request

    async def search(self, request: TraceRequest) -> list[Awaitable[Any]]:
        """The request's contacts among the people this worker holds; each gets a contact record."""
        return await self.search_many([request])

    async def search_many(self, requests: Sequence[TraceRequest]) -> list[Awaitable[Any]]:
        """Each request's contacts among the people this worker holds; one contact record per contact and request."""
        from pipeline.contacts import candidates_many

        rt = self.agents.runtime
        if rt.rules is None or rt.rules.contacts is None:
            return []
        started = asyncio.get_running_loop().time()
        persons = self.agents.persons
        deliveries = []
        found = 0
        states: dict[str, PersonState | None] = {}
        for request, keys in zip(requests, candidates_many(requests, rt.places, rt.rules.contacts), strict=True):
            for person_key in keys:
                if person_key not in states:
                    key = person_key.encode()
                    raw = persons.get_in(key, persons.partition_for_key(key))
                    states[person_key] = state_from_bytes(raw) if raw else None
                state = states[person_key]
                hits = match(request, state, rt.rules.contacts) if state is not None else []
                if hits:
                    found += 1
                    rt.metrics.contacts_found.labels(degree=request.degree).inc()
                    deliveries.append(await self._send_contact(person_key, hits))
        rt.metrics.contact_search_seconds.observe(asyncio.get_running_loop().time() - started)
        log.info("trace requests=%d held=%d contacts=%d", len(requests), len(rt.places), found)
        return deliveries
