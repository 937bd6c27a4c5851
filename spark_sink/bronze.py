"""The Spark Structured Streaming sink: typed topic -> bronze, dead letters -> quarantine,
deletions (the compliance topic) -> the forgotten log; every one a Delta table. Started by
spark_sink.submit (the Procfile's `sink`): `python -m spark_sink.submit [--available-now]`.
Each tweet id once, forgotten tweets, the Kafka source: docs/architecture.md, "The Spark sink".
"""
from __future__ import annotations

import logging
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from config.settings import Settings
from datalake import layout
from datalake.forgotten_log import TWEET, USER, Forgotten
from datalake.layout import BRONZE, FORGOTTEN, PARTITION_COLUMNS, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE
from spark_sink.forgotten_filter import ForgottenLog, delete_ids, deletion_rows, post_id_of_bronze, valid_deletions
from spark_sink.kafka_stream import KafkaConnectorMissing, read_kafka_stream
from spark_sink.maintenance import Maintenance
from spark_sink.metrics import start_metrics_server
from spark_sink.schema import bronze_schema, dead_letter_schema, dead_letter_table_schema, tweet_schema, unreadable_schema
from spark_sink.session import ProgressLog, await_queries, job_main, spark_session
from spark_sink.tables import (
    QueryId, SparkLake, append_once, batch_commit, partition_filter, remove_folder, retrying,
)

log = logging.getLogger("tweetlake.sink")

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
    rows = typed.where(~F.col("readable")).select(
        F.lit("typed_unreadable").alias("reason"),
        F.col("value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
    )
    return rows.select("*", letter_id(rows.columns), F.date_format(F.current_timestamp(), "yyyy-MM-dd").alias("dt"))


def letter_id(columns: list[str]):
    """A quarantined message's id: the hash of all it holds (a replayed batch computes the same)."""
    return F.sha2(F.to_json(F.struct(*columns)), 256).alias("letter_id")


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
        .select("*", letter_id([field.name for field in dead_letter_schema().fields]),
                F.date_format(F.coalesce(F.col("failed_at"), F.current_timestamp()), "yyyy-MM-dd").alias("dt"))
    )


UNREADABLE = ("", "")


def readable_shape(typed: DataFrame) -> dict[tuple[str, str], int]:
    """Rows per hour partition (dt, hour) of the batch's readable records; UNREADABLE: the others."""
    created = F.col("tweet.created_at")
    found = (typed.select(F.when(F.col("readable"), F.date_format(created, "yyyy-MM-dd")).otherwise("").alias("dt"),
                          F.when(F.col("readable"), F.date_format(created, "HH")).otherwise("").alias("hour"))
             .groupBy("dt", "hour").count().collect())
    return {(row["dt"], row["hour"]): row["count"] for row in found}


class Writer:
    """A query's foreachBatch: what it shares (the lake, the forgotten log, the query's id) and the
    commit info it leaves (the query, the batch, and with --run, the run and its counts)."""

    def __init__(self, lake: SparkLake, forgotten: ForgottenLog, query: str, run: str | None):
        self.lake = lake
        self.forgotten = forgotten
        self.query = QueryId(query)
        self.run = run

    def metadata(self, batch_id: int, **counts: int) -> dict:
        return {"query": self.query.name, "batch": batch_id, **({"run": self.run, **counts} if self.run else {})}


class TypedWriter(Writer):
    """Bronze from the typed topic: an insert-only MERGE per batch; the records the Tweet schema
    could not read to quarantine/typed_unreadable."""

    def __init__(self, lake: SparkLake, forgotten: ForgottenLog, run: str | None):
        super().__init__(lake, forgotten, BRONZE.query, run)
        lake.ensure(BRONZE, bronze_schema())
        self.bronze = lake.uri(BRONZE)
        self.unreadable = lake.uri(QUARANTINE_UNREADABLE)
        lake.ensure(QUARANTINE_UNREADABLE, unreadable_schema())

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        app = self.query.get()
        seen = self.forgotten.snapshot()
        parsed = batch.persist()
        try:
            readable = bronze_rows(parsed)
            tweets = seen.without(readable, post_id_of_bronze())
            # One pass over the batch: its hour partitions, and whether any record was unreadable.
            shape = readable_shape(parsed)
            places = [place for place in shape if place != UNREADABLE]
            counts = {}
            if self.run:
                rows = sum(count for place, count in shape.items() if place != UNREADABLE)
                counts = {"rows": rows, "forgotten": rows - tweets.count() if seen.ids else 0}
            if places:
                self.merge(tweets, places, app, batch_id, self.metadata(batch_id, **counts))
                self.forgotten.forget_since(seen, BRONZE)
            unreadable = unreadable_rows(parsed)
            if shape.get(UNREADABLE):
                kept = seen.without_messages(unreadable, QUARANTINE_UNREADABLE)
                letters = {}
                if self.run:
                    total = unreadable.count()
                    letters = {"rows": total, "forgotten": total - kept.count() if seen.ids else 0}
                append_once(kept, self.unreadable, app, batch_id, self.metadata(batch_id, **letters))
        finally:
            parsed.unpersist()

    def merge(self, tweets: DataFrame, places: list[tuple[str, ...]], app: str, batch_id: int, metadata: dict) -> None:
        condition = f"t.tweet_id = s.tweet_id AND ({partition_filter(places, PARTITION_COLUMNS, 't')})"
        with batch_commit(tweets, self.bronze, app, batch_id, metadata) as bronze:
            retrying(f"bronze batch {batch_id}", lambda: (
                bronze.alias("t").merge(tweets.alias("s"), condition).whenNotMatchedInsertAll().execute()))
        log.info("bronze: batch %d merged into %d hour partition(s)", batch_id, len(places))


class DeadLetterWriter(Writer):
    """quarantine/dead_letter (or --dead-letters-to: a replay's own table) from the dead-letter topic."""

    def __init__(self, lake: SparkLake, forgotten: ForgottenLog, run: str | None, uri: str | None):
        super().__init__(lake, forgotten, QUARANTINE_DEAD_LETTERS.query, run)
        self.uri = uri or lake.uri(QUARANTINE_DEAD_LETTERS)
        if uri:  # a replay's own table: what an earlier replay left there was landed or abandoned
            remove_folder(lake.spark, uri)
        lake.ensure(QUARANTINE_DEAD_LETTERS, dead_letter_table_schema(), self.uri)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        app = self.query.get()
        seen = self.forgotten.snapshot()
        kept = seen.without_messages(batch, QUARANTINE_DEAD_LETTERS)
        counts = {}
        if self.run:
            rows = batch.count()
            counts = {"rows": rows, "forgotten": rows - kept.count() if seen.ids else 0}
        if not counts.get("rows") and batch.isEmpty():
            return
        append_once(kept, self.uri, app, batch_id, self.metadata(batch_id, **counts))
        self.forgotten.forget_since(seen, QUARANTINE_DEAD_LETTERS, self.uri)


class DeletionWriter(Writer):
    """The forgotten log from the compliance topic; the ids it logs then leave bronze and
    quarantine (silver follows the log itself, gold follows silver)."""

    def __init__(self, lake: SparkLake, forgotten: ForgottenLog, run: str | None, dead_letters: str | None):
        super().__init__(lake, forgotten, FORGOTTEN.query, run)
        self.dead_letters = dead_letters

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        app = self.query.get()
        valid = valid_deletions(batch)
        rows = [row.asDict() for row in valid.select("id", "kind").collect()]
        invalid = batch.count() - len(rows)
        if invalid:
            log.warning("compliance: batch %d: %d record(s) without an id or kind left out", batch_id, invalid)
        if not rows:
            return
        append_once(valid.coalesce(1), self.forgotten.uri, app, batch_id, self.metadata(batch_id, rows=len(rows)))
        ids = Forgotten(frozenset(r["id"] for r in rows if r["kind"] == TWEET),
                        frozenset(r["id"] for r in rows if r["kind"] == USER))
        for zone, uri in ((BRONZE, None), (QUARANTINE_UNREADABLE, None), (QUARANTINE_DEAD_LETTERS, self.dead_letters)):
            delete_ids(self.lake, zone, ids, uri)


def start_query(rows: DataFrame, writer: Writer, settings: Settings, available_now: bool, trigger_seconds: float):
    name = writer.query.name
    checkpoint = f"{layout.checkpoints(settings.lake_root, settings.checkpoint_root)}/{name}"
    stream = rows.writeStream.queryName(name).foreachBatch(writer).option("checkpointLocation", checkpoint)
    query = stream.trigger(**({"availableNow": True} if available_now else {"processingTime": f"{trigger_seconds} seconds"}))
    started = query.start()
    writer.query.set(started)
    return started


def run(settings: Settings, args) -> None:
    spark = spark_session(settings, "tweetlake-sink")
    start_metrics_server(settings, "bronze")
    listener = ProgressLog()
    spark.streams.addListener(listener)
    typed = typed_rows(kafka_records(spark, settings, settings.topic_typed), settings.sink_dedup_window)
    dead_letters = dead_letter_rows(kafka_records(spark, settings, settings.topic_dead_letter),
                                    settings.sink_dedup_window)
    deletions = deletion_rows(kafka_records(spark, settings, settings.topic_compliance))
    lake = SparkLake(spark, settings)
    forgotten = ForgottenLog(lake)
    available_now = args.available_now
    queries = [
        start_query(deletions, DeletionWriter(lake, forgotten, args.run, args.dead_letters_to), settings,
                    available_now, settings.sink_trigger_seconds),
        start_query(typed, TypedWriter(lake, forgotten, args.run), settings, available_now,
                    settings.sink_trigger_seconds),
        start_query(dead_letters, DeadLetterWriter(lake, forgotten, args.run, args.dead_letters_to), settings,
                    available_now, settings.sink_dead_letter_trigger_seconds),
    ]
    maintenance = None if available_now else Maintenance(lake, (BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE))
    if maintenance:
        maintenance.start()
    log.info("sink running: %s -> %s (trigger %s), %s -> %s (trigger %s), %s -> %s; %s",
             settings.topic_typed, lake.uri(BRONZE),
             "available-now" if available_now else f"{settings.sink_trigger_seconds}s",
             settings.topic_dead_letter, args.dead_letters_to or lake.uri(QUARANTINE_DEAD_LETTERS),
             "available-now" if available_now else f"{settings.sink_dead_letter_trigger_seconds}s",
             settings.topic_compliance, lake.uri(FORGOTTEN),
             f"run {args.run}" if args.run else "live")
    await_queries(spark, queries, listener, on_end=maintenance.stop if maintenance else lambda: None)


def arguments(parser) -> None:
    parser.add_argument("--run", metavar="NAME", help="a backfill's or replay's name: its commits carry it and "
                        "what each batch read and left out (forgotten), for its summary")
    parser.add_argument("--dead-letters-to", metavar="URI", help="write dead letters to this Delta table instead of "
                        "quarantine/dead_letter (a replay lands them itself)")


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit",
        "Stream the typed topic into the Delta table bronze (partitioned dt=YYYY-MM-DD/hour=HH; each tweet id "
        "once: an insert-only MERGE per micro-batch), the dead-letter topic into quarantine/dead_letter and the "
        "compliance topic into the forgotten log (_forgotten), under LAKE_ROOT, each micro-batch committed "
        "exactly once; forgotten tweets are left out of bronze and quarantine, and deleted from them when the "
        "stream deletes them. Settings come from the environment and .env.",
        "process everything in the topics now, then exit (for backfills and tests)",
        run, {KafkaConnectorMissing: 2}, arguments,
    )


if __name__ == "__main__":
    sys.exit(main())
