"""Apache Kafka in KRaft mode on loopback: one combined broker+controller JVM per node, either a
single node (`make run`) or a cluster of nodes that are all voters of a static controller quorum
(`make cluster`: 3 nodes, replication 3, 2 in-sync replicas required).

Each node's log dirs are on disk, so a restart (a SIGKILL included) keeps topics, committed offsets
and consumer groups; a node's storage is formatted once, on its first start, and every node of a
cluster is formatted with the cluster's one id (`shared_cluster_id`). The jars come from
`engines/poms/kafka.xml`.
"""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from engines.jars import classpath

REPO = Path(__file__).resolve().parents[1]
LOG4J_CONFIG = REPO / "config" / "kafka-log4j2.properties"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
CLUSTER_ID_FILE = "cluster.id"
# Replicas of the project's data a cluster keeps: more nodes add capacity, not copies.
MAX_CLUSTER_REPLICATION = 3


@dataclass(frozen=True)
class KafkaNode:
    """Where one broker+controller node listens, keeps its data, and which quorum it votes in."""

    host: str
    port: int
    controller_port: int
    data_dir: Path
    heap_mb: int = 512
    partitions: int = 4
    node_id: int = 1
    # controller.quorum.voters ("1@host:port,2@host:port,..."); None: this node alone.
    voters: str | None = None
    # Replicas of the internal topics and the default for new topics.
    replication: int = 1

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def quorum_voters(self) -> str:
        return self.voters or f"{self.node_id}@{self.host}:{self.controller_port}"

    @property
    def quorum_size(self) -> int:
        return len(self.quorum_voters.split(","))

    @property
    def min_insync_replicas(self) -> int:
        """One replica may be down while acks=all producers still write (2 of 3)."""
        return self.replication - 1 if self.replication > 1 else 1

    def server_properties(self) -> dict[str, str]:
        listener = f"PLAINTEXT://{self.host}:{self.port}"
        controller = f"CONTROLLER://{self.host}:{self.controller_port}"
        replication, min_isr = str(self.replication), str(self.min_insync_replicas)
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            # A static quorum: formatted without --standalone/--initial-controllers (StorageTool
            # refuses those flags when controller.quorum.voters is set).
            "controller.quorum.voters": self.quorum_voters,
            "listeners": f"{listener},{controller}",
            "advertised.listeners": listener,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir.resolve()),
            "num.partitions": str(self.partitions),
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            # One member joins alone: Kafka's 3 s wait for more members only delays the first start.
            "group.initial.rebalance.delay.ms": "0",
            # Retention is checked every 5 minutes by default: a minute keeps disk closer to the limit.
            "log.retention.check.interval.ms": "60000",
            "log.segment.delete.delay.ms": "10000",
        }

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in self.server_properties().items()]
        self.config_path.write_text("# Written by engines/kafka.py at each start.\n" + "\n".join(lines) + "\n")
        return self.config_path

    def formatted(self) -> bool:
        return (self.log_dir / "meta.properties").exists()

    def formatted_cluster_id(self) -> str | None:
        """The cluster id the log dir was formatted with, None if it is not formatted."""
        if not self.formatted():
            return None
        for line in (self.log_dir / "meta.properties").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
        return None


def cluster_nodes(host: str, ports: tuple[int, ...], controller_ports: tuple[int, ...], data_root: Path,
                  heap_mb: int, partitions: int) -> list[KafkaNode]:
    """One node per broker port, ids 1..n, every one a voter, data in data_root/node-<id>."""
    if len(ports) != len(controller_ports):
        raise ValueError(f"{len(ports)} broker ports but {len(controller_ports)} controller ports: "
                         "a node needs one of each")
    ids = range(1, len(ports) + 1)
    voters = ",".join(f"{node_id}@{host}:{controller_port}" for node_id, controller_port in zip(ids, controller_ports))
    replication = min(len(ports), MAX_CLUSTER_REPLICATION)
    return [
        KafkaNode(host=host, port=port, controller_port=controller_port, data_dir=data_root / f"node-{node_id}",
                  heap_mb=heap_mb, partitions=partitions, node_id=node_id, voters=voters, replication=replication)
        for node_id, port, controller_port in zip(ids, ports, controller_ports)
    ]


def server_command(node: KafkaNode) -> list[str]:
    """The node's JVM command line (its config written by `format_storage`), for a supervisor that
    runs or execs it itself."""
    return _java(node, MAIN_CLASS, str(node.config_path))


def _java(node: KafkaNode, main_class: str, *args: str) -> list[str]:
    return [
        "java", f"-Xmx{node.heap_mb}m", f"-Xms{min(node.heap_mb, 128)}m",
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={node.data_dir.resolve()}",
        "-cp", classpath("kafka"), main_class, *args,
    ]


def new_cluster_id() -> str:
    """A cluster id as Kafka writes them: 16 random bytes, URL-safe base64 without padding (it may
    start with "-", hence `--cluster-id=` in one argument)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def shared_cluster_id(data_root: Path) -> str:
    """The id of the cluster whose nodes live under data_root, kept in data_root/cluster.id: made
    on first use, so nodes formatted at once (one process each) or later all agree."""
    target = data_root / CLUSTER_ID_FILE
    if not target.exists():
        data_root.mkdir(parents=True, exist_ok=True)
        draft = data_root / f".{CLUSTER_ID_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        draft.write_text(new_cluster_id() + "\n")
        try:
            os.link(draft, target)  # atomic and never overwrites: the first node's id wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return target.read_text().strip()


def format_storage(node: KafkaNode, cluster_id: str | None = None) -> None:
    """Write the config and format the log dir once (later starts keep every topic, offset and
    group). A node of a multi-voter quorum needs its cluster's id; a single node makes its own."""
    config = node.write_config()
    if node.formatted():
        found = node.formatted_cluster_id()
        if cluster_id is not None and found != cluster_id:
            raise RuntimeError(f"{node.log_dir} belongs to Kafka cluster {found}, not {cluster_id}: "
                               f"it cannot join; delete {node.data_dir} to make it a new node of this cluster")
        return
    if cluster_id is None:
        if node.quorum_size > 1:
            raise ValueError(f"node {node.node_id} votes in a quorum of {node.quorum_size}: format it with the "
                             "cluster's id (shared_cluster_id), or the nodes will not form one cluster")
        cluster_id = new_cluster_id()
    result = subprocess.run(
        _java(node, STORAGE_TOOL, "format", f"--cluster-id={cluster_id}", f"--config={config}"),
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"formatting Kafka storage in {node.log_dir} failed: {result.stderr or result.stdout}")


def start_kafka(node: KafkaNode, log_file: Path | None = None, cluster_id: str | None = None) -> subprocess.Popen:
    """Format if needed, then start the node's JVM in its own process group (stop with stop_kafka)."""
    format_storage(node, cluster_id)
    out = open(log_file or node.data_dir / "kafka.out", "ab")
    try:
        return subprocess.Popen(
            server_command(node),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        out.close()


def stop_kafka(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM (Kafka's controlled shutdown flushes and closes the logs), SIGKILL after timeout."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
