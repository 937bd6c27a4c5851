"""What every Spark job of the project shares: its session's settings and its progress log."""
from __future__ import annotations

import argparse
import logging
import os
from typing import Callable

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from config.settings import Settings, get_settings
from spark_sink.metrics import JOB_METRICS, QueryMetrics

log = logging.getLogger("tweetlake.spark")

# Every zone is a Delta table: the session needs Delta's SQL extension and catalog from the start
# (spark_sink.submit puts Delta's jars on the classpath).
DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# Session settings the jobs rely on, unless spark-submit's --conf says otherwise.
DEFAULT_SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # INT96 timestamps read back naive in pyarrow.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.streaming.minBatchesToRetain": "20",
    # A table's state is rebuilt from its log in this many tasks: Delta's default of 50 made every
    # MERGE of a micro-batch take 5-10 s here, 2 takes 1.3-2 s (two cores).
    "spark.databricks.delta.snapshotPartitions": "2",
    # LAKE_RETENTION_HOURS may be below Delta's 7-day floor for VACUUM: the user chose it.
    "spark.databricks.delta.retentionDurationCheck.enabled": "false",
}


def spark_session(settings: Settings, app_name: str) -> SparkSession:
    """Under spark-submit its --master and --conf win; run directly, SPARK_MASTER is used."""
    builder = SparkSession.builder.appName(app_name)
    for key, value in DELTA_SESSION_CONF.items():
        builder = builder.config(key, value)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set by spark-submit for the Python driver
        builder = builder.master(settings.spark_master).config("spark.ui.showConsoleProgress", "false")
    spark = builder.getOrCreate()
    given = spark.sparkContext.getConf()
    defaults = {**DEFAULT_SQL_CONF, "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions)}
    for key, value in defaults.items():
        if not given.contains(key):
            spark.conf.set(key, value)
    return spark


class ProgressLog(StreamingQueryListener):
    """One log line per micro-batch that read rows: how many, how fast, and where the time went;
    every micro-batch also goes to the job's metrics (spark_sink.metrics)."""

    def __init__(self, metrics: QueryMetrics = JOB_METRICS):
        self.metrics = metrics

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        progress = event.progress
        self.metrics.record(progress)
        if not progress.numInputRows:
            return
        durations = progress.durationMs
        parts = ", ".join(f"{name} {durations[name]}" for name in PROGRESS_PARTS if name in durations)
        log.info("%s: batch %d read %d rows in %.2f s (%.0f rows/s; ms: %s)", progress.name, progress.batchId,
                 progress.numInputRows, progress.batchDuration / 1000, progress.processedRowsPerSecond, parts)

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass


PROGRESS_PARTS = ("latestOffset", "queryPlanning", "addBatch", "walCommit", "commitOffsets")




def await_queries(spark: SparkSession, queries: list, listener: StreamingQueryListener,
                  on_end: Callable[[], None] = lambda: None) -> None:
    """Wait for every query to end, run `on_end`, then stop the session with the listener removed:
    a listener still registered when the Python side goes makes the JVM print a Py4J stack trace."""
    try:
        for query in queries:
            query.awaitTermination()
    finally:
        try:
            on_end()
        finally:
            spark.streams.removeListener(listener)
            spark.stop()


def job_main(argv: list[str] | None, prog: str, description: str, available_now_help: str,
             run: Callable[[Settings, argparse.Namespace], None], exit_codes: dict[type[Exception], int],
             arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None) -> int:
    """A job's command line: --available-now (and the job's own `arguments`), the settings,
    logging, and an exit code per known failure (the error logged, without a traceback)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--available-now", action="store_true", help=available_now_help)
    arguments(parser)
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    try:
        run(settings, args)
    except tuple(exit_codes) as error:
        log.error("%s", error)
        return exit_codes[type(error)]
    return 0


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # py4j logs every callback (the progress listener's included) at INFO.
    logging.getLogger("py4j").setLevel(max(logging.WARNING, logging.getLogger().level))
