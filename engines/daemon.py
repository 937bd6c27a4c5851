"""One JVM of an engine (a NameNode, a DataNode, a Spark master or worker) as a child process:
its own process group, its log in a file, a SIGKILL as a crash would send it, a SIGTERM that lets
its shutdown hooks run; and the checks before one starts (java found, its port free)."""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def find_java() -> str | None:
    """`java` from JAVA_HOME if set, else from PATH."""
    java_home = os.environ.get("JAVA_HOME")
    found = shutil.which("java", path=str(Path(java_home) / "bin")) if java_home else None
    return found or shutil.which("java")


def port_in_use(host: str, port: int) -> str | None:
    """Why `port` cannot be bound on `host` (the OS's reason), None when it is free. SO_REUSEADDR as
    the JVMs bind: a port in TIME_WAIT is no conflict."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def _die_with_parent() -> None:
    """Linux: the JVM gets SIGTERM if the Python process that started it dies, so none is orphaned."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Daemon:
    """One JVM in a process group of its own (so Ctrl-C in the terminal reaches only the Python parent)."""

    name: str
    popen: subprocess.Popen
    log_path: Path | None

    @classmethod
    def start(cls, name: str, command: list[str], log_dir: Path | None) -> Daemon:
        log: IO[bytes] | None = None
        log_path = None
        if log_dir is not None:
            log_path = log_dir / f"{name}.log"
            log = open(log_path, "ab")
        try:
            popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT if log else None,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            if log is not None:
                log.close()
        return cls(name, popen, log_path)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the group, as a crash would: no shutdown hook runs."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait()

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the group (Hadoop's shutdown hooks close the edit log), SIGKILL if it lingers."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if not self.alive():
                break
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self.popen.wait()


def log_hint(daemon: Daemon) -> str:
    """The end of a daemon's log, for an error message; empty when it logs nowhere."""
    tail = daemon.log_tail()
    return f"\n--- {daemon.log_path} (tail) ---\n{tail}" if tail else ""
