"""The broker process of the Procfile set: an embedded Apache Kafka with the project's topics,
retention that can delete, and data that survives a restart or a crash of the broker."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import psutil
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource

from engines.broker import admin_client, project_topics
from tests.support.kafka_io import consume_keys, produce
from tests.support.processes import wait_for
from tests.support.settings import embedded_broker_settings

pytestmark = pytest.mark.integration


def committed_offset(bootstrap_servers: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group, "log_level": 2})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        consumer.close()


# librdkafka does not mark these retriable for a synchronous commit, but any client retries them.
COORDINATOR_NOT_READY = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                         KafkaError.COORDINATOR_NOT_AVAILABLE)


def commit(bootstrap_servers: str, group: str, topic: str, offset: int, timeout: float = 60.0) -> None:
    """Commit as a client does, retrying while a new broker's group coordinator is not ready
    (it may still be loading __consumer_offsets)."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group, "log_level": 2,
                         "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
                return
            except KafkaException as error:
                code = error.args[0].code()
                if code not in COORDINATOR_NOT_READY or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def test_the_broker_process_keeps_topics_data_and_groups_across_a_crash(tmp_path):
    settings = embedded_broker_settings(tmp_path / "kafka")
    env = {**os.environ, "BROKER_PORT": str(settings.broker_port), "LOG_LEVEL": "info",
           "KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port), "KAFKA_DATA_DIR": str(settings.kafka_data_dir),
           "TOPIC_RAW": settings.topic_raw, "TOPIC_TYPED": settings.topic_typed,
           "TOPIC_DEAD_LETTER": settings.topic_dead_letter, "TOPIC_COMPLIANCE": settings.topic_compliance,
           "TOPIC_RETENTION_MS": "600000"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    log_path = tmp_path / "broker.log"
    servers = settings.bootstrap_servers
    with open(log_path, "wb") as log_file:
        runner = subprocess.Popen([sys.executable, "-m", "engines.broker"], env=env, cwd=tmp_path,
                                  stdout=log_file, stderr=subprocess.STDOUT)
        try:
            def kafka_children():
                return [child for child in psutil.Process(runner.pid).children() if child.name() == "java"]

            wait_for(lambda: b"ready at" in log_path.read_bytes() and kafka_children(), 90, "broker ready")
            assert brokers_using(settings.kafka_data_dir) == kafka_children()
            # Topics with retention that deletes: segments roll at a sixth of the retention.
            resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in project_topics(settings)]
            admin = admin_client(servers)
            for future in admin.describe_configs(resources).values():
                configs = future.result()
                assert configs["retention.ms"].value == "600000"
                assert configs["segment.ms"].value == "100000"
                assert configs["segment.bytes"].value == str(64 * 1024 * 1024)
            group = f"group-{uuid.uuid4().hex[:6]}"
            keys = [f"k{i}".encode() for i in range(200)]
            produce(servers, settings.topic_raw, ((key, b"value") for key in keys))
            commit(servers, group, settings.topic_raw, 42)

            first = kafka_children()[0]
            first.send_signal(signal.SIGKILL)
            wait_for(lambda: b"restart 1" in log_path.read_bytes(), 30, "the restart")
            wait_for(lambda: kafka_children() and kafka_children()[0].pid != first.pid, 30, "a new broker")

            assert sorted(consume_keys(servers, settings.topic_raw, len(keys), timeout=60)) == sorted(keys)
            assert committed_offset(servers, group, settings.topic_raw) == 42
        finally:
            runner.send_signal(signal.SIGTERM)
            runner.wait(timeout=60)
    assert runner.returncode == 0
    assert not brokers_using(settings.kafka_data_dir), "the broker JVM outlived the runner"


def brokers_using(data_dir) -> list[psutil.Process]:
    """Kafka JVMs started with this data dir's config (their command line names it)."""
    config = str((data_dir / "server.properties").resolve())
    return [p for p in psutil.process_iter(["cmdline"]) if config in (p.info["cmdline"] or [])]


def test_a_clear_error_when_the_broker_cannot_start(tmp_path):
    """The controller port taken: the runner says the broker exited, and exits 1."""
    settings = embedded_broker_settings(tmp_path / "kafka")
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.kafka_controller_port))
        squatter.listen()
        env = {**os.environ, "BROKER_PORT": str(settings.broker_port), "KAFKA_DATA_DIR": str(settings.kafka_data_dir),
               "KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port)}
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        result = subprocess.run([sys.executable, "-m", "engines.broker"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "embedded Kafka broker exited" in result.stderr + result.stdout
