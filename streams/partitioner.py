"""Kafka's default partitioner (murmur2 of the key), shared by the in-process broker and the tables."""

from __future__ import annotations

import struct

__all__ = ["key_partition", "murmur2"]


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
