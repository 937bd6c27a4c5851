"""What every stage shares: the run's configuration, one embedded Kafka broker on free ports,
per-stage settings (own topics, consumer group, lake and web port), the project's processes
started with those settings, and a fast producer to pre-load topics."""
from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from confluent_kafka import Producer

from engines.broker import Broker, admin_client, create_topics
from pipeline.processes import REPO, Process, free_port, settings_env, start_sink, start_worker
from pipeline.processes import wait_for  # noqa: F401 - the stages import it from here
from config.settings import Settings
from bench.monitor import TreeMonitor
from bench.workload import TweetPool
from tweets.normalizer import FilterPolicy


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of each stage: the full run takes about 3.5 minutes on 2 cores, `quick` about 1.5."""

    quick: bool
    seed: int = 42
    clean: bool = False
    broker_messages: int = 100_000
    seed_pattern_seconds: float = 10.0
    ingest_messages: int = 50_000
    ingest_synthetic_messages: int = 20_000
    normalize_messages: int = 50_000
    sink_rows: int = 60_000
    silver_rows: int = 10_000
    silver_load_rate: float = 250.0  # accepted tweets/s offered to the whole pipeline
    silver_load_seconds: float = 90.0
    e2e_warmup: int = 300
    e2e_burst: int = 120_000
    e2e_latency_seconds: float = 60.0
    e2e_rate: float | None = None  # None: half the sustained rate measured just before
    trigger_seconds: float = 5.0
    # The opt-in soak stage (--stages soak): steady load for minutes, memory sampled.
    soak_rate: float = 500.0
    soak_minutes: float = 30.0
    soak_retention_ms: int = 300_000
    soak_dedup_window_seconds: float = 120.0
    spark_master: str = "local[*]"
    py_spy: bool = False
    jfr: bool = False

    @classmethod
    def quick_sizes(cls) -> dict:
        return {
            "broker_messages": 20_000,
            "seed_pattern_seconds": 3.0,
            "ingest_messages": 10_000,
            "ingest_synthetic_messages": 5_000,
            "normalize_messages": 10_000,
            "sink_rows": 12_000,
            "silver_rows": 3_000,
            "silver_load_seconds": 30.0,
            "e2e_warmup": 200,
            "e2e_burst": 10_000,
            "e2e_latency_seconds": 12.0,
            "soak_minutes": 2.0,
        }


Log = Callable[[str], None]


class Bench:
    """The run's broker and processes; `close()` stops everything this run started."""

    def __init__(self, config: BenchConfig, workdir: Path, log: Log):
        self.config = config
        self.workdir = workdir
        self.log = log
        self.run_id = uuid.uuid4().hex[:8]
        self.port = free_port()
        self._broker: Broker | None = None
        self._processes: list[Process] = []
        self.broker_monitor: TreeMonitor | None = None
        self.measured: dict[str, dict] = {}  # each finished stage's results, for stages that compare
        base = Settings(_env_file=None, kafka_bootstrap_servers=None, broker_port=self.port)
        self.pool = TweetPool(seed=config.seed, clean=config.clean, policy=FilterPolicy.configured(base.filter, base.language_list, base.max_payload_bytes))

    # --- broker ----------------------------------------------------------------------------------

    def start_broker(self) -> None:
        settings = Settings(_env_file=None, kafka_bootstrap_servers=None, broker_port=self.port,
                            kafka_controller_port=free_port())
        self._broker = Broker(settings, data_dir=self.kafka_data_dir)
        self._broker.start()
        self.broker_monitor = TreeMonitor(self._broker.process.pid).start()
        self.log(f"Kafka broker (pid {self._broker.process.pid}) on 127.0.0.1:{self.port}")

    @property
    def kafka_data_dir(self) -> Path:
        return self.workdir / "kafka"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def broker_cpu(self) -> float:
        return self.broker_monitor.cpu_seconds() if self.broker_monitor else 0.0

    # --- per-stage settings and topics -----------------------------------------------------------

    def stage_settings(self, stage: str, **updates) -> Settings:
        """Own topics, consumer group, lake and web port per stage, on the shared broker."""
        stage_dir = self.workdir / stage
        stage_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"bench-{self.run_id}-{stage}"
        values = {
            "kafka_bootstrap_servers": None,
            "broker_port": self.port,
            "topic_raw": f"{prefix}.raw",
            "topic_typed": f"{prefix}.typed",
            "topic_dead_letter": f"{prefix}.dead-letter",
            "topic_compliance": f"{prefix}.compliance",
            "faust_app_id": prefix,
            "faust_web_port": free_port(),
            "faust_data_dir": stage_dir / ".faust",
            "lake_root": str(stage_dir / "lake"),
            "spark_master": self.config.spark_master,
            "sink_trigger_seconds": self.config.trigger_seconds,
            "source": "none",
            "log_level": "info",
            **updates,
        }
        settings = Settings(_env_file=None, **values)
        create_topics(settings)
        return settings

    def delete_stage_topics(self, settings: Settings) -> None:
        """Drop a finished stage's topics (and Faust's changelogs): later stages get the disk back."""
        admin = admin_client(settings.bootstrap_servers)
        try:
            names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(settings.faust_app_id)]
            if names:
                for future in admin.delete_topics(names, operation_timeout=10).values():
                    future.result()
        except Exception as error:  # a leftover topic only costs broker disk
            self.log(f"  (could not delete topics of {settings.faust_app_id}: {error})")

    # --- processes -------------------------------------------------------------------------------

    def _register(self, process: Process) -> Process:
        self._processes.append(process)
        return process

    def start_worker(self, settings: Settings, name: str) -> Process:
        return self._register(start_worker(settings, self.workdir, name=name))

    def start_sink(self, settings: Settings, *args: str, name: str, **overrides) -> Process:
        return self._register(start_sink(settings, self.workdir, *args, name=name, **overrides))

    def start_python(self, settings: Settings, name: str, *args: str) -> Process:
        env = settings_env(settings)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return self._register(Process(name, [sys.executable, *args], env, self.workdir))

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self._processes:
            self._processes.remove(process)

    def close(self) -> None:
        for process in reversed(self._processes):
            process.stop(timeout=20)
        self._processes.clear()
        if self.broker_monitor:
            self.broker_monitor.stop()
        if self._broker is not None:
            self._broker.stop()
            self._broker = None

    # --- producing -------------------------------------------------------------------------------

    def produce(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]], bootstrap_servers: str | None = None,
                **config) -> int:
        """Pre-load a topic as fast as librdkafka goes (on the run's broker unless told another);
        returns how many were delivered."""
        producer = Producer({
            "bootstrap.servers": bootstrap_servers or self.bootstrap_servers,
            "linger.ms": 5,
            "queue.buffering.max.messages": 500_000,
            "log_level": 2,
            **config,
        })
        failed = []
        count = 0

        def on_delivery(error, _message):
            if error is not None:
                failed.append(error)

        for key, value in messages:
            while True:
                try:
                    producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            count += 1
        remaining = producer.flush(60)
        if remaining or failed:
            raise RuntimeError(f"{remaining} undelivered, {len(failed)} failed producing to {topic}: {failed[:3]}")
        return count


def rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None
