"""What every Spark job of the project shares: its session's settings and its progress log."""
from __future__ import annotations

import argparse
import logging
import os
from typing import Callable

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from app.settings import Settings, get_settings
from spark_sink.metrics import JOB_METRICS, QueryMetrics

log = logging.getLogger("tweetlake.spark")

# Session settings the sink relies on, unless spark-submit's --conf says otherwise.
DEFAULT_SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # INT96 timestamps read back naive in pyarrow.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.streaming.minBatchesToRetain": "20",
}


def spark_session(settings: Settings, app_name: str) -> SparkSession:
    """Under spark-submit its --master and --conf win; run directly, SPARK_MASTER is used."""
    builder = SparkSession.builder.appName(app_name)
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
             run: Callable[[Settings, bool], None], exit_codes: dict[type[Exception], int]) -> int:
    """A job's command line: --available-now, the settings, logging, and an exit code per known
    failure (the error logged, without a traceback)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--available-now", action="store_true", help=available_now_help)
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    try:
        run(settings, args.available_now)
    except tuple(exit_codes) as error:
        log.error("%s", error)
        return exit_codes[type(error)]
    return 0


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # py4j logs every callback (the progress listener's included) at INFO.
    logging.getLogger("py4j").setLevel(max(logging.WARNING, logging.getLogger().level))
    # The `hdfs` package (the forget sweeps' WebHDFS client on an hdfs:// lake) logs every call at INFO.
    logging.getLogger("hdfs").setLevel(max(logging.WARNING, logging.getLogger().level))
