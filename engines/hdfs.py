"""A single-node HDFS on 127.0.0.1 (NameNode + DataNode, two JVMs) from the Hadoop jars in
`engines/poms/hadoop.xml`; `python -m app.hdfs` (`make hdfs`, `bin/hdfs dfs`) runs it with the
project's settings.

The NameNode is formatted on the first start only, so a restart keeps the data. The DataNode takes free ports of
its own and registers as 127.0.0.1, so WebHDFS redirects reads and writes to a reachable address.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator
from xml.sax.saxutils import escape

from engines import jars

REPO = Path(__file__).resolve().parents[1]
LOG4J = REPO / "config" / "hadoop-log4j.properties"
NAMENODE = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE = "org.apache.hadoop.hdfs.server.datanode.DataNode"
FS_SHELL = "org.apache.hadoop.fs.FsShell"
# Serial GC and the C1 compiler only: the daemons idle most of the time and share two cores.
# Measured here: first start (format included) ready in 7.3 s, a restart in 3.5-6.5 s (by load),
# ~240 MB RSS for the NameNode and ~215 MB for the DataNode.
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true")
WEBAPPS = ("hdfs", "datanode", "static")
_PR_SET_PDEATHSIG = 1


class HdfsError(RuntimeError):
    """The HDFS could not start or stopped: the message says why and what to do."""


@dataclass(frozen=True)
class HdfsLayout:
    """Where one HDFS keeps its state and listens."""

    host: str
    port: int
    http_port: int
    data_dir: Path
    heap_mb: int

    @property
    def uri(self) -> str:
        return f"hdfs://{self.host}:{self.port}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def conf_dir(self) -> Path:
        return self.data_dir / "conf"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "name" / "current" / "VERSION").exists()

    def properties(self) -> dict[str, dict[str, str]]:
        """core-site and hdfs-site of a one-node dev cluster: loopback only, one replica, no permissions."""
        host, any_port = self.host, f"{self.host}:0"
        return {
            "core-site.xml": {
                "fs.defaultFS": self.uri,
                "hadoop.tmp.dir": str(self.data_dir / "tmp"),
            },
            "hdfs-site.xml": {
                "dfs.namenode.name.dir": (self.data_dir / "name").as_uri(),
                "dfs.datanode.data.dir": (self.data_dir / "data").as_uri(),
                "dfs.namenode.rpc-address": f"{host}:{self.port}",
                "dfs.namenode.http-address": f"{host}:{self.http_port}",
                "dfs.datanode.address": any_port,
                "dfs.datanode.http.address": any_port,
                "dfs.datanode.ipc.address": any_port,
                "dfs.datanode.hostname": host,
                "dfs.namenode.datanode.registration.ip-hostname-check": "false",
                "dfs.replication": "1",
                "dfs.permissions.enabled": "false",
                # Leave safe mode as soon as the blocks are reported instead of 30 s later.
                "dfs.namenode.safemode.extension": "0",
                "dfs.namenode.handler.count": "4",
                "dfs.datanode.handler.count": "3",
                # No block scanner: it rereads every block in the background, for disks that rot over months.
                "dfs.block.scanner.volume.bytes.per.second": "0",
            },
        }

    def write_config(self) -> None:
        """The two site files, and the empty `webapps/` folders Hadoop's web servers look up on the
        classpath (the Maven jars leave the web UI's pages out; WebHDFS and JMX are servlets)."""
        for webapp in WEBAPPS:
            (self.conf_dir / "webapps" / webapp).mkdir(parents=True, exist_ok=True)
        for name, values in self.properties().items():
            write_site(self.conf_dir / name, values)


def write_site(path: Path, values: dict[str, str]) -> None:
    """A Hadoop `*-site.xml` file."""
    entries = "".join(f"  <property><name>{escape(key)}</name><value>{escape(value)}</value></property>\n"
                      for key, value in values.items())
    path.write_text(f'<?xml version="1.0"?>\n<configuration>\n{entries}</configuration>\n')


def java_command(main_class: str, classpath: str, heap_mb: int, log_dir: Path, *args: str) -> list[str]:
    java = shutil.which("java", path=str(Path(os.environ["JAVA_HOME"]) / "bin")) if os.environ.get("JAVA_HOME") else None
    java = java or shutil.which("java")
    if java is None:
        raise HdfsError("no `java` on PATH (or in JAVA_HOME): HDFS needs a Java 17 runtime")
    return [java, f"-Xmx{heap_mb}m", *JVM_FLAGS, f"-Dlog4j.configuration={LOG4J.as_uri()}",
            f"-Dhadoop.log.dir={log_dir}", "-cp", classpath, main_class, *args]


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


@dataclass
class HdfsCluster:
    """A running single-node HDFS."""

    layout: HdfsLayout
    namenode: Daemon
    datanode: Daemon

    @property
    def uri(self) -> str:
        return self.layout.uri

    @property
    def webhdfs_url(self) -> str:
        return self.layout.webhdfs_url

    def stop(self) -> None:
        self.datanode.stop()
        self.namenode.stop()

    def state(self) -> dict:
        """The NameNode's FSNamesystemState bean: FSState, NumLiveDataNodes, CapacityRemaining, ..."""
        query = f"{self.webhdfs_url}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
        with urllib.request.urlopen(query, timeout=2) as reply:
            beans = json.load(reply)["beans"]
        return beans[0] if beans else {}

    def wait_ready(self, timeout: float) -> None:
        """Out of safe mode with a live DataNode that has space: then a write succeeds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for daemon in (self.namenode, self.datanode):
                if not daemon.alive():
                    raise HdfsError(f"the {daemon.name} exited with code {daemon.popen.returncode} while starting"
                                    + _log_hint(daemon))
            try:
                state = self.state()
            except (OSError, ValueError):
                state = {}
            if (state.get("FSState") == "Operational" and state.get("NumLiveDataNodes", 0) >= 1
                    and state.get("CapacityRemaining", 0) > 0):
                return
            time.sleep(0.25)
        raise HdfsError(f"HDFS at {self.uri} was not ready after {timeout:.0f} s (out of safe mode, one live DataNode)"
                        + _log_hint(self.namenode) + _log_hint(self.datanode))


def _log_hint(daemon: Daemon) -> str:
    tail = daemon.log_tail()
    if tail:
        return f"\n--- {daemon.log_path} (tail) ---\n{tail}"
    return ""


def check_ports_free(layout: HdfsLayout) -> None:
    for port, what in ((layout.port, "NameNode RPC (HDFS_PORT)"), (layout.http_port, "NameNode HTTP/WebHDFS (HDFS_HTTP_PORT)")):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Hadoop binds: TIME_WAIT is no conflict
            try:
                probe.bind((layout.host, port))
            except OSError as error:
                raise HdfsError(f"port {port} on {layout.host} for the {what} is already in use ({error.strerror}): "
                                f"is another HDFS running? Stop it, or set {what.split('(')[1][:-1]} to a free port") from None


def format_namenode(layout: HdfsLayout, classpath: str, log_dir: Path | None) -> None:
    command = java_command(NAMENODE, classpath, layout.heap_mb, layout.log_dir,
                           "-format", "-nonInteractive", "-clusterid", "tweetlake")
    formatting = Daemon.start("namenode-format", command, log_dir)
    if formatting.popen.wait() != 0 or not layout.formatted:
        raise HdfsError(f"formatting the NameNode in {layout.data_dir / 'name'} failed "
                        f"(exit {formatting.popen.returncode})" + _log_hint(formatting))


def start(layout: HdfsLayout, log_to_files: bool = True, timeout: float = 120.0) -> HdfsCluster:
    """Format on first use, start NameNode then DataNode, return once a write would succeed."""
    base_classpath = jars.classpath("hadoop")
    check_ports_free(layout)
    layout.write_config()
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    log_dir = layout.log_dir if log_to_files else None
    classpath = os.pathsep.join([str(layout.conf_dir), base_classpath])
    if not layout.formatted:
        format_namenode(layout, classpath, log_dir)
    namenode = Daemon.start("namenode", java_command(NAMENODE, classpath, layout.heap_mb, layout.log_dir), log_dir)
    datanode = Daemon.start("datanode", java_command(DATANODE, classpath, layout.heap_mb, layout.log_dir), log_dir)
    cluster = HdfsCluster(layout, namenode, datanode)
    try:
        cluster.wait_ready(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def running_hdfs(layout: HdfsLayout, log_to_files: bool = True, timeout: float = 120.0) -> Iterator[HdfsCluster]:
    """An HDFS for the `with` block: `.uri` for Hadoop clients, `.webhdfs_url` for the `lake` tools."""
    cluster = start(layout, log_to_files, timeout)
    try:
        yield cluster
    finally:
        cluster.stop()


def fs_shell(layout: HdfsLayout, args: list[str]) -> int:
    """Hadoop's FsShell (`hdfs dfs`) against the configured NameNode; its exit code. Hadoop 3.5 fails
    without a core-site.xml on the classpath, so the client gets one naming the NameNode, and an
    hdfs-site.xml for one replica (hdfs-default.xml, loaded after core-site, would say 3)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        if probe.connect_ex((layout.host, layout.port)) != 0:
            print(f"error: no NameNode listens at {layout.uri}: start one with `make hdfs` "
                  "(or set HDFS_HOST/HDFS_PORT)", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="hdfs-client-") as conf_dir:
        write_site(Path(conf_dir) / "core-site.xml", {"fs.defaultFS": layout.uri})
        write_site(Path(conf_dir) / "hdfs-site.xml", {"dfs.replication": "1"})
        classpath = os.pathsep.join([conf_dir, jars.classpath("hadoop")])
        return subprocess.call(java_command(FS_SHELL, classpath, 256, layout.log_dir, *args))
