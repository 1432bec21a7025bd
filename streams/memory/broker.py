"""The in-process broker: topics, partitions, records and committed offsets per group, one per URL."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from faust.transport.consumer import ensure_TP
from faust.types import TP, HeadersArg, RecordMetadata
from yarl import URL

from streams.errors import PartitionOutOfRange, TopicPartitionsMismatch, UnknownTopic
from streams.partitioner import key_partition

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
