"""Give the worker's freed heap back to the OS, so its RSS follows what it holds: glibc kept the
pages of record values and fetch buffers freed after each backlog, and RSS ratcheted up. glibc only;
elsewhere nothing is done. Why, and what was measured: docs/architecture.md, "Faust patches";
docs/benchmark-history.md, change 10.
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
