"""`make cluster`: the whole pipeline as a local multi-node deployment, every node its own process
on 127.0.0.1 under the supervisor, with the lake and the checkpoints on HDFS.

`up` writes the layout (ports, data folder) to DATA/layout.json, with DATA/Procfile and
DATA/cluster.env, and runs them; `node` and the rest read it. Nodes and ports: docs/operations.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engines.daemon import port_in_use

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
DEFAULT_DATA_DIR = REPO / ".cluster"


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nobody listens on, below the kernel's ephemeral range when it leaves
    room: a port the OS hands out for outgoing connections can be taken by one between this check
    and the node's bind (seen: a broker's listener, bound last, lost its port to a connection of
    another JVM of the cluster)."""
    try:
        ephemeral_low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    picked: list[int] = []
    if ephemeral_low > 20000 + 10 * count:
        candidates = random.sample(range(20000, ephemeral_low), min(20 * count, ephemeral_low - 20000))
        picked = [port for port in candidates if port_in_use(HOST, port) is None][:count]
    while len(picked) < count:  # no room below the range: whatever the OS gives
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        if port not in picked:
            picked.append(port)
    return picked


@dataclass(frozen=True)
class ClusterLayout:
    """Every node's ports and the data folder; the defaults are the ports `make cluster` promises."""

    data_dir: str = str(DEFAULT_DATA_DIR)
    kafka_ports: tuple[int, ...] = (9092, 9093, 9094)
    kafka_controller_ports: tuple[int, ...] = (19092, 19093, 19094)
    namenode_port: int = 9000
    namenode_http_port: int = 9870
    datanodes: int = 3
    spark_master_port: int = 7077
    spark_ui_port: int = 8080
    spark_worker_ui_ports: tuple[int, ...] = (8081, 8082)
    faust_web_ports: tuple[int, ...] = (6066, 6070)  # 6067-6069 are the Spark jobs' metrics
    dashboard_port: int = 8050
    spark_metrics_port: int = 6067
    supervise_metrics_port: int = 6071
    topic_partitions: int = 8  # more than workers: a worker's partitions move to the others
    extra_settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for port, what in self.ports():
            if port in seen:
                raise ValueError(f"port {port} is given to both the {seen[port]} and the {what}")
            seen[port] = what

    def ports(self) -> list[tuple[int, str]]:
        """Every port the cluster listens on that the layout names (DataNodes take free ones)."""
        ports = [(p, f"Kafka broker {i}") for i, p in enumerate(self.kafka_ports, 1)]
        ports += [(p, f"Kafka controller {i}") for i, p in enumerate(self.kafka_controller_ports, 1)]
        ports += [(self.namenode_port, "NameNode RPC"), (self.namenode_http_port, "NameNode HTTP"),
                  (self.spark_master_port, "Spark master"), (self.spark_ui_port, "Spark master UI")]
        ports += [(p, f"Spark worker {i} UI") for i, p in enumerate(self.spark_worker_ui_ports, 1)]
        ports += [(p, f"Faust worker {i}") for i, p in enumerate(self.faust_web_ports, 1)]
        ports.append((self.dashboard_port, "dashboard"))
        ports.append((self.supervise_metrics_port, "supervisor's metrics"))
        if self.spark_metrics_port:  # one port per job from this one (Settings.spark_metrics_port_of)
            ports += [(self.spark_metrics_port + i, f"{job} job's metrics") for i, job in enumerate(("bronze", "silver", "gold"))]
        return ports

    @classmethod
    def on_free_ports(cls, data_dir: Path, **values) -> "ClusterLayout":
        """A layout of ports nobody listens on now (tests run beside other brokers and HDFS)."""
        ports = iter(free_ports(16))
        return cls(
            data_dir=str(data_dir),
            kafka_ports=(next(ports), next(ports), next(ports)),
            kafka_controller_ports=(next(ports), next(ports), next(ports)),
            namenode_port=next(ports), namenode_http_port=next(ports),
            spark_master_port=next(ports), spark_ui_port=next(ports),
            spark_worker_ui_ports=(next(ports), next(ports)),
            faust_web_ports=(next(ports), next(ports)),
            dashboard_port=next(ports),
            supervise_metrics_port=next(ports),
            spark_metrics_port=0,
            **values,
        )

    @property
    def path(self) -> Path:
        return Path(self.data_dir)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{HOST}:{port}" for port in self.kafka_ports)

    @property
    def namenode_uri(self) -> str:
        return f"hdfs://{HOST}:{self.namenode_port}"

    @property
    def lake_root(self) -> str:
        return f"{self.namenode_uri}/lake"

    @property
    def spark_master(self) -> str:
        return f"spark://{HOST}:{self.spark_master_port}"

    def settings_env(self) -> dict[str, str]:
        """The settings every pipeline process of the cluster reads (config/settings.py names)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "TOPIC_PARTITIONS": str(self.topic_partitions),
            "TOPIC_REPLICATION_FACTOR": "3",
            "TOPIC_MIN_INSYNC_REPLICAS": "2",
            "LAKE_ROOT": self.lake_root,
            "HDFS_REPLICATION": "3",
            "SPARK_MASTER": self.spark_master,
            "SPARK_CORES_MAX": "1",
            "SPARK_METRICS_PORT": str(self.spark_metrics_port),
            "DASHBOARD_PORT": str(self.dashboard_port),
            "SUPERVISE_METRICS_PORT": str(self.supervise_metrics_port),
            "SUPERVISE_DIR": str(self.path / "run"),
            # The Spark jobs' Hadoop client reads the cluster's hdfs-site.xml (its write-pipeline
            # settings keep a writer going when one of the 3 DataNodes dies).
            "HADOOP_CONF_DIR": str(self.path / "hdfs" / "conf"),
            **self.extra_settings,
        }

    def save(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / "layout.json"
        target.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return target

    @classmethod
    def load(cls, data_dir: Path) -> "ClusterLayout":
        values = json.loads((data_dir / "layout.json").read_text())
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


NODES = ("kafka-1", "kafka-2", "kafka-3", "namenode", "datanode-1", "datanode-2", "datanode-3",
         "spark-master", "spark-worker-1", "spark-worker-2")
# Without these the rest cannot work: giving up on one stops the set. Any one broker, DataNode or
# Spark worker can be lost (replication, the other workers); a Faust worker or job is not essential.
ESSENTIAL = ("namenode", "spark-master")
PIPELINE = ("worker-1", "worker-2", "sink", "silver", "gold", "dashboard")


def pipeline_command(layout: ClusterLayout, name: str) -> tuple[list[str], dict[str, str]]:
    """The command and extra environment of a pipeline process (after the cluster's settings)."""
    python = sys.executable
    if name.startswith("worker-"):
        index = int(name.split("-")[1])
        env = {"FAUST_WEB_PORT": str(layout.faust_web_ports[index - 1]),
               "FAUST_DATA_DIR": str(layout.path / f"faust-{index}")}
        if index > 1:
            env["SOURCE"] = "none"  # one ingestion source for the set: the first worker's
        return [python, "-m", "engines.local_cluster", "--data-dir", str(layout.path), "worker", str(index)], env
    if name in ("sink", "silver", "gold"):
        job = [] if name == "sink" else [name]
        return [python, "-m", "engines.local_cluster", "--data-dir", str(layout.path), "job", *job], {}
    if name == "dashboard":
        return [python, "-m", "engines.local_cluster", "--data-dir", str(layout.path), "dashboard"], {}
    raise KeyError(f"no pipeline process {name!r}: {', '.join(PIPELINE)}")


def procfile(layout: ClusterLayout) -> str:
    python = sys.executable
    lines = [f"{name}: exec {python} -m engines.local_cluster --data-dir {layout.path} node {name}" for name in NODES]
    for name in PIPELINE:
        command, env = pipeline_command(layout, name)
        assignments = " ".join(f"{key}={value}" for key, value in env.items())
        lines.append(f"{name}: exec env {assignments} {' '.join(command)}".replace("env  ", ""))
    return "\n".join(lines) + "\n"


def kafka_nodes(layout: ClusterLayout) -> list:
    from engines.kafka import cluster_nodes

    heap = int(os.environ.get("KAFKA_HEAP_MB", "512"))
    return cluster_nodes(HOST, layout.kafka_ports, layout.kafka_controller_ports, layout.path / "kafka", heap,
                         layout.topic_partitions)


def hdfs_layout(layout: ClusterLayout):
    from engines.hdfs import HdfsLayout

    heap = int(os.environ.get("HDFS_HEAP_MB", "384"))
    return HdfsLayout(HOST, layout.namenode_port, layout.namenode_http_port, layout.path / "hdfs", heap,
                      datanodes=layout.datanodes, replication=3)


def spark_layout(layout: ClusterLayout):
    from engines.spark_standalone import StandaloneLayout

    return StandaloneLayout(HOST, layout.spark_master_port, layout.spark_ui_port, workers=2,
                            data_dir=layout.path / "spark", worker_ui_ports=layout.spark_worker_ui_ports)


def node_command(layout: ClusterLayout, name: str) -> list[str]:
    """Prepare node `name` (its config; its storage formatted on the first start) and return its
    JVM's command line."""
    role, _, number = name.rpartition("-") if name[-1].isdigit() else (name, "", "")
    index = int(number) if number else 0
    if role == "kafka":
        from engines.kafka import format_storage, server_command, shared_cluster_id

        node = kafka_nodes(layout)[index - 1]
        format_storage(node, shared_cluster_id(layout.path / "kafka"))
        return server_command(node)
    if role == "spark-master":
        from engines.spark_standalone import master_command

        return master_command(spark_layout(layout))
    if role == "spark-worker":
        from engines.spark_standalone import worker_command

        spark = spark_layout(layout)
        worker = index - 1  # the engine numbers its workers from 0
        for folder in ("work", "local"):
            (spark.worker_dir(worker) / folder).mkdir(parents=True, exist_ok=True)
        return worker_command(spark, worker)
    if role == "namenode":
        from engines.hdfs import namenode_command

        return namenode_command(hdfs_layout(layout))
    if role == "datanode":
        from engines.hdfs import datanode_command

        return datanode_command(hdfs_layout(layout), index)
    raise KeyError(f"no node {name!r}: {', '.join(NODES)}")


def run_node(layout: ClusterLayout, name: str) -> int:
    """Replace this process by the node's JVM, so the supervisor's signals, and a test's SIGKILL,
    reach the JVM itself."""
    command = node_command(layout, name)
    os.execvp(command[0], command)


def wait_for_hdfs(layout: ClusterLayout, timeout: float) -> None:
    """Until the NameNode is out of safe mode with all DataNodes live, and the lake's folder exists
    (the pipeline's processes start beside the nodes and must not fail on a NameNode still starting)."""
    from engines.hdfs import health, namenode_bean

    hdfs = hdfs_layout(layout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            ready = (health(hdfs).live_datanodes >= layout.datanodes
                     and not namenode_bean(hdfs, "NameNodeInfo").get("Safemode"))
        except (OSError, ValueError, KeyError):  # still starting
            ready = False
        if ready:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"HDFS at {layout.namenode_uri} not ready with {layout.datanodes} DataNodes "
                               f"after {timeout:.0f}s")
        time.sleep(1)
    from hdfs import InsecureClient

    InsecureClient(f"http://{HOST}:{layout.namenode_http_port}").makedirs("/lake")


def wait_for_spark_workers(layout: ClusterLayout, timeout: float) -> None:
    from engines.spark_standalone import alive_workers, master_state

    deadline = time.monotonic() + timeout
    while True:
        try:
            if alive_workers(master_state(spark_layout(layout))):
                return
        except (OSError, ValueError):  # still starting
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Spark worker alive at {layout.spark_master} after {timeout:.0f}s")
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.local_cluster", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the cluster's data (default .cluster/)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="write the layout and run every node and pipeline process under supervision (python -m supervise)")
    node = commands.add_parser("node", help="run one node in the foreground")
    node.add_argument("name", choices=NODES)
    commands.add_parser("env", help="print the pipeline's settings as KEY=VALUE lines")
    worker = commands.add_parser("worker", help="create the topics if missing, then run a Faust worker")
    worker.add_argument("index", type=int)
    job = commands.add_parser("job", help="wait for the topics, then submit a Spark job to the master")
    job.add_argument("job", nargs="?", default="bronze", choices=("bronze", "silver", "gold"))
    commands.add_parser("dashboard", help="wait for HDFS, then run the dashboard")
    args = parser.parse_args(argv)

    if args.command == "up":  # a layout written before keeps its ports (delete layout.json for the defaults)
        data_dir = args.data_dir.resolve()
        layout = ClusterLayout.load(data_dir) if (data_dir / "layout.json").exists() else ClusterLayout(data_dir=str(data_dir))
        layout.save()
        (layout.path / "Procfile").write_text(procfile(layout))
        (layout.path / "cluster.env").write_text("".join(f"{k}={v}\n" for k, v in layout.settings_env().items()))
        os.execv(sys.executable, [sys.executable, "-m", "supervise", "--procfile", str(layout.path / "Procfile"),
                                  "--env", str(layout.path / "cluster.env"), "--workdir", str(REPO),
                                  "--infra", ",".join(NODES), "--essential", ",".join(ESSENTIAL)])
    layout = ClusterLayout.load(args.data_dir.resolve())
    if args.command == "env":
        print("".join(f"{k}={v}\n" for k, v in layout.settings_env().items()), end="")
        return 0
    if args.command == "node":
        return run_node(layout, args.name)
    for key, value in layout.settings_env().items():  # a setting given in the environment wins
        os.environ.setdefault(key, value)
    wait_for_hdfs(layout, timeout=300)
    if args.command == "dashboard":
        os.execv(sys.executable, [sys.executable, "-m", "dashboard"])
    if args.command == "worker":
        from engines.broker import create_topics, wait_for_broker
        from config.settings import get_settings

        settings = get_settings()
        wait_for_broker(settings.bootstrap_servers, timeout=120)
        create_topics(settings)
        faust = Path(sys.executable).parent / "faust"
        os.execv(faust, [str(faust), "-A", "app", "worker", "-l", "info", "--web-port", os.environ["FAUST_WEB_PORT"]])
    from engines.broker import wait_for_topics
    from config.settings import get_settings

    wait_for_topics(get_settings(), timeout=300)
    wait_for_spark_workers(layout, timeout=300)
    job = [] if args.job == "bronze" else [args.job]
    os.execv(sys.executable, [sys.executable, "-m", "spark_sink.submit", *job])
    return 0


if __name__ == "__main__":
    sys.exit(main())
