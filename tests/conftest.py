"""Fixtures that start real processes: a Tansu broker per test on a free port, and helpers to
run the Faust worker and the Spark sink against it."""
from __future__ import annotations

import pytest

from app.broker import create_topics, start_tansu, stop_tansu, wait_for_broker
from app.processes import free_port
from app.settings import Settings


@pytest.fixture
def broker_settings() -> Settings:
    """Settings for an embedded broker of this test alone (topics created, nothing shared)."""
    settings = Settings(_env_file=None, broker_port=free_port(), faust_web_port=free_port())
    process = start_tansu(settings.broker_host, settings.broker_port)
    try:
        wait_for_broker(settings.bootstrap_servers, timeout=30)
        create_topics(settings)
        yield settings
    finally:
        stop_tansu(process)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the tests that run Spark in-process."""
    import os
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("tweetlake-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
