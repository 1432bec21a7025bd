"""Tables whose changelog partition comes from the key, the way the producer partitions their topics.

Faust picks a table write's changelog partition from the *current* event; a batched agent
(`take_events`) has no single current event, and leaving it to the producer needs metadata it may not
have yet. Kafka's default partitioner (murmur2 of the key) is what places person events and case
events, so computing it here keeps every key in its source partition on both transports.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust
from faust.tables.table import Table
from faust.types import TP

from streams.memory import key_partition

__all__ = ["ROCKSDB_OPTIONS", "KeyPartitionedTable", "raw_table"]


class KeyPartitionedTable(Table):
    """A Faust table that writes each key's changelog record to `murmur2(key) % partitions`."""

    def partition_for_key(self, key: Any) -> int:
        return key_partition(key, self.partitions)

    async def put(self, key: bytes, value: bytes) -> Awaitable[Any]:
        """Set `key` and hand its changelog record straight to the producer; returns the delivery future.

        `table[key] = value` goes through Faust's per-record producer buffer, which every commit and
        rebalance must drain one record at a time: under load that made commits and revocations
        overrun the session timeout. Raw bytes both ways, as the changelog is declared.
        """
        partition = self.partition_for_key(key)
        self.data[key] = value
        delivery = await self.app.producer.send(self.changelog_topic.get_topic_name(), key, value, partition, None, None)
        delivery.add_done_callback(lambda done: self._persisted(TP(self.changelog_topic.get_topic_name(), partition), done))
        return delivery

    def _persisted(self, tp: TP, delivery: Any) -> None:
        """What Faust's own changelog callback does: tell the store up to where the changelog holds its data."""
        if not delivery.cancelled() and delivery.exception() is None:
            self.data.set_persisted_offset(tp, delivery.result().offset)


#: RocksDB settings per partition database (Faust opens one per table and partition): small memtables and
#: block cache, so the worker's memory stays near its place store while the state sits on disk (Faust's
#: defaults are 3 x 64 MiB memtables and a 2 GiB cache, per database).
ROCKSDB_OPTIONS = {"write_buffer_size": 1 << 20, "max_write_buffer_number": 2, "block_cache_size": 2 << 20,
                   "target_file_size_base": 16 << 20}


def raw_table(app: faust.App, name: str, partitions: int) -> KeyPartitionedTable:
    """A bytes → bytes table (values are our own compact msgpack), with a raw changelog."""
    options = dict(ROCKSDB_OPTIONS) if app.conf.store.scheme == "rocksdb" else None
    table = KeyPartitionedTable(app, name=name, default=None, key_type=bytes, value_type=bytes, partitions=partitions,
                                options=options)
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return app.tables.add(table)
