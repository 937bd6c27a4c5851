"""A job's scheduled upkeep of its tables, beside its queries in the driver: OPTIMIZE of the small
files the micro-batches wrote, and VACUUM of the files no recent version uses (when a forgotten
tweet's text leaves the disk). Schedules, retention and why not auto compaction: docs/lake.md,
"The lake: Delta tables", Upkeep.
"""
from __future__ import annotations

import logging
import threading
import time

from delta.tables import DeltaTable
from pyspark.errors import PySparkException

from datalake.layout import Zone
from spark_sink.tables import SparkLake, retrying

log = logging.getLogger("tweetlake.maintenance")


def vacuum(lake: SparkLake, zone: Zone, uri: str | None = None) -> None:
    """VACUUM one table with the lake's retention, in LITE mode (the files to delete come from the
    log, not from listing the table's folder: seconds instead of minutes on a large table), in full
    when the log no longer reaches back that far."""
    spark, uri = lake.spark, uri or lake.uri(zone)
    if not DeltaTable.isDeltaTable(spark, uri):
        return
    hours = lake.settings.lake_retention_hours
    started = time.monotonic()
    try:
        spark.sql(f"VACUUM delta.`{uri}` RETAIN {hours:g} HOURS LITE")
    except PySparkException as error:
        log.info("%s: VACUUM LITE not possible (%s): a full VACUUM lists the table instead", zone,
                 str(error).splitlines()[0])
        spark.sql(f"VACUUM delta.`{uri}` RETAIN {hours:g} HOURS")
    log.info("%s: VACUUM (retention %g h) in %.1f s", zone, hours, time.monotonic() - started)


def optimize(lake: SparkLake, zone: Zone) -> None:
    """OPTIMIZE one table: its partitions' small files merged (again after a conflict)."""
    uri = lake.uri(zone)
    if not DeltaTable.isDeltaTable(lake.spark, uri):
        return
    started = time.monotonic()
    table = DeltaTable.forPath(lake.spark, uri)
    metrics = retrying(f"{zone}: OPTIMIZE", lambda: table.optimize().executeCompaction().collect()[0]["metrics"])
    if metrics["numFilesRemoved"]:
        log.info("%s: OPTIMIZE merged %d file(s) into %d in %.1f s", zone, metrics["numFilesRemoved"],
                 metrics["numFilesAdded"], time.monotonic() - started)


class Maintenance(threading.Thread):
    """OPTIMIZE and VACUUM of `zones` on their schedules, each first one period after the start.
    A failed round is logged and the next one tries again: upkeep never stops the job's writes."""

    def __init__(self, lake: SparkLake, zones: tuple[Zone, ...]):
        super().__init__(name="lake-maintenance", daemon=True)
        self.lake = lake
        self.zones = zones
        settings = lake.settings
        self.tasks = [(optimize, settings.lake_optimize_seconds), (vacuum, settings.lake_maintenance_seconds)]
        self.stopping = threading.Event()

    def run(self) -> None:
        due = {task: time.monotonic() + every for task, every in self.tasks}
        while not self.stopping.wait(max(0.0, min(due.values()) - time.monotonic())):
            for task, every in self.tasks:
                if time.monotonic() < due[task]:
                    continue
                for zone in self.zones:
                    if self.stopping.is_set():
                        return
                    try:
                        task(self.lake, zone)
                    except Exception:  # noqa: BLE001 - upkeep must never stop the job's writes
                        log.exception("%s: %s failed; trying again in %.0f s", zone, task.__name__, every)
                due[task] = time.monotonic() + every

    def stop(self) -> None:
        self.stopping.set()
