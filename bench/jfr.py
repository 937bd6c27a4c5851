"""Java Flight Recorder on the sink's driver JVM (with `local[*]` the executors run inside it).

The recording is written when the JVM exits; `jfr print` (in the JDK) turns its execution
samples into JSON, summed here like bench/profile.py sums py-spy's: self time per method (top of
the stack), and total time per method (anywhere on the stack, once per sample).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path


def jfr_options(recording: Path) -> str:
    return f"-XX:StartFlightRecording=filename={recording},settings=profile,dumponexit=true"


def summarize_jfr(recording: Path, top: int = 15) -> dict:
    binary = shutil.which("jfr")
    if binary is None:
        return {"error": "the JDK's jfr tool is not on PATH"}
    if not recording.exists():
        return {"error": f"no recording at {recording} (did the JVM exit normally?)"}
    printed = subprocess.run([binary, "print", "--json", "--events", "jdk.ExecutionSample", str(recording)],
                             capture_output=True, text=True, check=True).stdout
    events = json.loads(printed)["recording"]["events"]
    on_top: Counter = Counter()
    anywhere: Counter = Counter()
    threads: Counter = Counter()
    for event in events:
        values = event["values"]
        frames = (values.get("stackTrace") or {}).get("frames") or []
        methods = [_method(frame) for frame in frames]
        threads[_thread_kind(values["sampledThread"]["javaName"] or "")] += 1
        if methods:
            on_top[methods[0]] += 1
        anywhere.update(set(methods))
    count = len(events) or 1
    share = lambda counter: [{"method": m, "share": round(n / count, 3)} for m, n in counter.most_common(top)]
    return {
        "samples": len(events),
        "threads": [{"thread": t, "share": round(n / count, 3)} for t, n in threads.most_common(6)],
        "self": share(on_top),
        "total": share(anywhere),
        "file": str(recording),
    }


def _method(frame: dict) -> str:
    method = frame["method"]
    return f"{method['type']['name'].rsplit('.', 1)[-1]}.{method['name']}"


def _thread_kind(name: str) -> str:
    """Group numbered threads ("Executor task launch worker for task 3.0 ...") by their kind."""
    return name.split(" for ")[0].rstrip("0123456789- ")
