"""The worker's C heap: freed memory handed back to the OS, so RSS follows what the worker holds, not its peak.

A backlog is read in bursts (Faust's stream buffers, fetched batches, producer batches); once they are
freed, glibc keeps the pages in its arenas, and one arena per thread that allocated (the consumer
thread, RocksDB's background threads) multiplies what stays resident. `limit_arenas` caps the arena
count at start-up; `trim` returns free pages at the top and inside every arena (`malloc_trim(0)`).
On a C library other than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

__all__ = ["ARENA_MAX", "limit_arenas", "trim"]

log = logging.getLogger(__name__)

#: Malloc arenas a worker may use (glibc's default is 8 per core); the event loop and the consumer thread share them.
ARENA_MAX = 2
_M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas (before the worker starts its threads); False where that is not glibc."""
    if arenas < 1:
        raise ValueError(f"arenas={arenas!r} must be at least 1")
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give the heap's free pages back to the OS; True when some were released."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))
