"""The forgotten log (datalake/forgotten.py) in the Spark jobs: its rule as broadcast anti-joins, so
the sink never writes a forgotten tweet into bronze and silver never takes one in, and the
deletions of the compliance topic published into the log."""
from __future__ import annotations

import logging
import posixpath
import threading

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from app.settings import Settings
from datalake.files import Lake
from datalake.forget import Sweeper, checkpoints_of
from datalake.forgotten import TWEET, USER
from datalake.fs import lake_fs_for
from datalake.layout import FORGOTTEN, ZoneLayout, hidden
from spark_sink.publish import HadoopFiles, publish_batch
from spark_sink.schema import forgotten_log_schema

log = logging.getLogger("tweetlake.forgotten")


def post_id_of_bronze() -> Column:
    """A bronze row's post: the first id of its edit history, else its own id."""
    return F.coalesce(F.get(F.col("edit_history_tweet_ids"), 0), F.col("tweet_id"))


class ForgottenLog:
    """LAKE/_forgotten as Spark reads it: listed at every use (a list call), read when it has files."""

    def __init__(self, spark: SparkSession, lake_root: str):
        self.spark = spark
        self.path = f"{lake_root}/{FORGOTTEN.path}"
        self.files = HadoopFiles(spark, self.path)

    def log_files(self) -> list[str]:
        return [path for path in self.files.list_dir(self.path)
                if path.endswith(".parquet") and not hidden(posixpath.basename(path))]

    def ids(self, kind: str, files: list[str]) -> DataFrame:
        log_rows = self.spark.read.schema(forgotten_log_schema()).parquet(*files)
        return log_rows.where(F.col("kind") == kind).select(F.col("id").alias("forgotten_id")).distinct()

    def without(self, rows: DataFrame, post_id: Column) -> DataFrame:
        """`rows` (with tweet_id and author_id) less those the rule forgets; unchanged while the log is empty."""
        files = self.log_files()
        if not files:
            return rows
        tweets = F.broadcast(self.ids(TWEET, files))
        users = F.broadcast(self.ids(USER, files))
        return (
            rows.join(tweets, F.col("tweet_id") == F.col("forgotten_id"), "left_anti")
            .join(tweets, post_id == F.col("forgotten_id"), "left_anti")
            .join(users, F.col("author_id") == F.col("forgotten_id"), "left_anti")
        )


def deletion_rows(records: DataFrame) -> DataFrame:
    """The compliance topic's records (the worker's JSON, one deletion each) as log rows."""
    schema = forgotten_log_schema()
    return (
        records.select(F.from_json(F.col("value").cast("string"), schema).alias("deletion"))
        .select("deletion.*")
    )


def deletion_publisher(lake_root: str):
    """foreachBatch of the compliance query: the batch's deletions published into the log, exactly
    once (publish.py); a record without an id is named in the log, not published."""
    forgotten = ZoneLayout(lake_root, FORGOTTEN)

    def publish(batch: DataFrame, batch_id: int) -> int:
        valid = batch.where(F.col("id").isNotNull() & F.col("kind").isin(TWEET, USER))
        invalid = batch.count() - valid.count()
        if invalid:
            log.warning("compliance: batch %d: %d record(s) without an id or kind left out", batch_id, invalid)
        if valid.isEmpty():
            return 0
        return publish_batch(valid.coalesce(1), batch_id, forgotten, ())

    return publish


class SweepThread(threading.Thread):
    """The running sink's sweeps (datalake.forget.Sweeper) every FORGET_SWEEP_SECONDS, beside its
    queries, in the driver: the files of bronze and quarantine lose the rows of newly forgotten
    tweets. An error is logged and the next round tries again."""

    def __init__(self, settings: Settings):
        super().__init__(name="forget-sweeps", daemon=True)
        self.every = settings.forget_sweep_seconds
        self.stopping = threading.Event()
        self.sweeper = Sweeper(open_lake(settings, settings.lake_root), checkpoints_of(settings), log.info)

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                if self.sweeper.tick():
                    log.info("forget sweep done; %s", "settled" if self.sweeper.settled
                             else f"waiting for {self.sweeper.waiting_for()}")
            except Exception:  # noqa: BLE001 - a failed round must not stop the sink; the next one retries
                log.exception("forget sweep failed; trying again in %.0f s", self.every)

    def stop(self) -> None:
        self.stopping.set()


def open_lake(settings: Settings, root: str) -> Lake:
    fs, path = lake_fs_for(root, settings.hdfs_namenode_url, settings.hdfs_user, settings.hdfs_http_port)
    fs.mkdirs(path)
    return Lake(fs, path)
