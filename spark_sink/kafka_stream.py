"""A Kafka topic as a stream, through Spark's own `kafka` source (spark-sql-kafka-0-10).

The connector is not in the pyspark wheel: spark_sink.submit puts the jars `make jars` fetched on
--jars (or passes SINK_SPARK_PACKAGES to --packages).
"""
from __future__ import annotations

from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession

KAFKA_PROVIDER = "org.apache.spark.sql.kafka010.KafkaSourceProvider"


class KafkaConnectorMissing(RuntimeError):
    """Spark's Kafka connector is not on the classpath."""


def read_kafka_stream(
    spark: SparkSession,
    *,
    bootstrap_servers: str,
    topic: str,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    fail_on_data_loss: bool = False,
) -> DataFrame:
    """A streaming DataFrame of `topic` with Spark's Kafka columns; KafkaConnectorMissing, saying
    how to add the connector, where Spark has none (its own error names no fix for this project)."""
    if not _connector_loaded(spark):
        raise KafkaConnectorMissing(
            f"Spark's Kafka connector is not on the classpath ({KAFKA_PROVIDER} not found): start the sink"
            " with `python -m spark_sink.submit` after `make jars`, or on a cluster pass spark-submit"
            f" --packages org.apache.spark:spark-sql-kafka-0-10_2.13:{spark.version} (SINK_SPARK_PACKAGES)"
        )
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("failOnDataLoss", str(fail_on_data_loss).lower())
    )
    if max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def _connector_loaded(spark: SparkSession) -> bool:
    # The context class loader is the one that sees jars added with --jars / --packages.
    loader = spark._jvm.java.lang.Thread.currentThread().getContextClassLoader()
    try:
        loader.loadClass(KAFKA_PROVIDER)
    except Py4JJavaError:
        return False
    return True
