"""Tables whose reads and writes name their partition: the partition of the event being processed.

Faust picks a table key's partition from the *current* event, and its RocksDB store refuses a write
made without one (`assert event is not None` in `faust/stores/rocksdb.py`). A batched agent
(`take_events`) has no current event, and a batch spans partitions. The source topics are
co-partitioned with the tables, so the event's own partition is the key's partition: the agents pass
it, and each write goes to that partition's changelog and, on RocksDB, to that partition's database
(one write batch per partition). Both the memory and the RocksDB store work this way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

import faust
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.table import Table
from faust.types import TP

from streams.partitioner import key_partition

__all__ = ["ROCKSDB_OPTIONS", "KeyPartitionedTable", "raw_table"]


class KeyPartitionedTable(Table):
    """A bytes → bytes Faust table read and written with the partition given explicitly."""

    def partition_for_key(self, key: Any) -> int:
        """Where Kafka's default partitioner puts `key` (what a keyed producer picks for the source topics)."""
        return key_partition(key, self.partitions)

    def get_in(self, key: bytes, partition: int) -> bytes | None:
        """The value of `key` in `partition`, or None (on RocksDB only that partition's database is read)."""
        store = self.data
        if isinstance(store, RocksDBStore):
            value = store._db_for_partition(partition).get(key)
            if value is not None:
                store._key_index[key] = partition
            return value
        return store.get(key)

    async def put(self, key: bytes, value: bytes, partition: int) -> Awaitable[Any]:
        """Set `key` in `partition`; returns the delivery future of its changelog record."""
        return (await self.put_many([(key, value, partition)]))[0]

    async def put_many(self, rows: Sequence[tuple[bytes, bytes, int]]) -> list[Awaitable[Any]]:
        """Set each `(key, value, partition)` locally, then hand its changelog record to the producer.

        Returns the delivery futures, in order. `table[key] = value` would go through Faust's
        per-record producer buffer, which every commit and rebalance must drain one record at a time:
        under load that made commits and revocations overrun the session timeout.
        """
        store = self.data
        if isinstance(store, RocksDBStore):
            _write_rocksdb(store, rows)
        else:
            for key, value, _ in rows:
                store[key] = value
        topic = self.changelog_topic.get_topic_name()
        deliveries = []
        for key, value, partition in rows:
            delivery = await self.app.producer.send(topic, key, value, partition, None, None)
            delivery.add_done_callback(lambda done, tp=TP(topic, partition): self._persisted(tp, done))
            deliveries.append(delivery)
        return deliveries

    def _persisted(self, tp: TP, delivery: Any) -> None:
        """What Faust's own changelog callback does: tell the store up to where the changelog holds its data."""
        if not delivery.cancelled() and delivery.exception() is None:
            self.data.set_persisted_offset(tp, delivery.result().offset)


def _write_rocksdb(store: RocksDBStore, rows: Sequence[tuple[bytes, bytes, int]]) -> None:
    """One RocksDB write batch per partition; the store's key index learns where each key lives."""
    from rocksdict import WriteBatch

    batches: dict[int, Any] = {}
    for key, value, partition in rows:
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = WriteBatch(raw_mode=True)
        batch.put(key, value)
        store._key_index[key] = partition
    for partition, batch in batches.items():
        store._db_for_partition(partition).write(batch)


#: RocksDB settings per partition database (Faust opens one per table and partition, 8 for a 4-partition
#: worker): at most 2 x 512 KiB of memtables and a 1 MiB block cache each, so the worker's memory stays near
#: its place store while the state sits on disk; a read that misses the cache is served from the OS's page
#: cache, which is not the worker's. Faust's defaults are 3 x 64 MiB memtables and a 2 GiB cache per database.
ROCKSDB_OPTIONS = {"write_buffer_size": 512 << 10, "max_write_buffer_number": 2, "block_cache_size": 1 << 20,
                   "target_file_size_base": 16 << 20}


def raw_table(app: faust.App, name: str, partitions: int) -> KeyPartitionedTable:
    """A bytes → bytes table (values are our own compact msgpack), with a raw changelog."""
    options = dict(ROCKSDB_OPTIONS) if app.conf.store.scheme == "rocksdb" else None
    table = KeyPartitionedTable(app, name=name, default=None, key_type=bytes, value_type=bytes, partitions=partitions,
                                options=options)
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return app.tables.add(table)
