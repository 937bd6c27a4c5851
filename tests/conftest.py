"""Fixtures that start real processes: one Apache Kafka for the whole session (each test gets its
own topics and consumer group), a broker of a test's own where it kills or restarts it, and a
local Spark session."""
from __future__ import annotations


import pytest

from engines.broker import Broker, create_topics
from config.settings import Settings
from tests.support.settings import embedded_broker_settings, isolated_settings

pytest_plugins = ["tests.support.hdfs_cluster"]


@pytest.fixture(scope="session")
def session_kafka(tmp_path_factory) -> str:
    """One embedded Kafka for the session; yields its bootstrap servers."""
    broker = Broker(embedded_broker_settings(tmp_path_factory.mktemp("kafka")))
    broker.start()
    try:
        yield broker.settings.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def broker_settings(session_kafka) -> Settings:
    """Settings on the session's Kafka with topics of this test alone (created)."""
    host, port = session_kafka.split(":")
    settings = isolated_settings(broker_host=host, broker_port=int(port))
    create_topics(settings)
    return settings


@pytest.fixture
def own_broker(tmp_path) -> Broker:
    """An embedded Kafka of this test alone, for tests that kill or restart it."""
    broker = Broker(embedded_broker_settings(tmp_path / "kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def spark():
    """One local Spark session with Delta Lake for the tests that run Spark in-process."""
    import os
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    from engines.jars import jar_paths
    from spark_sink.session import DELTA_SESSION_CONF

    builder = SparkSession.builder.config("spark.jars", ",".join(str(path) for path in jar_paths("delta")))
    for key, value in DELTA_SESSION_CONF.items():
        builder = builder.config(key, value)
    session = (
        builder.master("local[2]")
        .appName("tweetlake-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def gold_lake(tmp_path_factory):
    """One lake whose silver and gold the real jobs wrote, killed and restarted (tests/gold_lake.py),
    shared by the silver and the gold tests."""
    from tests.support.gold_lake import build_gold_lake

    return build_gold_lake(tmp_path_factory.mktemp("gold"))
