"""An in-process ``memory://`` transport for Faust: the unchanged app runs with no broker.

One :class:`MemoryBroker` per broker URL lives in the process (topics, partitions,
records, committed offsets per group); the driver classes below give Faust a
consumer group of one member that owns every partition, so agents, ``group_by``,
tables with changelog recovery, timers and web views behave as on Kafka.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import faust
from faust.exceptions import ImproperlyConfigured
from faust.transport import base
from faust.transport.consumer import RecordMap, ensure_TP
from faust.types import TP, ConsumerMessage, HeadersArg, RecordMetadata
from faust.types.enums import ProcessingGuarantee
from mode.utils.times import Seconds
from yarl import URL

__all__ = [
    "Conductor",
    "Consumer",
    "ExactlyOnceUnsupported",
    "MemoryBroker",
    "MemoryTransportError",
    "PartitionOutOfRange",
    "Producer",
    "StoredRecord",
    "TopicPartitionsMismatch",
    "Transport",
    "UnknownTopic",
    "drop_broker",
    "get_broker",
    "key_partition",
    "murmur2",
    "reset_brokers",
]

logger = logging.getLogger(__name__)

#: Kafka's limit on topic name length (``TOPIC_LENGTH_MAX`` in the aiokafka driver).
TOPIC_NAME_MAX = 249
#: Partition count of a topic created implicitly (first send or subscribe), like
#: Kafka's ``num.partitions`` default; ``memory://?partitions=N`` changes it.
DEFAULT_AUTO_PARTITIONS = 1
#: Seconds the conductor waits to coalesce topic changes before resubscribing
#: (Faust's default of 45 s would stall any topic added after start).
RESUBSCRIBE_SLEEP_SECONDS = 0.5
#: The single member of every consumer group on this broker.
MEMBER_ID = "memory-member"
_TIMESTAMP_TYPE_CREATE_TIME = 0


class MemoryTransportError(Exception):
    """Base class of errors raised by the in-process broker and its driver."""


class TopicPartitionsMismatch(MemoryTransportError):
    """A topic was created again with a different partition count."""


class UnknownTopic(MemoryTransportError):
    """The topic does not exist on the in-process broker."""


class PartitionOutOfRange(MemoryTransportError):
    """A partition number outside ``0 .. partitions - 1`` of its topic."""


class ExactlyOnceUnsupported(MemoryTransportError, ImproperlyConfigured):
    """``processing_guarantee='exactly_once'`` was asked of the ``memory://`` transport."""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record of a partition as the broker holds it (timestamp in ms since the epoch)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class _Entry(NamedTuple):
    """A record in a partition log; a tuple, since the fetch path builds one message per entry."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


# --- partitioning -------------------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` (same value as the Java client and kafka-python)."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    h = (seed ^ length) & mask
    n_words = length // 4
    for (k,) in struct.iter_unpack("<I", data[: n_words * 4]):
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = n_words * 4
    extra = length & 3
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def key_partition(key: bytes | bytearray | memoryview | str, partitions: int) -> int:
    """Partition of a keyed record among ``partitions``, as Kafka's default partitioner picks it."""
    if isinstance(key, str):
        key = key.encode()
    elif not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"key must be bytes or str to be partitioned, got {type(key).__name__}: {key!r}")
    if not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be a positive int, got {partitions!r}")
    return (murmur2(bytes(key)) & 0x7FFFFFFF) % partitions


# --- the broker ---------------------------------------------------------------------------------


class _TopicLog:
    __slots__ = ("name", "partitions", "config", "_round_robin")

    def __init__(self, name: str, partitions: int, config: Mapping[str, Any] | None) -> None:
        self.name = name
        self.partitions: list[list[_Entry]] = [[] for _ in range(partitions)]
        self.config = dict(config or {})
        self._round_robin = itertools.count()

    def next_round_robin(self) -> int:
        return next(self._round_robin) % len(self.partitions)


def _check_topic_name(topic: str) -> None:
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic must be a non-empty str, got {topic!r}")
    if len(topic) > TOPIC_NAME_MAX:
        raise ValueError(f"topic name {topic!r} is too long ({len(topic)} > {TOPIC_NAME_MAX})")


def _normalise_headers(headers: HeadersArg | Iterable[tuple[str, bytes]] | None) -> list[tuple[str, bytes]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return [tuple(h) for h in headers]  # type: ignore[misc]


class MemoryBroker:
    """Topics → partitions → records, and committed offsets per consumer group, in this process.

    Thread-safe for appends and topic creation; consumers on an event loop register a
    wake-up callback and sleep until a record arrives, so an idle worker costs nothing.
    """

    def __init__(self, name: str = "", *, auto_partitions: int = DEFAULT_AUTO_PARTITIONS) -> None:
        if not isinstance(auto_partitions, int) or auto_partitions < 1:
            raise ValueError(f"auto_partitions must be a positive int, got {auto_partitions!r}")
        self.name = name
        self.auto_partitions = auto_partitions
        self._topics: dict[str, _TopicLog] = {}
        self._committed: dict[str, dict[TP, int]] = {}
        self._lock = threading.RLock()
        self._waiters: set[Callable[[TP], None]] = set()

    def __repr__(self) -> str:
        return f"MemoryBroker({self.name!r}, topics={len(self._topics)})"

    # topics
    def create_topic(self, topic: str, partitions: int, *, config: Mapping[str, Any] | None = None) -> bool:
        """Create ``topic``; True if created, False if it exists with that count (a different count raises)."""
        _check_topic_name(topic)
        if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
            raise ValueError(f"partitions must be a positive int, got {partitions!r}")
        with self._lock:
            existing = self._topics.get(topic)
            if existing is not None:
                if len(existing.partitions) != partitions:
                    raise TopicPartitionsMismatch(
                        f"topic {topic!r} exists with {len(existing.partitions)} partitions, "
                        f"cannot create it with {partitions}; use the existing count or another name"
                    )
                return False
            self._topics[topic] = _TopicLog(topic, partitions, config)
            return True

    def ensure_topic(self, topic: str) -> int:
        """Partition count of ``topic``, creating it with the broker's default count if missing."""
        log = self._topics.get(topic)
        if log is None:
            _check_topic_name(topic)
            with self._lock:
                log = self._topics.get(topic)
                if log is None:
                    log = self._topics[topic] = _TopicLog(topic, self.auto_partitions, None)
                    logger.debug("auto-created topic %r with %d partitions", topic, self.auto_partitions)
        return len(log.partitions)

    def has_topic(self, topic: str) -> bool:
        """Whether ``topic`` exists."""
        return topic in self._topics

    def topics(self) -> list[str]:
        """Names of all topics, sorted."""
        return sorted(self._topics)

    def partition_count(self, topic: str) -> int | None:
        """Number of partitions of ``topic``, or None if it does not exist."""
        log = self._topics.get(topic)
        return None if log is None else len(log.partitions)

    def topic_config(self, topic: str) -> dict[str, Any]:
        """The config the topic was created with (empty for auto-created topics)."""
        return dict(self._log(topic).config)

    def _log(self, topic: str) -> _TopicLog:
        log = self._topics.get(topic)
        if log is None:
            raise UnknownTopic(f"topic {topic!r} does not exist on broker {self.name or 'memory://'!r}")
        return log

    def _partition_log(self, topic: str, partition: int) -> list[_Entry]:
        log = self._log(topic)
        if not isinstance(partition, int) or not 0 <= partition < len(log.partitions):
            raise PartitionOutOfRange(
                f"partition {partition!r} of topic {topic!r} is out of range 0..{len(log.partitions) - 1}"
            )
        return log.partitions[partition]

    # records
    def key_partition(self, topic: str, key: bytes | None) -> int:
        """Partition a record with ``key`` goes to (murmur2 as on Kafka; keyless: round-robin)."""
        log = self._log(topic)
        if key is None:
            return log.next_round_robin()
        return key_partition(key, len(log.partitions))

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: HeadersArg | Iterable[tuple[str, bytes]] | None = None,
        timestamp: float | None = None,
    ) -> RecordMetadata:
        """Append one record (topic auto-created if missing); ``timestamp`` in seconds, default now."""
        if key is not None and not isinstance(key, bytes):
            raise TypeError(f"key must be bytes or None, got {type(key).__name__}: {key!r}")
        if value is not None and not isinstance(value, bytes):
            raise TypeError(f"value must be bytes or None, got {type(value).__name__}: {value!r:.80}")
        self.ensure_topic(topic)
        if partition is None:
            partition = self.key_partition(topic, key)
        timestamp_ms = int((time.time() if timestamp is None else timestamp) * 1000.0)
        entries = self._partition_log(topic, partition)
        with self._lock:
            offset = len(entries)
            entries.append(_Entry(offset, timestamp_ms, key, value, _normalise_headers(headers)))
            waiters = list(self._waiters) if self._waiters else ()
        tp = TP(topic, partition)
        for wake in waiters:
            wake(tp)
        return RecordMetadata(
            topic=topic,
            partition=partition,
            topic_partition=tp,
            offset=offset,
            timestamp=timestamp_ms / 1000.0,
            timestamp_type=_TIMESTAMP_TYPE_CREATE_TIME,
        )

    def records(self, topic: str, partition: int, start: int = 0) -> list[StoredRecord]:
        """Records of one partition from offset ``start`` on, in offset order."""
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be an offset >= 0, got {start!r}")
        entries = self._partition_log(topic, partition)[start:]
        return [
            StoredRecord(topic, partition, e.offset, e.timestamp, e.key, e.value, tuple(e.headers))
            for e in entries
        ]

    def all_records(self, topic: str) -> list[StoredRecord]:
        """Records of every partition of ``topic``, partition by partition."""
        return [r for p in range(len(self._log(topic).partitions)) for r in self.records(topic, p)]

    def end_offset(self, topic: str, partition: int) -> int:
        """Log end offset (offset the next record gets) of one partition."""
        return len(self._partition_log(topic, partition))

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Log end offset of every partition of ``topic``."""
        return {p: len(entries) for p, entries in enumerate(self._log(topic).partitions)}

    def _entries(self, topic: str, partition: int) -> list[_Entry]:
        return self._topics[topic].partitions[partition]

    # consumer groups
    def commit(self, group: str, offsets: Mapping[TP, int]) -> None:
        """Store committed offsets (the next offset to read) of ``group``."""
        for tp, offset in offsets.items():
            self._partition_log(tp.topic, tp.partition)
            if not isinstance(offset, int) or offset < 0:
                raise ValueError(f"committed offset of {tp} must be an int >= 0, got {offset!r}")
        with self._lock:
            self._committed.setdefault(group, {}).update({ensure_TP(tp): o for tp, o in offsets.items()})

    def committed(self, group: str, tp: TP) -> int | None:
        """Committed offset of ``group`` for ``tp``, or None if it never committed there."""
        return self._committed.get(group, {}).get(ensure_TP(tp))

    def committed_offsets(self, group: str) -> dict[TP, int]:
        """All committed offsets of ``group``."""
        return dict(self._committed.get(group, {}))

    # wake-ups
    def add_waiter(self, wake: Callable[[TP], None]) -> None:
        """Call ``wake(tp)`` after every append (to partition ``tp``) until removed."""
        with self._lock:
            self._waiters.add(wake)

    def remove_waiter(self, wake: Callable[[TP], None]) -> None:
        """Stop calling ``wake``."""
        with self._lock:
            self._waiters.discard(wake)

    def reset(self) -> None:
        """Forget all topics, records and committed offsets."""
        with self._lock:
            self._topics.clear()
            self._committed.clear()


_BROKERS: dict[str, MemoryBroker] = {}
_BROKERS_LOCK = threading.Lock()


def _broker_name(url: str | URL) -> tuple[str, int]:
    parsed = url if isinstance(url, URL) else URL(str(url))
    if parsed.scheme not in ("memory", ""):
        raise ValueError(f"broker URL must be memory://[name], got {str(url)!r}")
    name = f"{parsed.host or ''}{parsed.path if parsed.path != '/' else ''}"
    raw_partitions = parsed.query.get("partitions")
    if raw_partitions is None:
        return name, DEFAULT_AUTO_PARTITIONS
    if not raw_partitions.isdigit() or int(raw_partitions) < 1:
        raise ValueError(f"partitions in {str(url)!r} must be a positive int, got {raw_partitions!r}")
    return name, int(raw_partitions)


def get_broker(url: str | URL = "memory://") -> MemoryBroker:
    """The process's broker for ``url`` (``memory://`` and ``memory://name`` are distinct brokers)."""
    name, auto_partitions = _broker_name(url)
    with _BROKERS_LOCK:
        broker = _BROKERS.get(name)
        if broker is None:
            broker = _BROKERS[name] = MemoryBroker(name, auto_partitions=auto_partitions)
        return broker


def drop_broker(url: str | URL = "memory://") -> None:
    """Forget the broker for ``url``; the next :func:`get_broker` starts an empty one."""
    name, _ = _broker_name(url)
    with _BROKERS_LOCK:
        broker = _BROKERS.pop(name, None)
    if broker is not None:
        broker.reset()


def reset_brokers() -> None:
    """Forget every broker in the process."""
    with _BROKERS_LOCK:
        brokers = list(_BROKERS.values())
        _BROKERS.clear()
    for broker in brokers:
        broker.reset()


# --- the Faust driver ---------------------------------------------------------------------------


def _refuse_exactly_once(app: Any) -> None:
    if app.conf.processing_guarantee == ProcessingGuarantee.EXACTLY_ONCE:
        raise ExactlyOnceUnsupported(
            "processing_guarantee='exactly_once' is not supported on the memory:// transport "
            "(at-least-once only); use processing_guarantee='at_least_once' or a kafka:// broker"
        )


class _ClusterView:
    """What Faust's partition assignor reads of cluster metadata: partitions per topic."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self._broker.partition_count(topic)
        return None if count is None else set(range(count))


class Consumer(base.Consumer):
    """A consumer group of one member that is assigned every partition of its subscription."""

    logger = logging.getLogger(f"{__name__}.Consumer")  # type: ignore[assignment]

    _assigned: set[TP]
    _positions: dict[TP, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _refuse_exactly_once(self.app)
        self.broker: MemoryBroker = self.transport.broker  # type: ignore[attr-defined]
        self._assigned = set()
        self._positions = {}
        self._subscription: set[str] = set()
        self._rebalance_task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._wakeup_loop: asyncio.AbstractEventLoop | None = None
        self._watched: set[TP] = set()

    @property
    def group_id(self) -> str:
        """Consumer group id: the app id, as Faust uses on Kafka."""
        return str(self.app.conf.id)

    # subscription and rebalance
    async def subscribe(self, topics: Iterable[str]) -> None:
        """Subscribe to ``topics`` (missing ones are created) and rebalance in a separate task."""
        topic_set = set(topics)
        for topic in topic_set:
            self.broker.ensure_topic(topic)
        self._subscription = topic_set
        previous = self._rebalance_task
        self._rebalance_task = asyncio.ensure_future(self._rebalance(topic_set, previous))

    async def _rebalance(self, topics: set[str], previous: asyncio.Task | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        if self.should_stop:
            return
        app = self.app
        try:
            app.on_rebalance_start()
            await self.on_partitions_revoked(set(self._assigned))
            assigned = self._assign(topics)
            self._assigned = assigned
            self._reset_positions(assigned)
            app.consumer_generation_id += 1
            generation_id = app.consumer_generation_id
            await self.on_partitions_assigned(set(assigned), generation_id=generation_id)
            self._wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.exception("rebalance on memory:// failed: %r", exc)
            await self.crash(exc)

    def _assign(self, topics: set[str]) -> set[TP]:
        """Run Faust's own partition assignor for a group of one, so its state is what Kafka gives."""
        assignor = self.app.assignor
        metadata = assignor.metadata(topics)
        assignment = assignor.assign(_ClusterView(self.broker), {MEMBER_ID: metadata})[MEMBER_ID]
        assignor.on_assignment(assignment)
        return {
            TP(topic, partition) for topic, partitions in assignment.assignment for partition in partitions
        }

    def _reset_positions(self, assigned: set[TP]) -> None:
        """After an (eager) rebalance every partition starts from its committed offset or the reset policy."""
        latest = str(self.app.conf.consumer_auto_offset_reset).lower() == "latest"
        positions: dict[TP, int] = {}
        for tp in assigned:
            committed = self.broker.committed(self.group_id, tp)
            if committed is not None:
                positions[tp] = committed
            else:
                positions[tp] = self.broker.end_offset(tp.topic, tp.partition) if latest else 0
        self._positions = positions

    def assignment(self) -> set[TP]:
        """Partitions currently assigned (all partitions of the subscribed topics)."""
        return set(self._assigned)

    # fetching
    def _wake(self) -> None:
        event = self._wakeup
        if event is None:
            return
        loop = self._wakeup_loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def _fetch(self, active_partitions: set[TP] | None) -> RecordMap:
        if not self.flow_active:
            return {}
        tps = self._assigned if active_partitions is None else active_partitions
        budget = int(self.app.conf.broker_max_poll_records or 500)
        positions = self._positions
        entries_of = self.broker._entries
        records: dict[TP, list[_Entry]] = {}
        for tp in list(tps):
            position = positions.get(tp)
            if position is None:
                continue
            entries = entries_of(tp.topic, tp.partition)
            if position < len(entries):
                batch = entries[position : position + budget]
                records[tp] = batch
                positions[tp] = position + len(batch)
                budget -= len(batch)
                if budget <= 0:
                    break
        return records

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        records = self._fetch(active_partitions)
        if records or timeout <= 0:
            return records
        event = self._wakeup
        if event is None or self._wakeup_loop is not asyncio.get_running_loop():
            event = self._wakeup = asyncio.Event()
            self._wakeup_loop = asyncio.get_running_loop()
        event.clear()
        self._watched = self._assigned if active_partitions is None else active_partitions
        self.broker.add_waiter(self._on_append)
        try:
            records = self._fetch(active_partitions)
            if records:
                return records
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                return {}
            return self._fetch(active_partitions)
        finally:
            self.broker.remove_waiter(self._on_append)

    def _on_append(self, tp: TP) -> None:
        # The watched set is the consumer's live set of active partitions, so a record for a
        # paused or buffered partition does not wake the fetcher only to find nothing to fetch.
        if tp in self._watched:
            self._wake()

    def on_buffer_drop(self, tp: TP) -> None:
        """A stream buffer drained below its limit: fetch from ``tp`` again without waiting."""
        super().on_buffer_drop(tp)
        self._wake()

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        """Resume fetching from partitions, waking a fetch that waits on the old set."""
        super().resume_partitions(tps)
        self._wake()

    def resume_flow(self) -> None:
        """Allow processing again, waking a waiting fetch."""
        super().resume_flow()
        self._wake()

    def _to_message(self, tp: TP, record: _Entry) -> ConsumerMessage:
        key = record.key
        value = record.value
        return ConsumerMessage(
            tp.topic,
            tp.partition,
            record.offset,
            record.timestamp / 1000.0,
            _TIMESTAMP_TYPE_CREATE_TIME,
            record.headers,
            key,
            value,
            None,
            len(key) if key is not None else 0,
            len(value) if value is not None else 0,
            tp,
            generation_id=self.app.consumer_generation_id,
        )

    def _new_topicpartition(self, topic: str, partition: int) -> TP:
        return TP(topic, partition)

    # offsets
    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        committable = {tp: offset for tp, offset in offsets.items() if tp in self._assigned}
        if not committable:
            return False
        self.broker.commit(self.group_id, committable)
        return True

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Committed offset per assigned partition (None if none); move there only when committed > 0."""
        committed: dict[TP, int] = {}
        for tp in self._assigned:
            offset = self.broker.committed(self.group_id, tp)
            committed[tp] = offset  # type: ignore[assignment]
            if offset:
                self._positions[tp] = offset
        return committed

    async def _seek(self, partition: TP, offset: int) -> None:
        self._set_position(ensure_TP(partition), offset)

    def _set_position(self, tp: TP, offset: int) -> None:
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset to seek {tp} to must be an int >= 0, got {offset!r}")
        if tp not in self._assigned:
            raise MemoryTransportError(
                f"cannot seek {tp}: partition is not assigned ({len(self._assigned)} are)"
            )
        self._positions[tp] = offset
        self._wake()

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        """Seek partitions to offsets (done at once in memory) and align Faust's read offsets."""
        for tp, offset in partitions.items():
            tp = ensure_TP(tp)
            self._set_position(tp, offset)
            if offset > 0:
                self._read_offset[tp] = offset
            else:
                self._read_offset.pop(tp, None)

    async def seek_to_beginning(self, *partitions: TP) -> None:
        """Seek partitions (default: all assigned) to offset 0."""
        for tp in partitions or tuple(self._assigned):
            self._set_position(ensure_TP(tp), 0)

    async def position(self, tp: TP) -> int | None:
        """Offset of the next record to be fetched from ``tp``, or None if not assigned."""
        return self._positions.get(ensure_TP(tp))

    def highwater(self, tp: TP) -> int:
        """Log end offset of ``tp`` (last offset + 1)."""
        return self.broker.end_offset(tp.topic, tp.partition)

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """Log end offsets of ``partitions``."""
        return {tp: self.broker.end_offset(tp.topic, tp.partition) for tp in partitions}

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        """Log start offsets: always 0, nothing is deleted or compacted in memory."""
        return {tp: 0 for tp in partitions}

    def topic_partitions(self, topic: str) -> int | None:
        """Partition count of ``topic``, None if it does not exist."""
        return self.broker.partition_count(topic)

    def key_partition(self, topic: str, key: bytes | None, partition: int | None = None) -> int | None:
        """Partition for ``key`` on ``topic`` (same hash as the producer); None if the topic is unknown."""
        count = self.broker.partition_count(topic)
        if count is None:
            return None
        if partition is not None:
            if not 0 <= partition < count:
                raise PartitionOutOfRange(
                    f"partition {partition!r} of topic {topic!r} is out of range 0..{count - 1}"
                )
            return partition
        return self.broker.key_partition(topic, key)

    async def create_topic(
        self,
        topic: str,
        partitions: int,
        replication: int,
        *,
        config: Mapping[str, Any] | None = None,
        timeout: Seconds = 30.0,
        retention: Seconds | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        ensure_created: bool = False,
    ) -> None:
        """Create ``topic`` on the in-process broker (idempotent for the same partition count)."""
        _declare(self, topic, partitions, _topic_config(config, retention, compacting, deleting))

    async def on_stop(self) -> None:
        """Commit what is acked, then drop the pending rebalance and the broker wake-up."""
        await super().on_stop()
        task, self._rebalance_task = self._rebalance_task, None
        if task is not None and not task.done():
            task.cancel()
        self.broker.remove_waiter(self._on_append)

    def close(self) -> None:
        """Nothing to close: the broker outlives the consumer."""
        self.broker.remove_waiter(self._on_append)


def _declare(owner: Any, topic: str, partitions: int, config: dict[str, Any]) -> None:
    """What both the consumer's and the producer's ``create_topic`` do, unless the app forbids declaring."""
    if not owner.app.conf.topic_allow_declare:
        owner.log.warning("Topic creation disabled! Can't create topic %s", topic)
        return
    owner.broker.create_topic(topic, partitions, config=config)


def _topic_config(
    config: Mapping[str, Any] | None,
    retention: Seconds | None,
    compacting: bool | None,
    deleting: bool | None,
) -> dict[str, Any]:
    merged = dict(config or {})
    if retention is not None:
        merged["retention.ms"] = int(float(retention) * 1000)
    policies = [name for name, on in (("compact", compacting), ("delete", deleting)) if on]
    if policies:
        merged["cleanup.policy"] = ",".join(policies)
    return merged


class Producer(base.Producer):
    """Appends to the in-process broker at once; the returned future is already resolved.

    It never creates a topic by sending to it: only a declaration (``create_topic``) does. A send
    that beat the declaration would otherwise create the topic with the broker's default count, and
    the declaration with the app's count would then fail (`TopicPartitionsMismatch`)."""

    logger = logging.getLogger(f"{__name__}.Producer")  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _refuse_exactly_once(self.app)
        if self.app.conf.producer_threaded:
            raise ImproperlyConfigured("producer_threaded is not supported on the memory:// transport")
        self.broker: MemoryBroker = self.transport.broker  # type: ignore[attr-defined]
        self._send_on_produce_message = self.app.on_produce_message.send

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        """Append the record now and return a resolved future of its metadata."""
        if transactional_id is not None:
            _refuse_exactly_once(self.app)
        if not self.broker.has_topic(topic):
            raise UnknownTopic(
                f"topic {topic!r} does not exist on broker {self.broker.name or 'memory://'!r}: declare it first "
                "(the producer creates no topics, so none gets the broker's default partition count)"
            )
        if headers is not None and isinstance(headers, Mapping):
            headers = list(headers.items())
        self._send_on_produce_message(
            key=key, value=value, partition=partition, timestamp=timestamp, headers=headers
        )
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        future.set_result(self.broker.append(topic, key, value, partition, headers, timestamp))
        return future

    async def send_and_wait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> RecordMetadata:
        """Append the record and return its metadata."""
        future = await self.send(
            topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
        )
        return await future

    async def flush(self) -> None:
        """Wait for Faust's producer buffer to drain (the broker itself has nothing in flight)."""
        await self.buffer.flush()

    async def create_topic(
        self,
        topic: str,
        partitions: int,
        replication: int,
        *,
        config: Mapping[str, Any] | None = None,
        timeout: Seconds = 20.0,
        retention: Seconds | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        ensure_created: bool = False,
    ) -> None:
        """Create ``topic`` on the in-process broker (idempotent for the same partition count)."""
        _declare(self, topic, partitions, _topic_config(config, retention, compacting, deleting))

    def key_partition(self, topic: str, key: bytes) -> TP:
        """Partition for ``key`` on an existing ``topic``, as the consumer computes it."""
        return TP(topic, self.broker.key_partition(topic, key))

    def supports_headers(self) -> bool:
        """Headers are kept with every record."""
        return True

    async def begin_transaction(self, transactional_id: str) -> None:
        """Refused: transactions only serve exactly-once, which memory:// does not offer."""
        _refuse_exactly_once_always()

    async def commit_transaction(self, transactional_id: str) -> None:
        """Refused, see :meth:`begin_transaction`."""
        _refuse_exactly_once_always()

    async def abort_transaction(self, transactional_id: str) -> None:
        """Refused, see :meth:`begin_transaction`."""
        _refuse_exactly_once_always()

    async def stop_transaction(self, transactional_id: str) -> None:
        """Refused, see :meth:`begin_transaction`."""
        _refuse_exactly_once_always()

    async def maybe_begin_transaction(self, transactional_id: str) -> None:
        """Refused, see :meth:`begin_transaction`."""
        _refuse_exactly_once_always()

    async def commit_transactions(
        self,
        tid_to_offset_map: Mapping[str, Mapping[TP, int]],
        group_id: str,
        start_new_transaction: bool = True,
    ) -> None:
        """Refused, see :meth:`begin_transaction`."""
        _refuse_exactly_once_always()


def _refuse_exactly_once_always() -> None:
    raise ExactlyOnceUnsupported(
        "transactions (processing_guarantee='exactly_once') are not supported on the memory:// "
        "transport (at-least-once only)"
    )


class Conductor(base.Conductor):
    """Faust's conductor, resubscribing within half a second when topics are added."""

    _resubscribe_sleep_lock_seconds: float = RESUBSCRIBE_SLEEP_SECONDS


class Transport(base.Transport):
    """The ``memory://`` transport: registered under the ``faust.transports`` entry point."""

    Consumer: ClassVar[type[Consumer]] = Consumer  # type: ignore[assignment,misc]
    Producer: ClassVar[type[Producer]] = Producer  # type: ignore[assignment,misc]
    Conductor: ClassVar[type[Conductor]] = Conductor  # type: ignore[assignment,misc]

    driver_version = f"memory=faust-{faust.__version__}"

    def __init__(self, url: list[URL], app: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not url:
            raise ValueError(f"memory transport needs a broker URL, got {url!r}")
        super().__init__(url, app, loop=loop)
        self.broker = get_broker(url[0])
