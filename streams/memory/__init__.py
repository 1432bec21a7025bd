"""An in-process ``memory://`` transport for Faust: the unchanged app runs with no broker.

One :class:`MemoryBroker` per broker URL lives in the process (`broker.py`: topics, partitions,
records, committed offsets per group); the driver classes (`driver.py`) give Faust a consumer
group of one member that owns every partition, so agents, ``group_by``, tables with changelog
recovery, timers and web views behave as on Kafka.
"""

from __future__ import annotations

from streams.errors import (
    ExactlyOnceUnsupported,
    MemoryTransportError,
    PartitionOutOfRange,
    TopicPartitionsMismatch,
    UnknownTopic,
)
from streams.memory.broker import MemoryBroker, StoredRecord, drop_broker, get_broker, reset_brokers
from streams.memory.driver import Conductor, Consumer, Producer, Transport
from streams.partitioner import key_partition, murmur2

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
