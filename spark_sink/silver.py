"""The silver job: bronze, as the sink publishes it, into silver: one row per post across the
whole lake, in its newest version, enriched (tweets.enrich), partitioned dt=/hour= by created_at.

    python -m spark_sink.submit silver [--available-now]

A Structured Streaming query follows bronze's files (a replayed sink batch and a compaction write
files of new names, so they come as new files too; their rows are repeats, which change nothing).
Each micro-batch:
  1. collapses its bronze rows to one per post (spark_sink.silver_rows), and looks up the posts
     already in silver, in the hour partitions where their rows can be (an edit comes at most an
     hour after its post, so the partitions around each created_at);
  2. decides per post: insert, replace (a newer version), resource (only source_tweet_ids change)
     or nothing; enriches only inserted and replaced rows;
  3. writes, to the batch's staging folder, those rows plus the other rows of every silver file
     that held a changed row (copy on write: a post's row lives in one file);
  4. writes a journal (the batch's manifest) naming the staged files' zone paths and the files
     they replace, then moves the staged files in, deletes the replaced files, and deletes the
     staging folder.
Forgotten tweets (datalake/forgotten.py): the stream also follows the forgotten log, so a new log
file brings a batch; its ids' silver rows are found by a scan of silver's id columns and their
files rewritten without them in step 3 (gold then recomputes those hours), and posts the log names
are never taken in from bronze.
A replay of a batch whose journal exists finishes that journal instead of deciding again (its
decision read silver as it was before the batch). Readers see each post once except for the
moments between step 4's moves and deletes; after a crash there, until the job restarts.

One silver job per lake at a time: it holds LAKE/_locks/silver.json while it runs (a lock left
by a killed job on this host is taken over; `make backfill` skips silver while a live job holds it).
Exit codes: 0 done (available-now) or stopped, 3 another silver job holds the lake.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from app.settings import Settings
from datalake.forgotten import TWEET, USER
from datalake.layout import BRONZE, FORGOTTEN, PARTITION_COLUMNS, SILVER, ZoneLayout
from spark_sink.forgotten import ForgottenLog
from spark_sink.publish import (
    HadoopFiles, finish_journal, moves_into_zone, stage_batch,
)
from spark_sink.schema import bronze_schema, forgotten_log_schema, silver_schema
from spark_sink.submit import LAKE_BUSY
from spark_sink.lake_job import LakeBusy, LakeJob, run_lake_job
from spark_sink.session import job_main
from spark_sink.silver_rows import (
    BRONZE_READS, INSERT, NOTHING, REPLACE, RESOURCE, decide, enriched_rows, enrichment_input, existing_keys,
    newest_versions,
)

log = logging.getLogger("tweetlake.silver")

SILVER_PLAIN_COLUMNS = ("edit_root_id", "tweet_id", "text", "text_clean")
# X allows edits for an hour after the post: every version of a post is within these hours of another.
EDIT_WINDOW = timedelta(hours=1)
# The stream's column that marks a row of the forgotten log (its kind) among bronze's rows.
FORGET_KIND = "forget_kind"
FORGET = "forget"


def bronze_stream(spark: SparkSession, lake_root: str, settings: Settings) -> DataFrame:
    """Bronze's files as they appear (a file deleted before it is read, replaced by a replay, a
    compaction or a forget, whose new files bring its rows, is skipped), and with them the
    forgotten log's new files, as marker rows (FORGET_KIND set: the id in tweet_id or author_id)."""
    spark.conf.set("spark.sql.files.ignoreMissingFiles", "true")
    bronze = (
        spark.readStream.schema(bronze_schema())
        .option("maxFilesPerTrigger", settings.silver_max_files_per_trigger)
        .parquet(f"{lake_root}/{BRONZE.path}")
        .withColumn(FORGET_KIND, F.lit(None).cast(T.StringType()))
    )
    log_folder = f"{lake_root}/{FORGOTTEN.path}"
    HadoopFiles(spark, log_folder).mkdirs(log_folder)
    log_rows = spark.readStream.schema(forgotten_log_schema()).parquet(log_folder)
    ids = {"tweet_id": TWEET, "author_id": USER}
    markers = log_rows.select(
        *[F.when(F.col("kind") == ids[field.name], F.col("id")).alias(field.name) if field.name in ids
          else F.lit(None).cast(field.dataType).alias(field.name) for field in bronze_schema().fields],
        F.col("kind").alias(FORGET_KIND),
    )
    return bronze.unionByName(markers)


def candidate_partitions(posts: DataFrame) -> list[str]:
    """The silver partitions (dt=/hour=) that may hold a row of these posts: their hours and the
    hours beside them. (A micro-batch's DataFrame has no inputFiles() to read the hours from.)"""
    hours = {row[0] for row in posts.select(F.date_trunc("hour", "created_at")).distinct().collect()}
    near = {hour + step for hour in hours for step in (-EDIT_WINDOW, timedelta(0), EDIT_WINDOW)}
    return sorted(f"dt={hour:%Y-%m-%d}/hour={hour:%H}" for hour in near)


class SilverWriter:
    """foreachBatch of the silver query: see the module docstring."""

    def __init__(self, spark: SparkSession, lake_root: str, keep_manifests: int = 100):
        self.spark = spark
        self.zone = ZoneLayout(lake_root, SILVER)
        self.files = HadoopFiles(spark, self.zone.data)
        self.keep_manifests = keep_manifests
        self.forgotten = ForgottenLog(spark, lake_root)

    def __call__(self, arrived: DataFrame, batch_id: int) -> None:
        manifest = self.zone.manifest(batch_id)
        if self.files.exists(manifest):
            log.warning("silver: batch %d is a replay: finishing its journal", batch_id)
            self.finish(json.loads(self.files.read_text(manifest)))
            return
        # One scan of the batch's files: its columns silver reads, kept while the markers are
        # picked out and the posts computed (a second action over `arrived` would read them again).
        slim = arrived.select(*BRONZE_READS, FORGET_KIND).persist()
        markers = [row.asDict() for row in slim.where(F.col(FORGET_KIND).isNotNull())
                   .select("tweet_id", "author_id", FORGET_KIND).collect()]
        bronze = slim.where(F.col(FORGET_KIND).isNull()).drop(FORGET_KIND)
        posts = self.forgotten.without(newest_versions(bronze), F.col("edit_root_id")).persist()
        try:
            decided = decide(posts, self.existing(candidate_partitions(posts))).persist()
            counts: dict[str, int] = {}
            replaced = set()
            for row in decided.groupBy("action", "file").count().collect():
                counts[row["action"]] = counts.get(row["action"], 0) + row["count"]
                if row["action"] in (REPLACE, RESOURCE):
                    replaced.add(row["file"])
            doomed = self.forgotten_posts(markers)
            if doomed:
                counts[FORGET] = len(doomed)
                replaced.update(file for _, file in doomed)
            replaced = sorted(replaced)
            rows = self.rows_to_write(decided, replaced, [key for key, _ in doomed])
            staged = stage_batch(rows, batch_id, self.zone, PARTITION_COLUMNS, SILVER_PLAIN_COLUMNS)
            decided.unpersist()
        finally:
            posts.unpersist()
            slim.unpersist()
        moves = moves_into_zone(self.files, staged, self.zone, batch_id, attempt=0)
        journal = {"batch_id": batch_id, "files": [target for _, target in moves], "moves": moves,
                   "replaces": replaced, "counts": counts}
        self.files.mkdirs(self.zone.manifests)
        self.files.write_text_atomically(manifest, json.dumps(journal))
        self.finish(journal)
        log.info("silver: batch %d: %d new, %d replaced by a newer version, %d with new sources, %d repeats, "
                 "%d forgotten; %d file(s) written, %d rewritten", batch_id, counts.get(INSERT, 0),
                 counts.get(REPLACE, 0), counts.get(RESOURCE, 0), counts.get(NOTHING, 0), counts.get(FORGET, 0),
                 len(moves), len(replaced))

    def existing(self, partitions: list[str]) -> DataFrame | None:
        paths = [f"{self.zone.data}/{p}" for p in partitions if self.files.exists(f"{self.zone.data}/{p}")]
        if not paths:
            return None
        return existing_keys(self.read(paths))

    def read(self, paths: list[str]) -> DataFrame:
        return self.spark.read.schema(silver_schema()).option("basePath", self.zone.data).parquet(*paths)

    def forgotten_posts(self, markers: list[dict]) -> list[tuple[str, str]]:
        """(edit_root_id, file) of each silver row the newly logged ids forget (the rule of
        datalake/forgotten.py); a scan of silver's id columns, only in a batch that has markers."""
        tweets = sorted({m["tweet_id"] for m in markers if m[FORGET_KIND] == TWEET and m["tweet_id"]})
        users = sorted({m["author_id"] for m in markers if m[FORGET_KIND] == USER and m["author_id"]})
        if not (tweets or users) or not self.files.list_files(self.zone.data, ".parquet"):
            return []
        current = self.read([self.zone.data]).select(
            "edit_root_id", "tweet_id", "author_id", F.col("_metadata.file_path").alias("file"))
        hit = (F.col("tweet_id").isin(tweets) | F.col("edit_root_id").isin(tweets)) if tweets else F.lit(False)
        if users:
            hit = hit | F.col("author_id").isin(users)
        return [(row["edit_root_id"], row["file"]) for row in current.where(hit).select("edit_root_id", "file").collect()]

    def rows_to_write(self, decided: DataFrame, replaced: list[str], forgotten: list[str]) -> DataFrame:
        """New and newer rows, enriched; the rows of replaced files that stay (not replaced by a
        newer version, not forgotten), with their new sources where those changed."""
        enriched = enriched_rows(enrichment_input(decided))
        if not replaced:
            return enriched
        changed = decided.where(F.col("action").isin(REPLACE, RESOURCE)).select("edit_root_id", "action", "sources")
        current = self.read(replaced)
        if forgotten:
            current = current.where(~F.col("edit_root_id").isin(forgotten))
        kept = (current.join(changed, "edit_root_id", "left")
                .where(F.col("action").isNull() | (F.col("action") == RESOURCE))
                .withColumn("source_tweet_ids", F.coalesce(F.col("sources"), F.col("source_tweet_ids")))
                .select(*current.columns))
        return enriched.unionByName(kept)

    def finish(self, journal: dict) -> None:
        finish_journal(self.files, self.zone, journal, self.keep_manifests)


JOB = LakeJob(SILVER, BRONZE, follows=lambda lake_root: f"{lake_root}/{BRONZE.path}", stream=bronze_stream,
              writer=SilverWriter, trigger_seconds=lambda settings: settings.silver_trigger_seconds)


def run(settings: Settings, available_now: bool) -> None:
    run_lake_job(JOB, settings, available_now)


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit silver",
        "Refine bronze into silver under LAKE_ROOT: one row per post (edit_root_id) in its newest version, with "
        "text_clean, lang, entities (spaCy + config/field_vocabulary.toml), hashtags, domains, topics and "
        "relevance, partitioned dt=YYYY-MM-DD/hour=HH, exactly once for plain readers after any crash. Settings: "
        "SILVER_TRIGGER_SECONDS, SILVER_MAX_FILES_PER_TRIGGER, LAKE_ROOT, CHECKPOINT_ROOT.",
        "refine every bronze file there now, then exit (for backfills and tests)",
        run, {LakeBusy: LAKE_BUSY},
    )


if __name__ == "__main__":
    sys.exit(main())
