"""Give the worker's freed heap back to the OS, so its RSS follows what it holds.

Kafka record values (1-3 KB) are too big for CPython's small-object allocator: they come from glibc
malloc, as do the multi-megabyte fetch buffers. When the worker falls behind for a few seconds (a
Spark micro-batch takes the CPU), thousands of them are alive at once. Once freed, glibc keeps
those pages, scattered among live ones, and RSS ratchets up to the largest backlog seen so far.
Measured in a 12-minute soak (docs/benchmark-history.md): Python objects and malloc'd bytes in use flat, RSS
84 -> 157 MB and still rising 6.4 MB a minute.

Two glibc settings fix it; elsewhere (musl, macOS) there is nothing to do and nothing is done:
- a fixed mmap threshold, so allocations of 256 KB or more (fetch buffers) are mapped and unmapped
  on their own instead of growing the heap (glibc's default threshold rises after each free);
- `malloc_trim(0)` on a timer, which returns the free pages inside the heap (~1 ms a call here).
"""
from __future__ import annotations

import ctypes
import logging

import faust

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 256 * 1024


def _load_glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt")):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


_glibc = _load_glibc()


def can_trim() -> bool:
    """True where the C library is glibc (the only one with these settings)."""
    return _glibc is not None


def map_large_allocations(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve allocations of `threshold_bytes` or more from their own mappings, for good."""
    return bool(_glibc and _glibc.mallopt(M_MMAP_THRESHOLD, threshold_bytes))


def trim_free_heap() -> bool:
    """Return free heap pages to the OS; False where there is nothing to call."""
    if _glibc is None:
        return False
    _glibc.malloc_trim(0)
    return True


def keep_heap_trimmed(app: faust.App, interval_seconds: float) -> None:
    """In the worker (not in every process importing the app): map large allocations from its
    start, and trim the heap every `interval_seconds`. 0 turns both off."""
    if interval_seconds <= 0 or not can_trim():
        return

    @app.task
    async def map_large_allocations_in_worker() -> None:
        if not map_large_allocations():
            log.warning("heap: glibc refused the mmap threshold; trimming only")

    @app.timer(interval_seconds)
    async def trim_heap() -> None:
        trim_free_heap()
