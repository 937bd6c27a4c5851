"""`lake convert`: a lake of plain parquet folders (this project before Delta Lake) into Delta
tables, in place, with Delta's own CONVERT TO DELTA; silver and gold are rebuilt by their jobs,
and a second run changes nothing.

What it converts and keeps, its JSON and exit codes: docs/lake.md, "Looking into the lake".
"""
from __future__ import annotations

import json
import logging
import sys

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from config.settings import Settings
from datalake import layout
from datalake.layout import (
    BRONZE, FORGOTTEN, GOLD_TABLES, PARTITION_COLUMNS, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, SILVER, Zone,
)
from spark_sink import gold, silver
from spark_sink.lake_job import LakeBusy, run_lake_jobs
from spark_sink.session import job_main, spark_session
from datalake.layout import LAKE_BUSY
from spark_sink.tables import SparkLake, partition_filter

log = logging.getLogger("tweetlake.convert")

CONVERTED = (BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, FORGOTTEN)
OLD_FOLDERS = ("_manifests", "_staging", "_compactions")
PENDING = ("_replays", "_backfill")


class PendingOldJob(RuntimeError):
    """A journal of the old format's replay or backfill waits to be finished."""


class HadoopFolders:
    """The few folder calls conversion needs, through Hadoop's FileSystem (local or HDFS)."""

    def __init__(self, spark: SparkSession, root: str):
        self._Path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path
        self._fs = self._Path(root).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return self._fs.exists(self._Path(path))

    def has_files(self, path: str, suffix: str) -> bool:
        if not self.exists(path):
            return False
        files = self._fs.listFiles(self._Path(path), True)
        while files.hasNext():
            if files.next().getPath().getName().endswith(suffix):
                return True
        return False

    def delete(self, path: str) -> bool:
        return bool(self._fs.delete(self._Path(path), True))


def convert(spark: SparkSession, settings: Settings) -> dict:
    lake = SparkLake(spark, settings)
    folders = HadoopFolders(spark, lake.root)
    for name in PENDING:
        if folders.has_files(f"{lake.root}/{name}", ".json"):
            raise PendingOldJob(f"{lake.root}/{name} holds a journal of an interrupted run of the old format: "
                                "finish it with the earlier version (`lake replay`, or delete the folder if that "
                                "run is abandoned), then convert")
    report = {"converted": [], "already_delta": [], "bronze_duplicates_removed": 0, "rebuilt": [], "removed": []}
    for zone in CONVERTED:
        uri = lake.uri(zone)
        if DeltaTable.isDeltaTable(spark, uri):
            report["already_delta"].append(zone.path)
        elif folders.has_files(uri, ".parquet"):
            convert_zone(lake, zone)
            report["converted"].append(zone.path)
    if BRONZE.path in report["converted"]:
        report["bronze_duplicates_removed"] = remove_repeated_tweets(lake)
    stale = [zone for zone in (SILVER, *GOLD_TABLES)
             if folders.exists(lake.uri(zone)) and not DeltaTable.isDeltaTable(spark, lake.uri(zone))]
    if stale:
        for zone in stale:
            folders.delete(lake.uri(zone))
        checkpoints = layout.checkpoints(lake.root, settings.checkpoint_root)
        for job in (silver.JOB, gold.JOB):
            folders.delete(f"{checkpoints}/{job.name}")
        report["rebuilt"] = [SILVER.path] + [table.path for table in GOLD_TABLES]
    for name in OLD_FOLDERS:
        if folders.delete(f"{lake.root}/{name}"):
            report["removed"].append(name)
    return report


def convert_zone(lake: SparkLake, zone: Zone) -> None:
    """CONVERT TO DELTA in place, then the layout's properties (and quarantine's letter_id)."""
    spark, uri = lake.spark, lake.uri(zone)
    partitions = ", ".join(f"{column} STRING" for column in zone.partitions)
    spark.sql(f"CONVERT TO DELTA parquet.`{uri}`" + (f" PARTITIONED BY ({partitions})" if partitions else ""))
    if zone.key == "letter_id" and "letter_id" not in spark.read.format("delta").load(uri).columns:
        spark.sql(f"ALTER TABLE delta.`{uri}` ADD COLUMNS (letter_id STRING)")
    properties = layout.table_properties(zone, lake.settings.lake_retention_hours, lake.settings.lake_log_retention_hours)
    pairs = ", ".join(f"'{key}' = '{value}'" for key, value in properties.items())
    spark.sql(f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ({pairs})")
    if zone.key == "letter_id":
        columns = spark.read.format("delta").load(uri).columns
        content = [column for column in columns if column not in ("letter_id", *zone.partitions)]
        DeltaTable.forPath(spark, uri).update(F.col("letter_id").isNull(),
                                              {"letter_id": F.sha2(F.to_json(F.struct(*content)), 256)})
    log.info("%s: converted to a Delta table at %s", zone, uri)


def remove_repeated_tweets(lake: SparkLake) -> int:
    """Rewrite the hour partitions of bronze that hold a tweet id more than once with one row per
    id (a tweet's partition follows its created_at, so its repeats share it); the rows removed."""
    spark, uri = lake.spark, lake.uri(BRONZE)
    bronze = spark.read.format("delta").load(uri)
    repeated = bronze.groupBy(*PARTITION_COLUMNS, "tweet_id").count().where(F.col("count") > 1)
    places = [tuple(row) for row in repeated.select(*PARTITION_COLUMNS).distinct().collect()]
    if not places:
        return 0
    where = partition_filter(places, PARTITION_COLUMNS)
    rows = bronze.where(where)
    before = rows.count()
    kept = rows.dropDuplicates(["tweet_id"]).localCheckpoint()
    kept.write.format("delta").mode("overwrite").option("replaceWhere", where).save(uri)
    removed = before - kept.count()
    log.info("bronze: %d repeated row(s) of the old format removed in %d hour partition(s)", removed, len(places))
    return removed


def run(settings: Settings, _args) -> None:
    spark = spark_session(settings, "tweetlake-convert")
    try:
        report = convert(spark, settings)
    except BaseException:
        spark.stop()
        raise
    if report["rebuilt"] or BRONZE.path in report["converted"]:
        run_lake_jobs([silver.JOB, gold.JOB], settings, available_now=True)  # on this session; stops it
    else:
        spark.stop()
    print(json.dumps(report), flush=True)


def main(argv: list[str] | None = None) -> int:
    return job_main(
        argv, "python -m spark_sink.submit convert", __doc__.split("\n\n")[0],
        "the default, and the only way this job runs", run, {LakeBusy: LAKE_BUSY, PendingOldJob: 1},
    )


if __name__ == "__main__":
    sys.exit(main())
