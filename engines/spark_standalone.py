"""A Spark standalone cluster on one machine: a master and N workers, each a JVM of its own started
by the pyspark wheel's `bin/spark-class`, bound to loopback, logging to files under the data folder.
Why each worker offers more cores than the machine has, and what was measured: docs/operations.md,
"A local cluster".
"""
from __future__ import annotations

import importlib.util
import json
import os
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Sequence
from urllib.parse import urlsplit

from engines.daemon import Daemon, find_java, log_hint, port_in_use

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"
# The master and workers only keep books (executors are JVMs of their own): a small serial heap
# and the C1 compiler, as for the HDFS daemons.
DAEMON_JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true")
# A busy port fails the daemon instead of Spark silently taking the next one (8080 -> 8081, a
# worker's): the ports are a contract.
NO_PORT_RETRIES = "-Dspark.port.maxRetries=0"


class SparkClusterError(RuntimeError):
    """The standalone cluster could not start or lost a daemon: the message says why and what to do."""


@dataclass(frozen=True)
class StandaloneLayout:
    """Where one standalone cluster listens and keeps its state; worker `index` counts from 0.

    `worker_memory` is what executors may reserve on a worker: three jobs with one executor each
    of SPARK_EXECUTOR_MEMORY (1g). Unset `worker_ui_ports` are ui_port+1, +2, ...; unset
    `worker_ports` are free ones (a restarted worker then registers under a new address)."""

    host: str = "127.0.0.1"
    master_port: int = 7077
    ui_port: int = 8080
    workers: int = 2
    worker_cores: int = 3
    worker_memory: str = "3g"
    data_dir: Path = Path(".spark")
    worker_ui_ports: tuple[int, ...] = ()
    worker_ports: tuple[int, ...] = ()
    daemon_memory: str = "256m"
    # Cores of an application that does not set spark.cores.max: without a cap the first job takes
    # every core and the next ones wait forever.
    default_app_cores: int = 2
    # Finished applications' folders (each executor's copy of --jars, its logs) are deleted after this.
    app_data_ttl_seconds: int = 3600

    def __post_init__(self) -> None:
        for name, ports in (("worker_ui_ports", self.worker_ui_ports), ("worker_ports", self.worker_ports)):
            if ports and len(ports) != self.workers:
                raise ValueError(f"{name} has {len(ports)} ports for {self.workers} workers")

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def worker_ui_port(self, index: int) -> int:
        self._check_index(index)
        return self.worker_ui_ports[index] if self.worker_ui_ports else self.ui_port + 1 + index

    def worker_port(self, index: int) -> int:
        """0: a free port."""
        self._check_index(index)
        return self.worker_ports[index] if self.worker_ports else 0

    def worker_dir(self, index: int) -> Path:
        self._check_index(index)
        return self.data_dir / f"worker-{index}"

    def ports(self) -> list[tuple[int, str]]:
        """Every fixed port and what listens there."""
        ports = [(self.master_port, "master RPC"), (self.ui_port, "master web UI")]
        for index in range(self.workers):
            ports.append((self.worker_ui_port(index), f"worker {index}'s web UI"))
            if self.worker_port(index):
                ports.append((self.worker_port(index), f"worker {index} RPC"))
        return ports

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.workers:
            raise IndexError(f"worker {index} does not exist: the layout has workers 0..{self.workers - 1}")


def spark_home() -> Path:
    """SPARK_HOME as the wheel's spark-submit finds it: the variable if set, else the pyspark package."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SparkClusterError("pyspark is not installed in this Python: `make venv` installs it")
    return Path(spec.submodule_search_locations[0])


def _check_java() -> None:
    if find_java() is None:
        raise SparkClusterError("no `java` on PATH (or in JAVA_HOME): Spark needs a Java 17 runtime")


def _spark_class(layout: StandaloneLayout, main_class: str, extra_env: dict[str, str], *args: str) -> list[str]:
    """spark-class behind `env`, which sets the daemon's variables and execs it (same process, same group)."""
    home = spark_home()
    env = {"SPARK_HOME": str(home), "SPARK_LOCAL_IP": layout.host, "SPARK_DAEMON_MEMORY": layout.daemon_memory,
           "SPARK_DAEMON_JAVA_OPTS": " ".join(DAEMON_JVM_FLAGS), **extra_env}
    return ["env", *(f"{key}={value}" for key, value in env.items()), str(home / "bin" / "spark-class"),
            main_class, *args]


def master_command(layout: StandaloneLayout) -> list[str]:
    options = [NO_PORT_RETRIES, f"-Dspark.deploy.defaultCores={layout.default_app_cores}",
               # Each application spread over the workers: a lost worker costs each job half its cores, not all.
               "-Dspark.deploy.spreadOutApps=true",
               # Jobs are submitted over RPC; the REST gateway would take port 6066, the Faust worker's.
               "-Dspark.master.rest.enabled=false"]
    return _spark_class(layout, MASTER, {"SPARK_MASTER_OPTS": " ".join(options)},
                        "--host", layout.host, "--port", str(layout.master_port), "--webui-port", str(layout.ui_port))


def worker_command(layout: StandaloneLayout, index: int) -> list[str]:
    folder = layout.worker_dir(index)
    options = [NO_PORT_RETRIES, "-Dspark.worker.cleanup.enabled=true",
               f"-Dspark.worker.cleanup.appDataTtl={layout.app_data_ttl_seconds}"]
    # Executors inherit the worker's environment: SPARK_LOCAL_DIRS puts their shuffle and spill files
    # in the worker's folder instead of /tmp.
    env = {"SPARK_WORKER_OPTS": " ".join(options), "SPARK_LOCAL_DIRS": str((folder / "local").resolve())}
    return _spark_class(layout, WORKER, env, layout.master_url, "--host", layout.host,
                        "--port", str(layout.worker_port(index)), "--webui-port", str(layout.worker_ui_port(index)),
                        "--cores", str(layout.worker_cores), "--memory", layout.worker_memory,
                        "--work-dir", str((folder / "work").resolve()))


def check_ports_free(layout: StandaloneLayout) -> None:
    for port, what in layout.ports():
        busy = port_in_use(layout.host, port)
        if busy:
            raise SparkClusterError(f"port {port} on {layout.host} for the Spark {what} is already in use "
                                    f"({busy}): is another Spark cluster running? Stop it, "
                                    "or give the layout other ports")


def start_master(layout: StandaloneLayout, log_to_files: bool = True) -> Daemon:
    """The master's JVM (logs in `log_dir/spark-master.log`); `wait_for_master` tells when it serves."""
    _check_java()
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    return Daemon.start("spark-master", master_command(layout), layout.log_dir if log_to_files else None)


def start_worker(layout: StandaloneLayout, index: int, log_to_files: bool = True) -> Daemon:
    """Worker `index`'s JVM (logs in `log_dir/spark-worker-<index>.log`), registering with the master."""
    _check_java()
    for folder in ("work", "local"):
        (layout.worker_dir(index) / folder).mkdir(parents=True, exist_ok=True)
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    return Daemon.start(f"spark-worker-{index}", worker_command(layout, index),
                        layout.log_dir if log_to_files else None)


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as reply:
        return json.load(reply)


def master_state(layout: StandaloneLayout) -> dict:
    """The master's /json/: status, workers (id, webuiaddress, state, cores, coresused, ...), activeapps."""
    return _json(f"{layout.ui_url}/json/")


def alive_workers(state: dict) -> dict[int, str]:
    """The master's ALIVE workers: web UI port -> worker id."""
    return {urlsplit(worker["webuiaddress"]).port: worker["id"]
            for worker in state.get("workers", []) if worker.get("state") == "ALIVE"}


def _wait(layout: StandaloneLayout, done: Callable[[dict], bool], what: str, timeout: float,
          daemons: Sequence[Daemon]) -> dict:
    """Poll the master's state until `done(state)`; a daemon that exits meanwhile fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        for daemon in daemons:
            if not daemon.alive():
                raise SparkClusterError(f"the {daemon.name} exited with code {daemon.popen.returncode} while "
                                        f"waiting for {what}" + log_hint(daemon))
        try:
            state = master_state(layout)
        except (OSError, ValueError):
            state = {}
        if state and done(state):
            return state
        if time.monotonic() > deadline:
            raise SparkClusterError(f"no {what} at {layout.ui_url} after {timeout:.0f} s"
                                    + "".join(log_hint(daemon) for daemon in daemons))
        time.sleep(0.25)


def wait_for_master(layout: StandaloneLayout, master: Daemon, timeout: float = 60.0) -> dict:
    return _wait(layout, lambda state: state.get("status") == "ALIVE", "ALIVE master", timeout, [master])


def wait_for_workers(layout: StandaloneLayout, indexes: list[int], timeout: float = 60.0,
                     daemons: Sequence[Daemon] = (), not_ids: Collection[str] = frozenset()) -> dict:
    """Until the master lists the workers `indexes` ALIVE (told apart by their web UI ports), each
    under an id not in `not_ids` (a restarted worker's previous ids); the master's state then."""
    ports = {layout.worker_ui_port(index) for index in indexes}

    def registered(state: dict) -> bool:
        alive = alive_workers(state)
        return all(port in alive and alive[port] not in not_ids for port in ports)
    return _wait(layout, registered, f"ALIVE workers {sorted(indexes)}", timeout, daemons)


@dataclass
class StandaloneCluster:
    """A running master and its workers."""

    layout: StandaloneLayout
    master: Daemon
    workers: list[Daemon] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return self.layout.master_url

    def daemons(self) -> list[Daemon]:
        return [self.master, *self.workers]

    def state(self) -> dict:
        return master_state(self.layout)

    def wait_ready(self, timeout: float = 60.0) -> dict:
        """Every worker ALIVE at the master; the master's state."""
        return wait_for_workers(self.layout, list(range(len(self.workers))), timeout, self.daemons())

    def kill_worker(self, index: int, timeout: float = 30.0) -> None:
        """SIGKILL worker `index`'s process group, its executors with it (their Python workers exit with
        them), as when its machine is lost; return once the master no longer lists it ALIVE (it sees
        the connection drop at once, not after its 60 s heartbeat timeout)."""
        self.workers[index].kill()
        port = self.layout.worker_ui_port(index)
        _wait(self.layout, lambda state: port not in alive_workers(state), f"loss of worker {index}", timeout,
              [self.master])

    def restart_worker(self, index: int, timeout: float = 60.0) -> Daemon:
        """Start worker `index` again (after `kill_worker` or a crash); return once it is registered anew."""
        if self.workers[index].alive():
            raise SparkClusterError(f"worker {index} is still running: kill or stop it first")
        previous = {worker["id"] for worker in self.state().get("workers", [])}
        self.workers[index] = start_worker(self.layout, index, self.workers[index].log_path is not None)
        wait_for_workers(self.layout, [index], timeout, [self.master, self.workers[index]], previous)
        return self.workers[index]

    def stop(self) -> None:
        """Workers first (each stops its executors), then the master."""
        for daemon in [*self.workers, self.master]:
            daemon.stop()


def start(layout: StandaloneLayout, log_to_files: bool = True, timeout: float = 90.0) -> StandaloneCluster:
    """Start the master, then the workers once it serves (a worker that finds no master retries only
    after 5-15 s); return when every worker is ALIVE."""
    check_ports_free(layout)
    cluster = StandaloneCluster(layout, start_master(layout, log_to_files))
    try:
        wait_for_master(layout, cluster.master, timeout)
        cluster.workers = [start_worker(layout, index, log_to_files) for index in range(layout.workers)]
        cluster.wait_ready(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
