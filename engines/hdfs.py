"""An HDFS on 127.0.0.1 from the Hadoop jars in `engines/poms/hadoop.xml`: one NameNode and one or
more DataNodes, each a JVM of its own. `python -m engines.single_hdfs` (`make hdfs`, `bin/hdfs dfs`) runs the
single-node one with the project's settings.

The NameNode is formatted on the first start only, so a restart keeps the data. Each DataNode takes free ports
of its own and registers as 127.0.0.1, so WebHDFS redirects reads and writes to a reachable address; it
keeps its blocks in a folder of its own, so one killed and started again rejoins with them.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from xml.sax.saxutils import escape

import psutil

from engines import jars
from engines.daemon import Daemon, find_java, log_hint, port_in_use

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
# With several DataNodes: a silent one is stale after 3 s (new blocks and reads avoid it while there are
# others) and dead 2 x recheck + 10 x heartbeat = 20 s after its last heartbeat, by the NameNode's check
# every 5 s: measured 19.2-19.8 s after a SIGKILL (Hadoop's defaults: 30 s stale, 10.5 min dead).
# `considerLoad` is off because all the DataNodes share one machine: spreading writes by their connection
# count gains nothing, and it may refuse the only node left for a third replica. With 3 DataNodes the third
# replica of a block can only go to the stale one: the NameNode sends it there, and that copy is given up
# after the pending timeout, 5 s instead of 5 min. Measured from the restart of a killed DataNode to every
# block replicated: still pending after 2 min at the default, 20-24 s at 10 s, 15-16 s at 5 s.
CLUSTER_SITE = {
    "dfs.heartbeat.interval": "1",
    "dfs.namenode.heartbeat.recheck-interval": "5000",
    "dfs.namenode.stale.datanode.interval": "3000",
    "dfs.namenode.avoid.write.stale.datanode": "true",
    "dfs.namenode.avoid.read.stale.datanode": "true",
    "dfs.namenode.redundancy.considerLoad": "false",
    "dfs.namenode.reconstruction.pending.timeout-sec": "5",
}
# A writer whose pipeline loses a DataNode drops it and goes on with the others; DEFAULT then asks the
# NameNode for a replacement only when the pipeline is down to half the replicas, or when the block was
# hflushed or appended to. On 3 DataNodes with one down there is none to find, and by default that fails
# the write (why Hadoop's docs suggest NEVER for clusters of 3 or fewer); min-replication 2 lets it go on
# with 2 and still fails a write that would be left with a single copy. The NameNode re-replicates later.
PIPELINE_RECOVERY = {
    "dfs.client.block.write.replace-datanode-on-failure.enable": "true",
    "dfs.client.block.write.replace-datanode-on-failure.policy": "DEFAULT",
    "dfs.client.block.write.replace-datanode-on-failure.min-replication": "2",
}


class HdfsError(RuntimeError):
    """The HDFS could not start or stopped: the message says why and what to do."""


@dataclass(frozen=True)
class HdfsLayout:
    """Where one HDFS keeps its state and listens. `replication`: dfs.replication, unset one per
    DataNode up to Hadoop's default of 3."""

    host: str
    port: int
    http_port: int
    data_dir: Path
    heap_mb: int
    datanodes: int = 1
    replication: int | None = None

    def __post_init__(self) -> None:
        if self.datanodes < 1:
            raise ValueError(f"an HDFS needs at least one DataNode, not {self.datanodes}")
        if not 1 <= self.replicas <= self.datanodes:
            raise ValueError(f"replication {self.replicas} needs 1 to {self.datanodes} DataNodes: "
                             "with fewer, every block stays under-replicated")

    @property
    def replicas(self) -> int:
        return self.replication if self.replication is not None else min(self.datanodes, 3)

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

    def datanode_dir(self, index: int) -> Path:
        """DataNode `index`'s folder (1..datanodes), holding its `data` and `conf`: with one DataNode the
        data dir itself, as `make hdfs` has always kept it, else data_dir/datanode-<index>."""
        if not 1 <= index <= self.datanodes:
            raise ValueError(f"no DataNode {index}: this HDFS has DataNodes 1 to {self.datanodes}")
        return self.data_dir if self.datanodes == 1 else self.data_dir / f"datanode-{index}"

    def daemon_conf_dir(self, datanode: int | None = None) -> Path:
        """The conf dir on the classpath of the NameNode (None) or of DataNode `datanode`."""
        return self.conf_dir if datanode is None else self.datanode_dir(datanode) / "conf"

    def properties(self, datanode: int | None = None) -> dict[str, dict[str, str]]:
        """core-site and hdfs-site of the NameNode (None) or of DataNode `datanode`: loopback only, no
        permissions. With one DataNode both daemons read one conf dir, so the NameNode's is DataNode 1's."""
        if datanode is None and self.datanodes == 1:
            datanode = 1
        host, any_port = self.host, f"{self.host}:0"
        hdfs_site = {
            "dfs.namenode.name.dir": (self.data_dir / "name").as_uri(),
            "dfs.namenode.rpc-address": f"{host}:{self.port}",
            "dfs.namenode.http-address": f"{host}:{self.http_port}",
            "dfs.namenode.datanode.registration.ip-hostname-check": "false",
            "dfs.permissions.enabled": "false",
            # Leave safe mode as soon as the blocks are reported instead of 30 s later.
            "dfs.namenode.safemode.extension": "0",
            "dfs.namenode.handler.count": "4",
            "dfs.datanode.handler.count": "3",
            # No block scanner: it rereads every block in the background, for disks that rot over months.
            "dfs.block.scanner.volume.bytes.per.second": "0",
            **(CLUSTER_SITE if self.datanodes > 1 else {}),
            # A DataNode is the writer of what comes in through WebHDFS.
            **client_properties(self),
        }
        if datanode is not None:
            hdfs_site |= {
                "dfs.datanode.data.dir": (self.datanode_dir(datanode) / "data").as_uri(),
                "dfs.datanode.address": any_port,
                "dfs.datanode.http.address": any_port,
                "dfs.datanode.ipc.address": any_port,
                "dfs.datanode.hostname": host,
            }
        return {
            "core-site.xml": {
                "fs.defaultFS": self.uri,
                "hadoop.tmp.dir": str(self.data_dir / "tmp"),
            },
            "hdfs-site.xml": hdfs_site,
        }

    def write_config(self, datanode: int | None = None) -> None:
        """The site files of the NameNode (None) or of DataNode `datanode`, and the empty `webapps/`
        folders Hadoop's web servers look up on the classpath (the Maven jars leave the web UI's pages
        out; WebHDFS and JMX are servlets)."""
        conf_dir = self.daemon_conf_dir(datanode)
        for webapp in WEBAPPS:
            (conf_dir / "webapps" / webapp).mkdir(parents=True, exist_ok=True)
        for name, values in self.properties(datanode).items():
            write_site(conf_dir / name, values)


def client_properties(layout: HdfsLayout) -> dict[str, str]:
    """The Hadoop client settings of a writer to this HDFS (Spark: `--conf spark.hadoop.<key>=<value>`):
    its replication (the client's own default is 3), and with several DataNodes PIPELINE_RECOVERY."""
    return {"dfs.replication": str(layout.replicas), **(PIPELINE_RECOVERY if layout.datanodes > 1 else {})}


def write_site(path: Path, values: dict[str, str]) -> None:
    """A Hadoop `*-site.xml` file, replaced whole: a daemon starting meanwhile reads the old or the new one."""
    entries = "".join(f"  <property><name>{escape(key)}</name><value>{escape(value)}</value></property>\n"
                      for key, value in values.items())
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f'<?xml version="1.0"?>\n<configuration>\n{entries}</configuration>\n')
    partial.replace(path)


def java_command(main_class: str, classpath: str, heap_mb: int, log_dir: Path, *args: str) -> list[str]:
    java = find_java()
    if java is None:
        raise HdfsError("no `java` on PATH (or in JAVA_HOME): HDFS needs a Java 17 runtime")
    return [java, f"-Xmx{heap_mb}m", *JVM_FLAGS, f"-Dlog4j.configuration={LOG4J.as_uri()}",
            f"-Dhadoop.log.dir={log_dir}", "-cp", classpath, main_class, *args]


@dataclass(frozen=True)
class HdfsHealth:
    """What the NameNode counts: DataNodes live (stale ones included), stale (silent for 3 s) and declared
    dead; blocks short of replicas and waiting for a copy, being copied, and with no replica left."""

    live_datanodes: int
    stale_datanodes: int
    dead_datanodes: int
    under_replicated_blocks: int
    pending_replication_blocks: int
    missing_blocks: int

    @property
    def replicated(self) -> bool:
        return self.under_replicated_blocks == self.pending_replication_blocks == self.missing_blocks == 0


def namenode_bean(layout: HdfsLayout, name: str) -> dict:
    """A bean of the NameNode's JMX servlet, e.g. FSNamesystemState; {} when it has none by that name."""
    query = f"{layout.webhdfs_url}/jmx?qry=Hadoop:service=NameNode,name={name}"
    with urllib.request.urlopen(query, timeout=2) as reply:
        beans = json.load(reply)["beans"]
    return beans[0] if beans else {}


def health(layout: HdfsLayout) -> HdfsHealth:
    """The NameNode's view of its DataNodes and blocks (OSError when it does not answer)."""
    # FSNamesystemState's block counts are copied at the end of each redundancy cycle (3 s), after the cycle
    # scheduled copies: a block closed with 2 of 3 replicas and scheduled at once never showed in its
    # UnderReplicatedBlocks. ReplicatedBlocksState's are read live. Copies are scheduled only in that
    # cycle, so the copied pending count is never behind.
    state, blocks = namenode_bean(layout, "FSNamesystemState"), namenode_bean(layout, "ReplicatedBlocksState")
    return HdfsHealth(state.get("NumLiveDataNodes", 0), state.get("NumStaleDataNodes", 0),
                      state.get("NumDeadDataNodes", 0), blocks.get("LowRedundancyReplicatedBlocks", 0),
                      state.get("PendingReplicationBlocks", 0), blocks.get("MissingReplicatedBlocks", 0))


def registered_datanodes(layout: HdfsLayout) -> set[str]:
    """The data transfer addresses (host:port) of the DataNodes the NameNode counts live."""
    live = json.loads(namenode_bean(layout, "NameNodeInfo").get("LiveNodes") or "{}")
    return {node["xferaddr"] for node in live.values()}


def _listening_ports(daemon: Daemon) -> set[int]:
    try:
        connections = psutil.Process(daemon.popen.pid).net_connections("tcp")
    except psutil.Error:
        return set()
    return {connection.laddr.port for connection in connections if connection.status == psutil.CONN_LISTEN}


@dataclass
class HdfsCluster:
    """A running HDFS: its NameNode and DataNodes 1..n (`datanodes[index - 1]`)."""

    layout: HdfsLayout
    namenode: Daemon
    datanodes: list[Daemon] = field(default_factory=list)

    @property
    def datanode(self) -> Daemon:
        """DataNode 1, the only one of `make hdfs`."""
        return self.datanodes[0]

    @property
    def daemons(self) -> list[Daemon]:
        return [self.namenode, *self.datanodes]

    @property
    def uri(self) -> str:
        return self.layout.uri

    @property
    def webhdfs_url(self) -> str:
        return self.layout.webhdfs_url

    def stop(self) -> None:
        for datanode in self.datanodes:
            datanode.stop()
        self.namenode.stop()

    def restart_datanode(self, index: int) -> Daemon:
        """DataNode `index` stopped (if it still runs) and started again on its folder; it rejoins with its
        blocks (`wait_ready` returns once it has registered)."""
        if not 1 <= index <= len(self.datanodes):
            raise ValueError(f"no DataNode {index}: this HDFS runs DataNodes 1 to {len(self.datanodes)}")
        old = self.datanodes[index - 1]
        old.stop()
        self.datanodes[index - 1] = start_datanode(self.layout, index, log_to_files=old.log_path is not None)
        return self.datanodes[index - 1]

    def state(self) -> dict:
        """The NameNode's FSNamesystemState bean: FSState, NumLiveDataNodes, CapacityRemaining, ..."""
        return namenode_bean(self.layout, "FSNamesystemState")

    def health(self) -> HdfsHealth:
        return health(self.layout)

    def wait_ready(self, timeout: float) -> None:
        """Out of safe mode with space and every DataNode registered: then a write succeeds."""
        wanted = self.layout.datanodes
        self._wait(self._ready, timeout, f"out of safe mode, {wanted} live DataNode{'s' if wanted > 1 else ''}")

    def wait_replicated(self, timeout: float) -> HdfsHealth:
        """Every DataNode live and every block with all its replicas, e.g. after a DataNode rejoined."""
        self._wait(lambda: self._ready() and self.health().replicated, timeout,
                   f"{self.layout.datanodes} live DataNodes and no under-replicated block")
        return self.health()

    def _ready(self) -> bool:
        """Out of safe mode, with space, and the NameNode knows each DataNode process by a port it listens on."""
        # Counting live DataNodes is not enough: one restarted before the NameNode declared it dead (20 s)
        # is counted live under its old address while it still starts.
        state = self.state()
        if state.get("FSState") != "Operational" or state.get("CapacityRemaining", 0) <= 0:
            return False
        registered = registered_datanodes(self.layout)
        return all(any(f"{self.layout.host}:{port}" in registered for port in _listening_ports(datanode))
                   for datanode in self.datanodes)

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for daemon in self.daemons:
                if not daemon.alive():
                    raise HdfsError(f"the {daemon.name} exited with code {daemon.popen.returncode}"
                                    + log_hint(daemon))
            try:
                if done():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.25)
        raise HdfsError(f"HDFS at {self.uri} was not ready after {timeout:.0f} s ({what})"
                        + "".join(log_hint(daemon) for daemon in self.daemons))


def check_ports_free(layout: HdfsLayout) -> None:
    for port, what in ((layout.port, "NameNode RPC (HDFS_PORT)"), (layout.http_port, "NameNode HTTP/WebHDFS (HDFS_HTTP_PORT)")):
        busy = port_in_use(layout.host, port)
        if busy:
            raise HdfsError(f"port {port} on {layout.host} for the {what} is already in use ({busy}): "
                            f"is another HDFS running? Stop it, or set {what.split('(')[1][:-1]} to a free port")


def format_namenode(layout: HdfsLayout, classpath: str, log_dir: Path | None) -> None:
    command = java_command(NAMENODE, classpath, layout.heap_mb, layout.log_dir,
                           "-format", "-nonInteractive", "-clusterid", "tweetlake")
    formatting = Daemon.start("namenode-format", command, log_dir)
    if formatting.popen.wait() != 0 or not layout.formatted:
        raise HdfsError(f"formatting the NameNode in {layout.data_dir / 'name'} failed "
                        f"(exit {formatting.popen.returncode})" + log_hint(formatting))


def _daemon_classpath(layout: HdfsLayout, datanode: int | None) -> str:
    """The daemon's conf dir first, then the Hadoop jars (JarsMissing when they are not fetched)."""
    return os.pathsep.join([str(layout.daemon_conf_dir(datanode)), jars.classpath("hadoop")])


def namenode_command(layout: HdfsLayout, log_dir: Path | None = None) -> list[str]:
    """The NameNode's JVM command, its config written and its storage formatted on first use
    (for a supervisor that runs or execs it itself)."""
    classpath = _daemon_classpath(layout, None)
    check_ports_free(layout)
    layout.write_config()
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    if not layout.formatted:
        format_namenode(layout, classpath, log_dir)
    return java_command(NAMENODE, classpath, layout.heap_mb, layout.log_dir)


def datanode_command(layout: HdfsLayout, index: int) -> list[str]:
    """DataNode `index`'s JVM command (1..layout.datanodes), its config written: its own folder and free ports."""
    classpath = _daemon_classpath(layout, index)
    layout.write_config(index)
    layout.log_dir.mkdir(parents=True, exist_ok=True)
    return java_command(DATANODE, classpath, layout.heap_mb, layout.log_dir)


def start_namenode(layout: HdfsLayout, log_to_files: bool = True) -> Daemon:
    """The NameNode, formatted on first use; it answers once `HdfsCluster.wait_ready` returns."""
    log_dir = layout.log_dir if log_to_files else None
    return Daemon.start("namenode", namenode_command(layout, log_dir), log_dir)


def start_datanode(layout: HdfsLayout, index: int, log_to_files: bool = True) -> Daemon:
    """DataNode `index` (1..layout.datanodes); its log is logs/datanode[-<index>].log."""
    name = "datanode" if layout.datanodes == 1 else f"datanode-{index}"
    command = datanode_command(layout, index)
    return Daemon.start(name, command, layout.log_dir if log_to_files else None)


def start(layout: HdfsLayout, log_to_files: bool = True, timeout: float = 120.0) -> HdfsCluster:
    """Format on first use, start the NameNode then the DataNodes, return once a write would succeed."""
    cluster = HdfsCluster(layout, start_namenode(layout, log_to_files))
    try:
        for index in range(1, layout.datanodes + 1):
            cluster.datanodes.append(start_datanode(layout, index, log_to_files))
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
    hdfs-site.xml with the layout's replication (hdfs-default.xml, loaded after core-site, would say 3)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        if probe.connect_ex((layout.host, layout.port)) != 0:
            print(f"error: no NameNode listens at {layout.uri}: start one with `make hdfs` "
                  "(or set HDFS_HOST/HDFS_PORT)", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="hdfs-client-") as conf_dir:
        write_site(Path(conf_dir) / "core-site.xml", {"fs.defaultFS": layout.uri})
        write_site(Path(conf_dir) / "hdfs-site.xml", client_properties(layout))
        classpath = os.pathsep.join([conf_dir, jars.classpath("hadoop")])
        return subprocess.call(java_command(FS_SHELL, classpath, 256, layout.log_dir, *args))
