"""The Faust driver over the in-process broker: a consumer group of one member that owns every partition."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, ClassVar

import faust
from faust.exceptions import ImproperlyConfigured
from faust.transport import base
from faust.transport.consumer import RecordMap, ensure_TP
from faust.types import TP, ConsumerMessage, HeadersArg, RecordMetadata
from faust.types.enums import ProcessingGuarantee
from mode.utils.times import Seconds
from yarl import URL

from streams.errors import ExactlyOnceUnsupported, MemoryTransportError, PartitionOutOfRange, UnknownTopic
from streams.memory.broker import (
    _TIMESTAMP_TYPE_CREATE_TIME,
    MEMBER_ID,
    RESUBSCRIBE_SLEEP_SECONDS,
    MemoryBroker,
    _Entry,
    get_broker,
)

logger = logging.getLogger(__name__)


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


class _CreatesTopics:
    """`create_topic` for both driver halves: Faust asks the consumer for tables and the producer for topics."""

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


class Consumer(_CreatesTopics, base.Consumer):
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


class Producer(_CreatesTopics, base.Producer):
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
