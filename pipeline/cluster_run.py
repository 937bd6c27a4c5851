"""A `make cluster` layout run as child processes of one Python process: each node and pipeline
process started with the same command its Procfile line runs, killed or restarted one at a time,
and probes that say when a node has joined. The cluster benchmark runs it; the fault test, which
runs `make cluster` itself, uses its probes."""
from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from agents.counters import worker_counters
from engines.broker import admin_client, create_topics
from engines.local_cluster import NODES, ClusterLayout, hdfs_layout, pipeline_command
from config.settings import Settings
from engines.hdfs import health
from pipeline.processes import Process, wait_for


def outside_settings() -> dict[str, str]:
    """This process's environment without any pipeline setting: the cluster's own apply."""
    return {key: value for key, value in os.environ.items() if key.lower() not in Settings.model_fields}


@dataclass
class LocalCluster:
    layout: ClusterLayout
    workdir: Path
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layout.save()
        self.env = outside_settings() | self.layout.settings_env()

    @property
    def settings(self) -> Settings:
        """The settings the cluster's pipeline processes read."""
        fields = Settings.model_fields
        return Settings(_env_file=None, **{k.lower(): v for k, v in self.env.items() if k.lower() in fields})

    def command(self, name: str) -> tuple[list[str], dict[str, str]]:
        if name in NODES:
            return [sys.executable, "-m", "engines.local_cluster", "--data-dir", str(self.layout.path), "node", name], {}
        return pipeline_command(self.layout, name)

    def start(self, name: str) -> Process:
        command, extra = self.command(name)
        self.processes[name] = Process(name, command, self.env | extra, self.workdir)
        return self.processes[name]

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def stop(self) -> None:
        """Stop every process, the pipeline's before the nodes'."""
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop(timeout=20)

    def all_processes(self) -> tuple[Process, ...]:
        return tuple(self.processes.values())

    def start_nodes(self, timeout: float = 180.0) -> None:
        """Every Kafka broker, HDFS and Spark node, until all have joined; then the topics."""
        for name in NODES:
            self.start(name)
        nodes = self.all_processes()
        wait_for(lambda: self.brokers_up() == len(self.layout.kafka_ports), timeout, "every Kafka broker", nodes)
        wait_for(lambda: self.live_datanodes() == self.layout.datanodes, timeout, "every DataNode", nodes)
        wait_for(lambda: self.alive_spark_workers() == len(self.layout.spark_worker_ui_ports), timeout,
                 "every Spark worker", nodes)
        dead = [process for process in self.all_processes() if not process.alive()]
        if dead:  # a node that joined, then failed (a port taken meanwhile, say)
            raise RuntimeError("; ".join(f"{p.name} exited after it joined:\n{p.log_tail(3000)}" for p in dead))
        create_topics(self.settings)

    # --- probes: has a node joined? ------------------------------------------------------------

    def brokers_up(self) -> int:
        try:
            return len(admin_client(self.layout.bootstrap_servers).list_topics(timeout=3).brokers)
        except Exception:  # noqa: BLE001 - librdkafka's errors while brokers start
            return 0

    def in_sync_everywhere(self, topic: str) -> bool:
        """Every partition of `topic` with all its replicas in sync (a restarted broker caught up)."""
        try:
            metadata = admin_client(self.layout.bootstrap_servers).list_topics(topic, timeout=5)
        except Exception:  # noqa: BLE001
            return False
        partitions = metadata.topics[topic].partitions.values()
        return bool(partitions) and all(len(p.isrs) == len(self.layout.kafka_ports) for p in partitions)

    def live_datanodes(self) -> int:
        try:
            return health(hdfs_layout(self.layout)).live_datanodes
        except (OSError, ValueError):
            return 0

    def fully_replicated(self) -> bool:
        """Every DataNode live and every block with all its replicas (the ones written while a
        DataNode was down included)."""
        try:
            state = health(hdfs_layout(self.layout))
        except (OSError, ValueError):
            return False
        return state.live_datanodes == self.layout.datanodes and state.replicated

    def alive_spark_workers(self) -> int:
        state = _http_json(f"http://127.0.0.1:{self.layout.spark_ui_port}/json/")
        return sum(1 for w in (state or {}).get("workers", []) if w.get("state") == "ALIVE")

    def worker_counters(self, index: int) -> dict | None:
        """Faust worker `index`'s /counters/ (1-based); None while its web server is down."""
        return worker_counters(self.layout.faust_web_ports[index - 1]) or None

    def tweets_read(self) -> int:
        """Raw messages the Faust workers have read between them."""
        return sum((self.worker_counters(i) or {}).get("read", 0) for i in range(1, len(self.layout.faust_web_ports) + 1))


def _http_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())
    except (OSError, ValueError):
        return None
