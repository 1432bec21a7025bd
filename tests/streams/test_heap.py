"""The worker's heap trimming: freed memory goes back to the OS on glibc, and a bad arena cap is refused."""

from __future__ import annotations

import platform

import psutil
import pytest

from streams.heap import limit_arenas, trim


def test_arena_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="arenas=0 must be at least 1"):
        limit_arenas(0)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_returns_freed_heap_to_the_os() -> None:
    process = psutil.Process()
    held = [bytes(1000) + bytes([i % 256]) for i in range(100_000)]  # ~100 MB of malloc blocks, freed below
    held_rss = process.memory_info().rss
    keep = held[-1]
    del held
    trim()
    assert keep and process.memory_info().rss < held_rss - 40 * 2**20
