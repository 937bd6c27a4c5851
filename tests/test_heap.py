"""The worker's heap trimming: real glibc, in fresh interpreters (a clean allocator each)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import faust
import pytest

from app import heap
from pipeline.processes import REPO

pytestmark = pytest.mark.skipif(not heap.can_trim(), reason="glibc only (the CI machine has it)")

RSS_MB = """
def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
"""


def run_python(body: str) -> dict:
    script = RSS_MB + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_trim_returns_pages_freed_between_live_values():
    # Record-sized values, one in eight kept: the freed ones are scattered among live ones, as
    # after a backlog, so glibc cannot give them back by shrinking the heap's end.
    measured = run_python("""
        import json
        from app.heap import trim_free_heap
        base = rss_mb()
        values = [bytes(2048) + i.to_bytes(4, "little") for i in range(60_000)]
        kept = values[::8]
        del values
        retained = rss_mb() - base
        trim_free_heap()
        print(json.dumps({"retained": retained, "after_trim": rss_mb() - base, "kept": len(kept)}))
    """)
    assert measured["retained"] > 80, measured  # the allocator kept ~105 MB of freed values
    assert measured["after_trim"] < measured["retained"] - 60, measured


def test_large_allocations_stay_mapped_after_a_free():
    # glibc's own threshold rises to the size of a freed mapping, so the next fetch-sized buffer
    # comes from the heap; the fixed threshold keeps serving it from its own mapping.
    body = """
        import ctypes, json
        from app.heap import map_large_allocations
        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                        "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        if FIXED:
            map_large_allocations()
        first = bytearray(4 << 20)
        del first
        second = bytearray(4 << 20)
        print(json.dumps({"mapped_mb": libc.mallinfo2().hblkhd / (1 << 20)}))
    """
    glibc_default = run_python("FIXED = False\n" + textwrap.dedent(body))
    fixed = run_python("FIXED = True\n" + textwrap.dedent(body))
    assert glibc_default["mapped_mb"] < 4, glibc_default
    assert fixed["mapped_mb"] >= 4, fixed


def task_names(app: faust.App) -> list[str]:
    return [task.__name__ for task in app._app_tasks]


def test_the_worker_trims_on_a_timer_by_default_and_zero_turns_it_off():
    from app.faust_app import app as worker_app

    untrimmed = faust.App("heap-test-off", broker="kafka://127.0.0.1:1")
    heap.keep_heap_trimmed(untrimmed, 0)
    assert {"map_large_allocations_in_worker", "trim_heap"} <= set(task_names(worker_app))
    assert task_names(untrimmed) == []
