"""A single-node Apache Kafka in KRaft mode (one JVM, broker and controller), on loopback only.

Its log dirs are on disk, so a restart keeps topics, committed offsets and consumer groups; the
storage is formatted once, on the first start. The jars come from `engines/poms/kafka.xml`.
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


@dataclass(frozen=True)
class KafkaNode:
    """Where one embedded broker listens and keeps its data."""

    host: str
    port: int
    controller_port: int
    data_dir: Path
    heap_mb: int = 512
    partitions: int = 4

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    def server_properties(self) -> dict[str, str]:
        listener = f"PLAINTEXT://{self.host}:{self.port}"
        controller = f"CONTROLLER://{self.host}:{self.controller_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"{listener},{controller}",
            "advertised.listeners": listener,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir.resolve()),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
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


def format_storage(node: KafkaNode) -> None:
    """Format the log dir once; later starts keep every topic, offset and group."""
    config = node.write_config()
    if node.formatted():
        return
    result = subprocess.run(
        _java(node, STORAGE_TOOL, "format", f"--cluster-id={new_cluster_id()}", f"--config={config}"),
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"formatting Kafka storage in {node.log_dir} failed: {result.stderr or result.stdout}")


def start_kafka(node: KafkaNode, log_file: Path | None = None) -> subprocess.Popen:
    """Format if needed, then start the broker JVM in its own process group (stop with stop_kafka)."""
    format_storage(node)
    out = open(log_file or node.data_dir / "kafka.out", "ab")
    try:
        return subprocess.Popen(
            _java(node, MAIN_CLASS, str(node.config_path)),
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
