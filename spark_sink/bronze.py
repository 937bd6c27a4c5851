"""The Spark Structured Streaming sink: typed topic -> bronze parquet, dead letters -> quarantine,
deletions (the compliance topic) -> the forgotten log, which bronze then leaves out.

Started by spark_sink.submit, which adds Spark's Kafka connector (the Procfile's `sink` process):

    python -m spark_sink.submit [--available-now]
"""
from __future__ import annotations

import logging
import sys

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from app.settings import Settings
from datalake import layout
from datalake.layout import BRONZE, FORGOTTEN, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, ZoneLayout
from spark_sink.forgotten import ForgottenLog, SweepThread, deletion_publisher, deletion_rows, post_id_of_bronze
from spark_sink.kafka_stream import KafkaConnectorMissing, read_kafka_stream
from spark_sink.metrics import start_metrics_server
from spark_sink.publish import HadoopFiles, finalize_earlier_run, publish_batch, qualified_lake_root
from spark_sink.schema import dead_letter_schema, tweet_schema
from spark_sink.session import ProgressLog, await_queries, job_main, spark_session

log = logging.getLogger("tweetlake.sink")

# Columns of (nearly) unique values: written without a parquet dictionary.
BRONZE_PLAIN_COLUMNS = ("tweet_id", "text", "raw", "retweeted_text", "conversation_id")

def kafka_records(spark: SparkSession, settings: Settings, topic: str) -> DataFrame:
    return read_kafka_stream(
        spark,
        bootstrap_servers=settings.bootstrap_servers,
        topic=topic,
        starting_offsets="earliest",
        max_offsets_per_trigger=settings.sink_max_offsets_per_trigger,
        fail_on_data_loss=settings.sink_fail_on_data_loss,
    )


def typed_rows(records: DataFrame, dedup_window: str) -> DataFrame:
    """Typed-topic records parsed with the Tweet schema (`tweet` is null where that failed),
    deduplicated by tweet id within the window: a replayed or repeated tweet is kept once.

    The record's text (`value`) is kept only where parsing failed, for the quarantine: carried
    for every row it doubled what the dedup shuffle moves."""
    text = F.col("value").cast("string")
    parsed = records.select(
        F.from_json(text, tweet_schema()).alias("tweet"),
        text.alias("value"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
    )
    readable = F.col("tweet.tweet_id").isNotNull() & F.col("tweet.created_at").isNotNull()
    return (
        parsed.withColumn("readable", readable)
        .withColumn("value", F.when(F.col("readable"), F.lit(None)).otherwise(F.col("value")))
        .withColumn(
            "dedup_key",
            F.when(F.col("readable"), F.col("tweet.tweet_id")).otherwise(
                F.concat_ws(":", F.lit("unreadable"), F.col("partition"), F.col("offset"))
            ),
        )
        .withColumn("seen_at", F.coalesce(F.col("tweet.ingested_at"), F.current_timestamp()))
        .withWatermark("seen_at", dedup_window)
        .dropDuplicatesWithinWatermark(["dedup_key"])
    )


def bronze_rows(typed: DataFrame) -> DataFrame:
    """The bronze columns, with `dt`/`hour` from `created_at` (UTC)."""
    return (
        typed.where(F.col("readable"))
        .select("tweet.*")
        .withColumn("dt", F.date_format("created_at", "yyyy-MM-dd"))
        .withColumn("hour", F.date_format("created_at", "HH"))
    )


def unreadable_rows(typed: DataFrame) -> DataFrame:
    """Typed records the Tweet schema could not read: kept in quarantine, never dropped."""
    return typed.where(~F.col("readable")).select(
        F.lit("typed_unreadable").alias("reason"),
        F.col("value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.date_format(F.current_timestamp(), "yyyy-MM-dd").alias("dt"),
    )


def dead_letter_rows(records: DataFrame, dedup_window: str) -> DataFrame:
    """The letters, each raw message's once within the window: a worker that dies before it
    commits its offsets decides those messages again (at-least-once), and its letters would
    otherwise be in quarantine twice. A letter the worker did not trace to a raw position is kept
    whatever it repeats (its dedup key is its own topic offset)."""
    letter = F.col("letter")
    source = F.concat_ws(":", letter["kafka_topic"], letter["kafka_partition"], letter["kafka_offset"])
    traced = letter["kafka_topic"].isNotNull() & letter["kafka_partition"].isNotNull() & letter["kafka_offset"].isNotNull()
    return (
        records.select(F.from_json(F.col("value").cast("string"), dead_letter_schema()).alias("letter"),
                       F.col("partition"), F.col("offset"))
        .withColumn("dedup_key", F.when(traced, source).otherwise(
            F.concat_ws(":", F.lit("letter"), F.col("partition"), F.col("offset"))))
        .withColumn("seen_at", F.coalesce(letter["failed_at"], F.current_timestamp()))
        .withWatermark("seen_at", dedup_window)
        .dropDuplicatesWithinWatermark(["dedup_key"])
        .select("letter.*")
        .withColumn("dt", F.date_format(F.coalesce(F.col("failed_at"), F.current_timestamp()), "yyyy-MM-dd"))
    )


def start_query(rows: DataFrame, name: str, publish, zones: list[ZoneLayout], settings: Settings,
                available_now: bool, trigger_seconds: float):
    checkpoint = f"{layout.checkpoints(settings.lake_root, settings.checkpoint_root)}/{name}"
    spark = rows.sparkSession
    if not HadoopFiles(spark, checkpoint).exists(f"{checkpoint}/offsets"):
        for zone in zones:
            finalize_earlier_run(spark, zone)

    def publish_logged(batch: DataFrame, batch_id: int) -> None:
        published = publish(batch, batch_id)
        log.info("%s: batch %d published %d file(s)", name, batch_id, published)

    writer = (
        rows.writeStream.queryName(name)
        .foreachBatch(publish_logged)
        .option("checkpointLocation", checkpoint)
    )
    if available_now:
        return writer.trigger(availableNow=True).start()
    return writer.trigger(processingTime=f"{trigger_seconds} seconds").start()


def typed_publisher(bronze: ZoneLayout, quarantine: ZoneLayout, forgotten: ForgottenLog):
    """Bronze in one pass over the batch, counting the unreadable records on the way (an
    observation, not a cache of the whole batch); only a batch that has some is computed again
    for the quarantine, which is rare: the worker writes every typed record. Tweets the forgotten
    log names (as it is when the batch starts) are left out."""

    def publish(batch: DataFrame, batch_id: int) -> int:
        observation = Observation(f"typed-{batch_id}")
        observed = batch.observe(observation, F.count(F.when(~F.col("readable"), 1)).alias("unreadable"))
        rows = forgotten.without(bronze_rows(observed), post_id_of_bronze())
        published = publish_batch(rows, batch_id, bronze, BRONZE.partitions, plain_columns=BRONZE_PLAIN_COLUMNS)
        if observation.get["unreadable"]:
            published += publish_batch(unreadable_rows(batch), batch_id, quarantine, QUARANTINE_UNREADABLE.partitions,
                                       plain_columns=("value",))
        return published

    return publish


def dead_letter_publisher(quarantine: ZoneLayout):
    return lambda batch, batch_id: publish_batch(batch, batch_id, quarantine, QUARANTINE_DEAD_LETTERS.partitions,
                                                 plain_columns=("raw_base64",))


def run(settings: Settings, available_now: bool) -> None:
    spark = spark_session(settings, "tweetlake-sink")
    start_metrics_server(settings, "bronze")
    listener = ProgressLog()
    spark.streams.addListener(listener)
    lake_root = qualified_lake_root(settings.lake_root)
    typed = typed_rows(kafka_records(spark, settings, settings.topic_typed), settings.sink_dedup_window)
    dead_letters = dead_letter_rows(kafka_records(spark, settings, settings.topic_dead_letter),
                                    settings.sink_dedup_window)
    deletions = deletion_rows(kafka_records(spark, settings, settings.topic_compliance))
    bronze, unreadable, dead, forgotten = (ZoneLayout(lake_root, zone) for zone in
                                           (BRONZE, QUARANTINE_UNREADABLE, QUARANTINE_DEAD_LETTERS, FORGOTTEN))
    queries = [
        start_query(deletions, FORGOTTEN.query, deletion_publisher(lake_root), [forgotten], settings,
                    available_now, settings.sink_trigger_seconds),
        start_query(typed, BRONZE.query, typed_publisher(bronze, unreadable, ForgottenLog(spark, lake_root)),
                    [bronze, unreadable], settings, available_now, settings.sink_trigger_seconds),
        start_query(dead_letters, QUARANTINE_DEAD_LETTERS.query, dead_letter_publisher(dead), [dead], settings,
                    available_now, settings.sink_dead_letter_trigger_seconds),
    ]
    sweeps = None
    if not available_now:
        sweeps = SweepThread(settings)
        sweeps.start()
    log.info("sink running: %s -> %s/%s (trigger %s), %s -> %s/%s (trigger %s), %s -> %s/%s; forget sweeps %s",
             settings.topic_typed, lake_root, BRONZE,
             "available-now" if available_now else f"{settings.sink_trigger_seconds}s",
             settings.topic_dead_letter, lake_root, QUARANTINE_DEAD_LETTERS,
             "available-now" if available_now else f"{settings.sink_dead_letter_trigger_seconds}s",
             settings.topic_compliance, lake_root, FORGOTTEN,
             "off (available-now)" if available_now else f"every {settings.forget_sweep_seconds}s")
    await_queries(spark, queries, listener, on_end=sweeps.stop if sweeps else lambda: None)


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit",
        "Stream the typed topic into bronze parquet (partitioned dt=YYYY-MM-DD/hour=HH), the dead-letter topic "
        "into quarantine/ and the compliance topic into the forgotten log (_forgotten/), under LAKE_ROOT, with "
        "checkpoints so a restart neither loses nor repeats rows; forgotten tweets are left out of bronze, and "
        "every FORGET_SWEEP_SECONDS removed from the files of bronze and quarantine. Settings come from the "
        "environment and .env.",
        "process everything in the topics now, then exit (for backfills and tests)",
        run, {KafkaConnectorMissing: 2},
    )


if __name__ == "__main__":
    sys.exit(main())
