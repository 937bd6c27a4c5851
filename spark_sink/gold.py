"""The gold job: silver's hours into gold's hourly tables (spark_sink.gold_rows), kept up to date
as silver changes, late hours (a backfill of last month) included.

    python -m spark_sink.submit gold [--available-now]

Silver rewrites its files (copy on write), so gold is not summed up from new files: gold
recomputes whole hours. A Structured Streaming query follows silver's batch journals
(LAKE/_manifests/silver/*.json, which name every silver file a batch wrote or replaced, hence
every hour it changed). Each micro-batch:
  1. takes the hours its journals name (a new checkpoint's batch 0: every hour silver or gold
     holds, which rebuilds gold) and waits until those silver batches have finished;
  2. computes every gold table for those hours from silver, and stages them;
  3. writes a journal (gold's batch manifest): the staged files' gold paths and the gold files of
     those hours they replace; then moves the staged files in and deletes the replaced ones.
A replay of a batch whose journal exists finishes that journal; one without recomputes, which
gives the same rows. So after any crash and restart gold equals what silver says, and between
step 3's moves and deletes a reader may see an hour twice, as with silver.

One gold job per lake at a time (LAKE/_locks/gold.json; exit code 3 when another holds it).
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from app.settings import Settings
from datalake import layout
from datalake.layout import GOLD, GOLD_TABLES, PARTITION_COLUMNS, SILVER, ZoneLayout
from spark_sink.gold_rows import SILVER_READS, gold_tables
from spark_sink.lake_job import LakeBusy, LakeJob, run_lake_job
from spark_sink.publish import HadoopFiles, finish_journal, moves_into_zone
from spark_sink.schema import silver_schema
from spark_sink.session import job_main
from spark_sink.submit import LAKE_BUSY

log = logging.getLogger("tweetlake.gold")

HOUR_IN_PATH = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})(?:/|$)")
JOURNAL_SCHEMA = T.StructType([
    T.StructField("batch_id", T.LongType()),
    T.StructField("files", T.ArrayType(T.StringType())),
    T.StructField("replaces", T.ArrayType(T.StringType())),
])
# How often to look whether a silver batch a journal names has finished its moves and deletes.
SILVER_POLL_SECONDS = 0.5

Hour = tuple[str, str]


def hour_of(path: str) -> Hour | None:
    match = HOUR_IN_PATH.search(path)
    return (match.group(1), match.group(2)) if match else None


def journal_stream(spark: SparkSession, lake_root: str, settings: Settings) -> DataFrame:
    """Silver's batch journals as they appear (a journal pruned before it is read is skipped: a
    later journal names what silver did since)."""
    spark.conf.set("spark.sql.files.ignoreMissingFiles", "true")
    return (
        spark.readStream.schema(JOURNAL_SCHEMA)
        .option("pathGlobFilter", "*.json")
        .option("maxFilesPerTrigger", settings.gold_max_files_per_trigger)
        .json(ZoneLayout(lake_root, SILVER).manifests)
    )


class GoldWriter:
    """foreachBatch of the gold query: see the module docstring."""

    def __init__(self, spark: SparkSession, lake_root: str, keep_manifests: int = 100):
        self.spark = spark
        self.lake_root = lake_root
        self.zone = ZoneLayout(lake_root, GOLD)
        self.silver = ZoneLayout(lake_root, SILVER)
        self.files = HadoopFiles(spark, self.zone.data)
        self.keep_manifests = keep_manifests

    def __call__(self, journals: DataFrame, batch_id: int) -> None:
        manifest = self.zone.manifest(batch_id)
        if self.files.exists(manifest):
            log.warning("gold: batch %d is a replay: finishing its journal", batch_id)
            finish_journal(self.files, self.zone, json.loads(self.files.read_text(manifest)), self.keep_manifests)
            return
        rows = journals.collect()
        silver_batches = sorted({row["batch_id"] for row in rows if row["batch_id"] is not None})
        rebuild = batch_id == 0 or self.missed_journals(batch_id, silver_batches)
        hours = self.every_hour() if rebuild else set()
        for row in rows:
            hours.update(hour for path in (row["files"] or []) + (row["replaces"] or [])
                         if (hour := hour_of(path)))
        self.await_silver(silver_batches)
        hours = sorted(hours)
        replaced = self.gold_files(hours)
        staged = self.stage(hours, batch_id)
        moves = moves_into_zone(self.files, staged, self.zone, batch_id, attempt=0)
        journal = {"batch_id": batch_id, "hours": [layout.partition_path(zip(PARTITION_COLUMNS, h)) for h in hours],
                   "silver_batches": silver_batches, "moves": moves, "replaces": replaced}
        self.files.mkdirs(self.zone.manifests)
        self.files.write_text_atomically(manifest, json.dumps(journal))
        finish_journal(self.files, self.zone, journal, self.keep_manifests)
        log.info("gold: batch %d: %d hour(s) recomputed from %d silver batch(es)%s; %d file(s) written, %d replaced",
                 batch_id, len(hours), len(rows), " (rebuild)" if rebuild else "", len(moves), len(replaced))

    def missed_journals(self, batch_id: int, silver_batches: list[int]) -> bool:
        """Whether silver pruned journals this job never read (it was stopped for longer than
        silver keeps them): then the hours they named are unknown, and gold is rebuilt."""
        previous = self.zone.manifest(batch_id - 1)
        if not silver_batches or not self.files.exists(previous):
            return False
        seen = json.loads(self.files.read_text(previous)).get("silver_batches") or [-1]
        if silver_batches[0] > max(seen) + 1:
            log.warning("gold: silver batches %d..%d were pruned before gold read them: rebuilding gold",
                        max(seen) + 1, silver_batches[0] - 1)
            return True
        return False

    def every_hour(self) -> set[Hour]:
        """Every hour partition of silver and of the gold tables (an hour gold holds and silver no
        longer does is recomputed empty: its gold files go)."""
        roots = [self.silver.data] + [f"{self.lake_root}/{table.path}" for table in GOLD_TABLES]
        found = set()
        for root in roots:
            for day in self.files.list_dir(root):
                for hour in self.files.list_dir(day) if "/dt=" in day else []:
                    if found_hour := hour_of(hour):
                        found.add(found_hour)
        return found

    def await_silver(self, batches: list[int]) -> None:
        """Until each silver batch has finished (its staging folder goes last): before that,
        silver may show an hour's old and new files at once."""
        waited = 0.0
        for batch in batches:
            while self.files.exists(self.silver.staging(batch)):
                if waited % 30 < SILVER_POLL_SECONDS:
                    log.info("gold: waiting for silver batch %d to finish (%.0f s)", batch, waited)
                time.sleep(SILVER_POLL_SECONDS)
                waited += SILVER_POLL_SECONDS

    def gold_files(self, hours: list[Hour]) -> list[str]:
        found = []
        for table in GOLD_TABLES:
            for dt, hour in hours:
                folder = f"{self.lake_root}/{table.path}/dt={dt}/hour={hour}"
                found += [path for path in self.files.list_files(folder, ".parquet")
                          if not layout.hidden(path.rsplit("/", 1)[-1])]
        return found

    def stage(self, hours: list[Hour], batch_id: int) -> list[str]:
        """Every gold table's rows of those hours, written by Spark to the batch's staging folder
        (one file per table and hour); the staged files."""
        staging = self.zone.staging(batch_id)
        self.files.delete(staging, recursive=True)
        paths = [f"{self.silver.data}/dt={dt}/hour={hour}" for dt, hour in hours]
        paths = [path for path in paths if self.files.exists(path)]
        if not paths:
            return []
        silver = (self.spark.read.schema(silver_schema()).option("basePath", self.silver.data)
                  .parquet(*paths).select(*SILVER_READS))
        for table, rows in gold_tables(silver).items():
            (rows.repartition(*PARTITION_COLUMNS).write.mode("overwrite").partitionBy(*PARTITION_COLUMNS)
             .parquet(f"{staging}/{table.path.split('/', 1)[1]}"))
        return self.files.list_files(staging, ".parquet")


JOB = LakeJob(GOLD, SILVER, follows=lambda lake_root: ZoneLayout(lake_root, SILVER).manifests,
              stream=journal_stream, writer=GoldWriter, trigger_seconds=lambda settings: settings.gold_trigger_seconds)


def run(settings: Settings, available_now: bool) -> None:
    run_lake_job(JOB, settings, available_now)


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit gold",
        "Aggregate silver under LAKE_ROOT into gold's hourly tables (gold/topic_hourly, gold/hashtags_hourly, "
        "gold/entities_hourly, gold/domains_hourly), recomputing every hour silver changes, late hours included. "
        "A new checkpoint rebuilds gold from all of silver. Settings: GOLD_TRIGGER_SECONDS, "
        "GOLD_MAX_FILES_PER_TRIGGER, LAKE_ROOT, CHECKPOINT_ROOT.",
        "recompute the hours of every silver batch journal there now, then exit (for backfills and tests)",
        run, {LakeBusy: LAKE_BUSY},
    )


if __name__ == "__main__":
    sys.exit(main())
