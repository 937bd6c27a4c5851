"""Run the project's own processes (Faust worker, Spark sink) as children of a Python process,
each with exactly the settings it is given, its output in a log file, and stopped with its
whole process group (Spark's JVM and Python workers too). Used by tests and by the backfill.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from config.settings import Settings
from spark_sink.submit import sink_command

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now, for a broker or web server of our own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

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
    """`faust -A app worker` with no built-in source unless told: the caller feeds the raw topic."""
    overrides.setdefault("source", "none")
    env = settings_env(settings, **overrides)
    command = [str(BIN / "faust"), "-A", "app", "worker", "-l", "info", "--web-port", env["FAUST_WEB_PORT"]]
    return Process(name, command, env, workdir)


def start_sink(settings: Settings, workdir: Path, *extra_args: str, name: str = "sink", job: str = "bronze",
               driver_java_options: str = "", **overrides) -> Process:
    """spark-submit of a Spark job (spark_sink.submit: bronze, the sink, by default), without a web
    UI that could clash on port 4040. `driver_java_options` are added to the driver JVM's (the
    benchmark's --jfr uses them)."""
    command = sink_command(settings.model_copy(update=overrides), *extra_args, job=job, web_ui=False,
                           driver_java_options=driver_java_options)
    return Process(name, command, settings_env(settings, **overrides), workdir)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, processes: tuple[Process, ...] = (),
             interval: float = 0.5) -> float:
    """Poll until condition() holds; returns the monotonic time it did. Raises on timeout or when a
    process exits early, with the end of its log."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        for process in processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited while waiting for {what}:\n{process.log_tail(3000)}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name} ---\n{p.log_tail(3000)}" for p in processes)
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(interval)
