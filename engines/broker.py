"""The broker process of the Procfile set: start the embedded Apache Kafka (or use the configured
Kafka), create the project's topics explicitly, then stay up until told to stop.

The embedded broker keeps its logs in KAFKA_DATA_DIR: a restart keeps topics, offsets and groups.
"""
from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from config.settings import Settings, get_settings
from engines.jars import JarsMissing
from engines.kafka import KafkaNode, start_kafka, stop_kafka

log = logging.getLogger("tweetlake.broker")


def embedded_node(settings: Settings, data_dir: Path | None = None) -> KafkaNode:
    """The embedded broker these settings describe (its data in KAFKA_DATA_DIR unless given)."""
    return KafkaNode(
        host=settings.broker_host,
        port=settings.broker_port,
        controller_port=settings.kafka_controller_port,
        data_dir=data_dir or settings.kafka_data_dir,
        heap_mb=settings.kafka_heap_mb,
        partitions=settings.topic_partitions,
    )


def admin_client(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 2})


def wait_for_broker(bootstrap_servers: str, timeout: float = 60.0,
                    process: subprocess.Popen | None = None, brokers: int = 1) -> None:
    """Block until a metadata request succeeds and lists at least `brokers` live brokers, or raise
    TimeoutError (RuntimeError at once if the broker `process` we started exits meanwhile)."""
    deadline = time.monotonic() + timeout
    admin = admin_client(bootstrap_servers)
    last_error: Exception | str | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the embedded Kafka broker exited with code {process.returncode} before it "
                               f"answered on {bootstrap_servers}: see its output in KAFKA_DATA_DIR/kafka.out")
        try:
            live = len(admin.list_topics(timeout=2.0).brokers)
        except Exception as error:  # librdkafka raises KafkaException with varying codes
            last_error = error
        else:
            if live >= brokers:
                return
            last_error = f"{live} of {brokers} brokers registered"
        time.sleep(0.2)
    raise TimeoutError(f"Kafka at {bootstrap_servers} did not answer within {timeout:.0f}s: {last_error}")


def wait_for_topics(settings: Settings, timeout: float = 60.0) -> None:
    """Block until every project topic exists (created by the broker process)."""
    wait_for_broker(settings.bootstrap_servers, timeout)
    deadline = time.monotonic() + timeout
    admin = admin_client(settings.bootstrap_servers)
    wanted = set(project_topics(settings))
    while time.monotonic() < deadline:
        if wanted <= usable_topics(admin):
            return
        time.sleep(0.3)
    raise TimeoutError(f"topics {sorted(wanted)} not all present after {timeout:.0f}s")


def usable_topics(admin: AdminClient) -> set[str]:
    """Topics whose every partition has a leader (right after creation a cluster's may not yet)."""
    topics = admin.list_topics(timeout=5.0).topics
    return {name for name, topic in topics.items()
            if topic.error is None and topic.partitions
            and all(partition.leader >= 0 for partition in topic.partitions.values())}


def topic_config(settings: Settings) -> dict[str, str]:
    """Retention that really deletes: segments roll often enough for whole ones to expire; and the
    in-sync replicas an acks=all write needs, when set (else the broker's default)."""
    config = {
        "retention.ms": str(settings.topic_retention_ms),
        "segment.ms": str(settings.segment_ms),
        "segment.bytes": str(settings.topic_segment_bytes),
    }
    if settings.topic_min_insync_replicas is not None:
        config["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    return config


def project_topics(settings: Settings) -> dict[str, NewTopic]:
    config = topic_config(settings)
    return {
        name: NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config=config,
        )
        for name in (settings.topic_raw, settings.topic_typed, settings.topic_dead_letter, settings.topic_compliance)
    }


def create_topics(settings: Settings, timeout: float = 60.0) -> list[str]:
    """Create missing project topics with their partition counts; return the ones created. Waits
    until the cluster has a broker per replica; a topic another process created meanwhile (two
    workers starting together) is fine."""
    admin = admin_client(settings.bootstrap_servers)
    existing = set(admin.list_topics(timeout=10.0).topics)
    missing = [topic for name, topic in project_topics(settings).items() if name not in existing]
    if not missing:
        return []
    wait_for_broker(settings.bootstrap_servers, timeout, brokers=settings.topic_replication_factor)
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=10.0).items():
        try:
            future.result()
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            continue
        log.info("created topic %s", name)
        created.append(name)
    return created


class Broker:
    """The configured Kafka, or an embedded one that is restarted if it dies (its data kept)."""

    def __init__(self, settings: Settings, data_dir: Path | None = None):
        self.settings = settings
        self.node = embedded_node(settings, data_dir) if settings.embedded_broker else None
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    def start(self, timeout: float = 90.0) -> None:
        if self.node is not None:
            self.process = start_kafka(self.node)
            log.info("embedded Apache Kafka starting on %s (data in %s)", self.node.bootstrap_servers,
                     self.node.data_dir)
        wait_for_broker(self.settings.bootstrap_servers, timeout, self.process)
        create_topics(self.settings)

    def restart_if_dead(self) -> bool:
        if self.process is None or self.process.poll() is None:
            return False
        self.restarts += 1
        log.error("embedded broker exited (code %s); restart %d from its data in %s",
                  self.process.returncode, self.restarts, self.node.data_dir)
        self.start()
        return True

    def stop(self) -> None:
        if self.process is not None:
            stop_kafka(self.process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engines.broker",
        description=(
            "Start the embedded Apache Kafka (KRaft, one node, data in KAFKA_DATA_DIR) when "
            "KAFKA_BOOTSTRAP_SERVERS is unset, or use the configured Kafka; create the project "
            "topics (TOPIC_PARTITIONS, TOPIC_RETENTION_MS) and stay up until SIGINT/SIGTERM. "
            "With --wait, only wait until the broker answers and the topics exist, then exit."
        ),
    )
    parser.add_argument("--wait", action="store_true", help="wait for broker and topics, then exit")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    if args.wait:
        wait_for_topics(settings, args.timeout)
        return 0

    stop_requested = False

    def request_stop(signum, _frame):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    broker = Broker(settings)
    try:
        broker.start()
    except (JarsMissing, RuntimeError, TimeoutError) as error:
        log.error("%s", error)
        broker.stop()
        return 1
    try:
        where = "embedded Apache Kafka" if settings.embedded_broker else "external Kafka"
        log.info("%s ready at %s; topics: %s", where, settings.bootstrap_servers, ", ".join(project_topics(settings)))
        while not stop_requested:
            time.sleep(0.5)
            broker.restart_if_dead()
    finally:
        broker.stop()
    log.info("broker process stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
