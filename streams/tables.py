"""Tables whose changelog partition comes from the key, the way the producer partitions their topics.

Faust picks a table write's changelog partition from the *current* event; a batched agent
(`take_events`) has no single current event, and leaving it to the producer needs metadata it may not
have yet. Kafka's default partitioner (murmur2 of the key) is what places person events and case
events, so computing it here keeps every key in its source partition on both transports.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.tables.table import Table

from streams.memory import key_partition

__all__ = ["KeyPartitionedTable", "raw_table"]


class KeyPartitionedTable(Table):
    """A Faust table that writes each key's changelog record to `murmur2(key) % partitions`."""

    def partition_for_key(self, key: Any) -> int:
        return key_partition(key, self.partitions)


def raw_table(app: faust.App, name: str, partitions: int) -> KeyPartitionedTable:
    """A bytes → bytes table (values are our own compact orjson), with a raw changelog."""
    table = KeyPartitionedTable(app, name=name, default=None, key_type=bytes, value_type=bytes, partitions=partitions)
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return app.tables.add(table)
