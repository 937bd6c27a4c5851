"""The gold job: silver's hours into gold's hourly tables (spark_sink.gold_rows), kept up to date
as silver changes, late hours (a backfill of last month) and deletions included:
`python -m spark_sink.submit gold [--available-now]`. How it stays right, rebuilds and locks:
docs/lake.md, "Gold: hourly aggregates".
"""
from __future__ import annotations

import json
import logging
import sys

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from datalake.layout import GOLD_TABLES, GOLD_TOPIC_HOURLY, PARTITION_COLUMNS, SILVER
from spark_sink.gold_rows import SILVER_READS, gold_tables
from spark_sink.lake_job import LakeBusy, LakeJob, run_lake_jobs
from spark_sink.schema import gold_schema, silver_schema
from spark_sink.session import job_main
from datalake.layout import LAKE_BUSY
from spark_sink.tables import QueryId, SparkLake, partition_filter

log = logging.getLogger("tweetlake.gold")

Hour = tuple[str, str]


def change_stream(lake: SparkLake) -> DataFrame:
    """The hour of every row change of silver, with the silver version that made it."""
    lake.ensure(SILVER, silver_schema())
    return (
        lake.spark.readStream.format("delta")
        .option("readChangeFeed", "true")
        .option("maxFilesPerTrigger", lake.settings.gold_max_files_per_trigger)
        .load(lake.uri(SILVER))
        .select(*PARTITION_COLUMNS, "_commit_version")
    )


class GoldWriter:
    """foreachBatch of the gold query: the hours silver's changes touched, recomputed from silver's
    current version and replaced in every gold table (docs/lake.md, "Gold: hourly aggregates")."""

    def __init__(self, lake: SparkLake, query: QueryId):
        self.lake = lake
        self.query = query
        self.spark = lake.spark
        for table in GOLD_TABLES:
            lake.ensure(table, gold_schema(table))

    def __call__(self, changes: DataFrame, batch_id: int) -> None:
        app = self.query.get()
        found = changes.groupBy(*PARTITION_COLUMNS).agg(F.max("_commit_version").alias("version")).collect()
        hours = {(row["dt"], row["hour"]) for row in found if row["dt"] is not None}
        rebuild = batch_id == 0
        if rebuild:
            hours |= self.gold_hours()
        if not hours:
            return
        silver_version = max((row["version"] for row in found), default=None)
        where = partition_filter(sorted(hours), PARTITION_COLUMNS)
        # Read once for the four tables (each would scan silver's hours again).
        silver = (self.spark.read.format("delta").load(self.lake.uri(SILVER)).where(where).select(*SILVER_READS)
                  .persist())
        metadata = {"query": "gold", "batch": batch_id, "silver_version": silver_version}
        try:
            for table, rows in gold_tables(silver).items():
                # mergeSchema: a table created before a count was added to GOLD_COLUMNS (relevant_tweets)
                # gains the column at its first write; the hours not recomputed since read it as null
                # until silver changes them or a new checkpoint rebuilds gold.
                (rows.repartition(*PARTITION_COLUMNS).write.format("delta").mode("overwrite")
                 .option("replaceWhere", where).option("mergeSchema", "true")
                 .option("txnAppId", app).option("txnVersion", str(batch_id))
                 .option("userMetadata", json.dumps(metadata, sort_keys=True))
                 .save(self.lake.uri(table)))
        finally:
            silver.unpersist()
        log.info("gold: batch %d: %d hour(s) recomputed up to silver version %s%s", batch_id, len(hours),
                 silver_version, " (rebuild)" if rebuild else "")

    def gold_hours(self) -> set[Hour]:
        """Every hour any gold table holds (a rebuild clears those silver no longer has)."""
        found: set[Hour] = set()
        for table in GOLD_TABLES:
            rows = self.spark.read.format("delta").load(self.lake.uri(table)).select(*PARTITION_COLUMNS).distinct()
            found |= {(row["dt"], row["hour"]) for row in rows.collect()}
        return found


JOB = LakeJob(GOLD_TOPIC_HOURLY, SILVER, tables=GOLD_TABLES, stream=change_stream, writer=GoldWriter,
              trigger_seconds=lambda settings: settings.gold_trigger_seconds)


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit gold",
        "Aggregate silver under LAKE_ROOT into gold's hourly Delta tables (gold/topic_hourly, gold/hashtags_hourly, "
        "gold/entities_hourly, gold/domains_hourly), recomputing every hour silver's change feed shows a change in, "
        "late hours and deletions included. A new checkpoint rebuilds gold from all of silver. Settings: "
        "GOLD_TRIGGER_SECONDS, GOLD_MAX_FILES_PER_TRIGGER, LAKE_ROOT, CHECKPOINT_ROOT.",
        "recompute the hours of every silver change there is now, then exit (for backfills and tests)",
        lambda settings, args: run_lake_jobs([JOB], settings, args.available_now), {LakeBusy: LAKE_BUSY},
    )


if __name__ == "__main__":
    sys.exit(main())
