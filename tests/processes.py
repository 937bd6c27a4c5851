"""Run the project's real processes (Faust worker, Spark sink) as subprocesses for tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pyarrow.dataset as ds

from app.settings import Settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def settings_env(settings: Settings, **overrides: object) -> dict[str, str]:
    """The environment that makes a child process read exactly these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "LAKE_"))}
    values = settings.model_dump(exclude_none=True) | overrides
    for name, value in values.items():
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    env.update(
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    return env


class Process:
    """A child process whose output goes to a log file, stopped on exit of the `with` block."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], workdir: Path):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group (Spark's JVM and its Python workers too)."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.signal_group(signal.SIGKILL)  # children that outlived their parent
        self._log.close()
        return self.popen.returncode

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_worker(settings: Settings, workdir: Path, name: str = "worker", **overrides) -> Process:
    overrides.setdefault("source", "none")
    env = settings_env(settings, **overrides)
    command = [str(BIN / "faust"), "-A", "app", "worker", "-l", "info", "--web-port", env["FAUST_WEB_PORT"]]
    return Process(name, command, env, workdir)


def start_sink(settings: Settings, workdir: Path, *extra_args: str, name: str = "sink", **overrides) -> Process:
    env = settings_env(settings, **overrides)
    command = [
        str(BIN / "spark-submit"),
        "--master", "local[2]",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--driver-java-options", f"-Dlog4j2.configurationFile={REPO / 'config/log4j2.properties'}",
        str(REPO / "spark_sink/job.py"),
        *extra_args,
    ]
    return Process(name, command, env, workdir)


def bronze_table(lake_root: Path, zone: str = "bronze"):
    """Bronze read the way a plain reader sees it: pyarrow over the hive-partitioned folder."""
    path = lake_root / zone
    if not path.exists():
        return None
    return ds.dataset(path, format="parquet", partitioning="hive").to_table()


def bronze_count(lake_root: Path, zone: str = "bronze") -> int:
    table = bronze_table(lake_root, zone)
    return 0 if table is None else table.num_rows


def wait_until(condition: Callable[[], bool], timeout: float, what: str, processes: tuple[Process, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in processes:
            if not process.alive():
                raise AssertionError(f"{process.name} exited early while waiting for {what}:\n{process.log_text()[-4000:]}")
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name} ---\n{p.log_text()[-4000:]}" for p in processes)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
