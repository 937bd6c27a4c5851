"""One entry point for reading a Kafka topic as a stream, whichever Kafka source Spark can use.

Spark's built-in `kafka` format needs the spark-sql-kafka jar (`--packages` on a cluster); where
it is missing, `tweetlake_kafka` (see `kafka_source`) gives the same columns and options.
"""
from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession

from spark_sink.kafka_source import KafkaDataSource

logger = logging.getLogger(__name__)

KAFKA_PROVIDER = "org.apache.spark.sql.kafka010.KafkaSourceProvider"
MODES = ("auto", "kafka", "python")
_PACKAGE_DIR = Path(__file__).resolve().parent
_ZIP_NAME = "tweetlake_spark_sink.zip"


def read_kafka_stream(
    spark: SparkSession,
    *,
    bootstrap_servers: str,
    topic: str,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    fail_on_data_loss: bool = False,
    mode: str = "auto",
) -> DataFrame:
    """A streaming DataFrame of `topic` with Spark's Kafka columns.

    mode "kafka" forces Spark's built-in source, "python" forces ours, "auto" takes the built-in
    one when its jar is loaded and ours otherwise.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    builtin = mode != "python" and builtin_kafka_available(spark)
    if mode == "kafka" and not builtin:
        raise RuntimeError(
            f"Spark's Kafka connector is not on the classpath ({KAFKA_PROVIDER} not found): start"
            f" Spark with --packages org.apache.spark:spark-sql-kafka-0-10_2.13:{spark.version},"
            " or use mode 'python' or 'auto'"
        )
    if builtin:
        source = "kafka"
    else:
        ship_package(spark)
        spark.dataSource.register(KafkaDataSource)
        source = KafkaDataSource.name()
    logger.info("reading Kafka topic %s with the %r source (mode %s)", topic, source, mode)
    reader = (
        spark.readStream.format(source)
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("failOnDataLoss", str(fail_on_data_loss).lower())
    )
    if max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def builtin_kafka_available(spark: SparkSession) -> bool:
    # The context class loader is the one that sees jars added with --packages / --jars.
    loader = spark._jvm.java.lang.Thread.currentThread().getContextClassLoader()
    try:
        loader.loadClass(KAFKA_PROVIDER)
    except Py4JJavaError:
        return False
    return True


def ship_package(spark: SparkSession) -> None:
    """Send this package to the executors, which unpickle our reader by module name; zipped on
    the fly so it also works where the project is not installed on the workers."""
    sc = spark.sparkContext
    if any(Path(uri).name == _ZIP_NAME for uri in sc.listFiles):
        return
    path = Path(tempfile.mkdtemp(prefix="tweetlake-")) / _ZIP_NAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for module in sorted(_PACKAGE_DIR.glob("*.py")):
            archive.write(module, f"{_PACKAGE_DIR.name}/{module.name}")
    sc.addPyFile(str(path))
