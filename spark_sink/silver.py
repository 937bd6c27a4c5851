"""The silver job: bronze into silver, one row per post across the whole lake in its newest
version, enriched (tweets.enrich) and partitioned dt=/hour= by created_at, with the change feed
the gold job follows: `python -m spark_sink.submit silver [--available-now]`.
How a micro-batch decides, the lock, the exit codes and the guarantees: docs/lake.md, "Silver".
"""
from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from datalake.forgotten_log import TWEET, USER, Forgotten
from datalake.layout import BRONZE, PARTITION_COLUMNS, SILVER
from spark_sink.forgotten_filter import ForgottenLog, delete_ids
from spark_sink.lake_job import LakeBusy, LakeJob, run_lake_jobs
from spark_sink.schema import bronze_schema, silver_schema
from spark_sink.session import job_main
from spark_sink.silver_rows import (
    BRONZE_READS, INSERT, NOTHING, REPLACE, RESOURCE, decide, enriched_rows, enrichment_input, existing_keys,
    newest_versions,
)
from datalake.layout import LAKE_BUSY
from spark_sink.tables import QueryId, SparkLake, append_once, batch_commit, partition_filter, retrying

log = logging.getLogger("tweetlake.silver")

# X allows edits for an hour after the post: every version of a post is within these hours of another.
EDIT_WINDOW = timedelta(hours=1)
# The stream's column that marks a row of the forgotten log (its kind) among bronze's rows.
FORGET_KIND = "forget_kind"
ACTION = "_action"


def bronze_stream(lake: SparkLake) -> DataFrame:
    """Bronze's new rows, and with them the forgotten log's new rows as marker rows (FORGET_KIND
    set: the id in tweet_id or author_id)."""
    spark, settings = lake.spark, lake.settings
    lake.ensure(BRONZE, bronze_schema())
    lake.ensure(SILVER, silver_schema())
    forgotten = ForgottenLog(lake)
    bronze = (
        spark.readStream.format("delta")
        .option("skipChangeCommits", "true")
        .option("maxFilesPerTrigger", settings.silver_max_files_per_trigger)
        .load(lake.uri(BRONZE))
        .select(*[F.col(field.name) for field in bronze_schema().fields])
        .withColumn(FORGET_KIND, F.lit(None).cast(T.StringType()))
    )
    log_rows = spark.readStream.format("delta").load(forgotten.uri)
    ids = {"tweet_id": TWEET, "author_id": USER}
    markers = log_rows.select(
        *[F.when(F.col("kind") == ids[field.name], F.col("id")).alias(field.name) if field.name in ids
          else F.lit(None).cast(field.dataType).alias(field.name) for field in bronze_schema().fields],
        F.col("kind").alias(FORGET_KIND),
    )
    return bronze.unionByName(markers)


def candidate_partitions(posts: DataFrame) -> list[tuple[str, str]]:
    """The silver partitions (dt, hour) that may hold a row of these posts: their hours and the
    hours beside them."""
    hours = {row[0] for row in posts.select(F.date_trunc("hour", "created_at")).distinct().collect()}
    near = {hour + step for hour in hours for step in (-EDIT_WINDOW, timedelta(0), EDIT_WINDOW)}
    return sorted((f"{hour:%Y-%m-%d}", f"{hour:%H}") for hour in near)


class SilverWriter:
    """foreachBatch of the silver query: bronze's new rows as one row per post, decided against
    silver and written, then the forgotten log's markers DELETEd (docs/lake.md, "Silver")."""

    def __init__(self, lake: SparkLake, query: QueryId):
        self.lake = lake
        self.query = query
        self.spark = lake.spark
        self.uri = lake.uri(SILVER)
        lake.ensure(SILVER, silver_schema())
        self.forgotten = ForgottenLog(lake)
        self.columns = [field.name for field in silver_schema().fields]
        self.timings: dict[str, float] = {}

    def __call__(self, arrived: DataFrame, batch_id: int) -> None:
        app = self.query.get()
        seen = self.forgotten.snapshot()
        # One scan of the batch: its columns silver reads, kept while the markers are picked out
        # and the posts computed (a second action over `arrived` would read bronze again).
        slim = arrived.select(*BRONZE_READS, FORGET_KIND).persist()
        try:
            markers = [row.asDict() for row in slim.where(F.col(FORGET_KIND).isNotNull())
                       .select("tweet_id", "author_id", FORGET_KIND).collect()]
            posts = seen.without(newest_versions(slim.where(F.col(FORGET_KIND).isNull()).drop(FORGET_KIND)),
                                 F.col("edit_root_id"))
            counts = self.merge(posts, app, batch_id)
        finally:
            slim.unpersist()
        forgotten = Forgotten(frozenset(m["tweet_id"] for m in markers if m[FORGET_KIND] == TWEET and m["tweet_id"]),
                              frozenset(m["author_id"] for m in markers if m[FORGET_KIND] == USER and m["author_id"]))
        counts["forgotten"] = delete_ids(self.lake, SILVER, forgotten) if forgotten else 0
        log.info("silver: batch %d: %d new, %d replaced by a newer version, %d with new sources, %d repeats, "
                 "%d forgotten (s: %s)", batch_id, counts.get(INSERT, 0), counts.get(REPLACE, 0),
                 counts.get(RESOURCE, 0), counts.get(NOTHING, 0), counts["forgotten"],
                 ", ".join(f"{step} {seconds:.1f}" for step, seconds in self.timings.items()))

    def merge(self, posts: DataFrame, app: str, batch_id: int) -> dict[str, int]:
        """Look the posts up in silver near their hours, decide each, write; the posts by action."""
        self.timings = {}
        started = time.monotonic()
        posts = posts.persist()
        try:
            places = candidate_partitions(posts)
            if not places:
                return {}
            existing = self.spark.read.format("delta").load(self.uri).where(partition_filter(places, PARTITION_COLUMNS))
            decided = decide(posts, existing_keys(existing)).persist()
            try:
                counts = {row["action"]: row["count"] for row in decided.groupBy("action").count().collect()}
                self.timings["decide"] = time.monotonic() - started
                if counts.get(INSERT) or counts.get(REPLACE) or counts.get(RESOURCE):
                    self.write(self.merge_source(decided).persist(), counts, places, app, batch_id)
                return counts
            finally:
                decided.unpersist()
        finally:
            posts.unpersist()

    def write(self, source: DataFrame, counts: dict[str, int], places: list[tuple[str, str]], app: str,
              batch_id: int) -> None:
        """New posts appended (one silver job per checkpoint decides which posts are new, so an
        append keeps each post once; a MERGE of them cost 6-7 s a batch here against ~1 s), then
        newer versions and new sources by a MERGE on edit_root_id within `places`; each committed
        once per batch."""
        try:
            started = time.monotonic()
            source.count()  # the enrichment runs here, once
            self.timings["enrich"] = time.monotonic() - started
            started = time.monotonic()
            metadata = {"query": "silver", "batch": batch_id}
            if counts.get(INSERT):
                append_once(source.where(F.col(ACTION) == INSERT).select(*self.columns), self.uri, f"{app}-new",
                            batch_id, metadata)
            if counts.get(REPLACE) or counts.get(RESOURCE):
                changed = source.where(F.col(ACTION) != INSERT)
                condition = f"t.edit_root_id = s.edit_root_id AND ({partition_filter(places, PARTITION_COLUMNS, 't')})"
                everything = {column: f"s.{column}" for column in self.columns}
                with batch_commit(changed, self.uri, app, batch_id, metadata) as table:
                    retrying(f"silver batch {batch_id}", lambda: (
                        table.alias("t").merge(changed.alias("s"), condition)
                        .whenMatchedUpdate(condition=f"s.{ACTION} = '{REPLACE}'", set=everything)
                        .whenMatchedUpdate(condition=f"s.{ACTION} = '{RESOURCE}'",
                                           set={"source_tweet_ids": "s.source_tweet_ids"})
                        .execute()))
            self.timings["write"] = time.monotonic() - started
        finally:
            source.unpersist()

    def merge_source(self, decided: DataFrame) -> DataFrame:
        """New and newer posts as whole enriched silver rows; posts whose sources alone change as
        their key and sources (every other column null: only source_tweet_ids is set from them)."""
        enriched = enriched_rows(enrichment_input(decided)).join(
            decided.select("edit_root_id", F.col("action").alias(ACTION)), "edit_root_id")
        resourced = decided.where(F.col("action") == RESOURCE).select(
            *[F.col("edit_root_id") if column == "edit_root_id" else
              F.col("sources").alias(column) if column == "source_tweet_ids" else
              F.lit(None).cast(self.silver_type(column)).alias(column) for column in self.columns],
            F.col("action").alias(ACTION))
        return enriched.select(*self.columns, ACTION).unionByName(resourced)

    def silver_type(self, column: str) -> T.DataType:
        return silver_schema()[column].dataType


JOB = LakeJob(SILVER, BRONZE, tables=(SILVER,), stream=bronze_stream, writer=SilverWriter,
              trigger_seconds=lambda settings: settings.silver_trigger_seconds)


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit silver",
        "Refine bronze into silver under LAKE_ROOT: one row per post (edit_root_id) in its newest version, with "
        "text_clean, lang, entities (spaCy + config/field_vocabulary.toml), hashtags, domains, topics and "
        "relevance, partitioned dt=YYYY-MM-DD/hour=HH: a Delta table kept by MERGE, exactly once per "
        "micro-batch, with a change feed for gold. Settings: SILVER_TRIGGER_SECONDS, SILVER_MAX_FILES_PER_TRIGGER, "
        "LAKE_ROOT, CHECKPOINT_ROOT.",
        "refine every new bronze row now, then exit (for backfills and tests)",
        lambda settings, args: run_lake_jobs([JOB], settings, args.available_now), {LakeBusy: LAKE_BUSY},
    )


if __name__ == "__main__":
    sys.exit(main())
