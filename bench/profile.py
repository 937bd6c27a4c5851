"""py-spy on a running process (optional: `pip install py-spy`; not a project requirement).

Records collapsed stacks ("raw" format, per thread) while attached, then sums one thread's samples:
self time per function (on top of the stack), self time per component (the project's module, else
the library), and total time of the project's own functions (anywhere on the stack, once per sample).
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


class PySpy:
    def __init__(self, popen: subprocess.Popen, output: Path):
        self.popen = popen
        self.output = output

    @classmethod
    def attach(cls, pid: int, output: Path, rate: int = 100) -> "PySpy":
        binary = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if binary is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        # Blocking mode (the process is paused for each sample): slower, but no torn stacks.
        command = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                   "--output", str(output), "--threads"]
        log = open(output.with_suffix(".log"), "wb")
        return cls(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), output)

    def finish(self, top: int = 12) -> dict:
        """Stop recording (py-spy writes its file on SIGINT) and summarize it."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self.output.exists():
            return {"error": f"py-spy wrote nothing; see {self.output.with_suffix('.log')}"}
        return summarize(self.output, top)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


_PROJECT = ("agents/", "app/", "spark_sink/", "bench/")


def _frame(frame: str) -> tuple[str, str]:
    """'normalize (/work/main/tweets/normalizer.py:123)' -> ('normalize (tweets/normalizer.py)',
    'tweets/normalizer.py'); a library frame's component is its top-level package or module."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), "?"
    path = match.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", str(Path(__file__).resolve().parents[1]) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    component = path if path.startswith(_PROJECT) else path.split("/", 1)[0].removesuffix(".py")
    return f"{match.group('function')} ({path})", component


def summarize(collapsed: Path, top: int = 12, thread: str = "MainThread") -> dict:
    """Shares of the samples of `thread` (the worker's event loop, where the agent runs), plus how
    the samples split between threads (Faust's consumer has a thread and event loop of its own)."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    by_component: Counter[str] = Counter()
    project_total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        parts = stack.split(";")
        name = parts[0].split(": ", 1)[-1] if parts[0].startswith("thread (") else "?"
        threads[name] += n
        if name != thread:
            continue
        frames = [_frame(frame) for frame in parts[1:] if frame.rstrip().endswith(")")]
        if not frames:
            continue
        samples += n
        own[frames[-1][0]] += n
        by_component[frames[-1][1]] += n
        for function in {function for function, component in frames if component.startswith(_PROJECT)}:
            project_total[function] += n

    def share(counter: Counter[str], key: str, total: int) -> list[dict]:
        return [{key: name, "share": round(n / total, 3)} for name, n in counter.most_common(top)] if total else []

    return {
        "thread": thread,
        "samples": samples,
        "threads": share(threads, "thread", sum(threads.values())),
        "self": share(own, "function", samples),
        "self_by_component": share(by_component, "component", samples),
        "project_total": share(project_total, "function", samples),
        "file": str(collapsed),
    }
