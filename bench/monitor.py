"""Resource sampling with psutil: peak RSS and CPU seconds of process trees, the machine's load,
and what the machine is (for the report)."""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import psutil

MB = 1024 * 1024


@dataclass
class _Seen:
    name: str
    cpu: float  # user + system seconds when last sampled
    cpu_at_start: float  # at the monitor's start, or 0 for processes born later


class TreeMonitor:
    """Samples one process and all its descendants every `interval` seconds in a thread.

    CPU: the last value seen per pid, so processes that exit between samples (Spark's Python
    workers) still count up to their last sample. RSS: the peak of the tree's sum (shared pages of
    forked workers are counted once per process, so the sum overstates what the tree pins), the
    peak per process name (summed over the processes of that name) and per group of names.
    """

    def __init__(self, pid: int, interval: float = 0.2, groups: dict[str, tuple[str, ...]] | None = None):
        self.pid = pid
        self.interval = interval
        self.groups = groups or {}
        self.peak_rss = 0
        self.last_rss = 0
        self.peak_rss_by_name: dict[str, int] = {}
        self.last_rss_by_name: dict[str, int] = {}
        self._seen: dict[int, _Seen] = {}
        self._handles: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"monitor-{pid}")
        self._first = True

    def __enter__(self) -> "TreeMonitor":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> "TreeMonitor":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def _tree(self) -> list[psutil.Process]:
        root = self._handles.get(self.pid)
        if root is None:
            try:
                root = self._handles[self.pid] = psutil.Process(self.pid)
            except psutil.NoSuchProcess:
                return []
        try:
            members = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        # Reuse handles so that cpu/rss calls go to the same process object (pid reuse safe).
        tree = []
        for proc in members:
            known = self._handles.setdefault(proc.pid, proc)
            tree.append(known)
        return tree

    def sample(self) -> None:
        with self._lock:
            by_name: dict[str, int] = {}
            for proc in self._tree():
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        rss = proc.memory_info().rss
                        name = _short_name(proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                cpu = times.user + times.system
                seen = self._seen.get(proc.pid)
                if seen is None:
                    self._seen[proc.pid] = _Seen(name, cpu, cpu if self._first else 0.0)
                else:
                    seen.cpu = cpu
                by_name[name] = by_name.get(name, 0) + rss
            for name, rss in by_name.items():
                self.peak_rss_by_name[name] = max(self.peak_rss_by_name.get(name, 0), rss)
            for group, names in self.groups.items():
                rss = sum(by_name.get(name, 0) for name in names)
                self.peak_rss_by_name[group] = max(self.peak_rss_by_name.get(group, 0), rss)
                by_name[group] = rss
            self.last_rss_by_name = by_name
            self.last_rss = sum(rss for name, rss in by_name.items() if name not in self.groups)
            self.peak_rss = max(self.peak_rss, self.last_rss)
            self._first = False

    def cpu_seconds(self) -> float:
        """CPU seconds the tree used since the monitor started (sampled now)."""
        self.sample()
        with self._lock:
            return sum(s.cpu - s.cpu_at_start for s in self._seen.values())

    def peak_rss_mb(self) -> float:
        return round(self.peak_rss / MB, 1)

    def peak_rss_mb_of(self, name: str) -> float:
        return round(self.peak_rss_by_name.get(name, 0) / MB, 1)

    def last_rss_mb(self, name: str | None = None) -> float:
        """RSS at the last sample: of the whole tree, or of one process name or group."""
        with self._lock:
            rss = self.last_rss if name is None else self.last_rss_by_name.get(name, 0)
        return round(rss / MB, 1)


def _short_name(proc: psutil.Process) -> str:
    """'kafka', 'java' (Spark), 'faust', 'python' (PySpark driver/workers) or the executable's name."""
    name = proc.name()
    if name == "java" and "kafka.Kafka" in proc.cmdline():
        return "kafka"
    if name.startswith("python"):
        cmdline = " ".join(proc.cmdline())
        if "faust" in cmdline:
            return "faust"
        if "pyspark" in cmdline or "job.py" in cmdline:
            return "pyspark-driver" if "job.py" in cmdline else "pyspark-worker"
        return "python"
    return name


class SystemLoad:
    """CPU used by the whole machine during a run, and how much of it was not ours."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._busy_start = _busy_seconds()
        self.loadavg_start = os.getloadavg()
        self.foreign_at_start = foreign_processes()

    def summary(self, our_cpu_seconds: float) -> dict:
        wall = time.monotonic() - self.started
        busy = _busy_seconds() - self._busy_start
        others = max(busy - our_cpu_seconds, 0.0)
        return {
            "wall_s": round(wall, 1),
            "machine_busy_cores_avg": round(busy / wall, 2),
            "other_processes_cores_avg": round(others / wall, 2),
            "loadavg_start": [round(x, 2) for x in self.loadavg_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "foreign_processes_at_start": self.foreign_at_start,
            "foreign_processes_at_end": foreign_processes(),
        }


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def foreign_processes() -> list[str]:
    """Pipeline-like processes on the machine that are not this run's (other developers' tests)."""
    ours = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    pattern = re.compile(r"faust|spark|pytest|java|kafka")
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.info["pid"] in ours or not proc.info["cmdline"]:
            continue
        cmdline = " ".join(proc.info["cmdline"])
        if pattern.search(cmdline) and "bench.run" not in cmdline:
            found.append(_describe(proc.info["cmdline"]))
    return sorted(found)


def _describe(cmdline: list[str]) -> str:
    text = " ".join(os.path.basename(part) if i == 0 else part for i, part in enumerate(cmdline))
    return text[:100]


def machine_info() -> dict:
    cpu_model = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        java = "unknown"
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model or platform.processor(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "java": java,
        "packages": _package_versions(),
    }


def _package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    names = ("confluent-kafka", "kafka-python", "aiokafka", "faust-streaming", "pyspark", "pyarrow")
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    try:
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    return versions


SPARK_GROUPS = {"driver": ("java", "pyspark-driver")}


def spark_memory(monitor: TreeMonitor) -> dict:
    """Peak RSS of a spark-submit tree: the driver (the JVM, which holds the local executors, plus
    the Python driver), the JVM alone, the Python workers, and the whole tree."""
    return {
        "spark_driver_peak_rss_mb": monitor.peak_rss_mb_of("driver"),
        "spark_jvm_peak_rss_mb": monitor.peak_rss_mb_of("java"),
        "spark_python_workers_peak_rss_mb": monitor.peak_rss_mb_of("pyspark-worker"),
        "spark_tree_peak_rss_mb": monitor.peak_rss_mb(),
    }
