"""The forgotten log (datalake/forgotten_log.py) in the Spark jobs: its rule as broadcast anti-joins
(and, for quarantined messages, the Python rule itself in the workers), so the sink never writes a
forgotten tweet into bronze or quarantine and silver never takes one in; and the deletions of the
compliance topic as log rows.

A micro-batch reads the log once, at its start. `lake forget` appends to the log and then
DELETEs from the tables; a batch that read the log before that append may commit after that
DELETE, so after its commit a writer looks at the log again and DELETEs the ids logged since
(`forget_since`): whichever commits last, nothing the log names stays.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from datalake.forgotten_log import TWEET, USER, Forgotten, forgotten_rows
from datalake.layout import FORGOTTEN, QUARANTINE_ZONES, SILVER, Zone
from spark_sink.schema import forgotten_log_schema
from spark_sink.tables import SparkLake, retrying

log = logging.getLogger("tweetlake.forgotten")

def post_id_of_bronze() -> Column:
    """A bronze row's post: the first id of its edit history, else its own id."""
    return F.coalesce(F.get(F.col("edit_history_tweet_ids"), 0), F.col("tweet_id"))


@dataclass(frozen=True)
class LogSnapshot:
    """The log at one version: its ids as small DataFrames (None when the log is empty)."""

    version: int
    tweets: DataFrame | None
    users: DataFrame | None
    ids: Forgotten

    def without(self, rows: DataFrame, post_id: Column) -> DataFrame:
        """`rows` (with tweet_id and author_id) less those the rule forgets; unchanged while empty."""
        if not self.ids:
            return rows
        tweets, users = F.broadcast(self.tweets), F.broadcast(self.users)
        return (
            rows.join(tweets, F.col("tweet_id") == F.col("forgotten_id"), "left_anti")
            .join(tweets, post_id == F.col("forgotten_id"), "left_anti")
            .join(users, F.col("author_id") == F.col("forgotten_id"), "left_anti")
        )

    def without_messages(self, rows: DataFrame, zone: Zone) -> DataFrame:
        """Quarantined messages (`rows` of `zone`) less those the rule forgets; unchanged while
        the log is empty."""
        return messages(rows, zone, self.ids, forgotten=False) if self.ids else rows


def messages(rows: DataFrame, zone: Zone, ids: Forgotten, forgotten: bool) -> DataFrame:
    """The quarantined messages of `rows` (of `zone`) the rule forgets (or, `forgotten=False`,
    keeps), read in the Python workers as datalake.forgotten_log reads them."""

    def select(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = pa.Table.from_batches([batch])
            mask = forgotten_rows(ids, zone, table)
            yield from table.filter(mask if forgotten else pc.invert(mask)).to_batches()

    return rows.mapInArrow(select, rows.schema)


def delete_ids(lake: SparkLake, zone: Zone, ids: Forgotten, uri: str | None = None) -> int:
    """DELETE the rows of `zone` the rule forgets for `ids`, in one commit; the rows deleted."""
    spark = lake.spark
    uri = uri or lake.uri(zone)
    if not ids or not DeltaTable.isDeltaTable(spark, uri):
        return 0
    if zone in QUARANTINE_ZONES:
        current = spark.read.format("delta").load(uri)
        keys = [row[0] for row in messages(current, zone, ids, forgotten=True).select("letter_id").collect()]
        if not keys:
            return 0
        condition = F.col("letter_id").isin(keys)
    else:
        post_id = F.col("edit_root_id") if zone == SILVER else post_id_of_bronze()
        condition = F.lit(False)
        if ids.tweets:
            condition = condition | F.col("tweet_id").isin(sorted(ids.tweets)) | post_id.isin(sorted(ids.tweets))
        if ids.users:
            condition = condition | F.col("author_id").isin(sorted(ids.users))
    table = DeltaTable.forPath(spark, uri)
    retrying(f"{zone}: DELETE of forgotten rows", lambda: table.delete(condition))
    last = table.history(1).collect()[0]
    deleted = int(last["operationMetrics"].get("numDeletedRows", 0) or 0) if last["operation"] == "DELETE" else 0
    if deleted:
        log.info("%s: %d forgotten row(s) deleted", zone, deleted)
    return deleted


class ForgottenLog:
    """LAKE/_forgotten as a job reads it: a new snapshot only when the log's version changed."""

    def __init__(self, lake: SparkLake):
        self.lake = lake
        self.uri = lake.uri(FORGOTTEN)
        lake.ensure(FORGOTTEN, forgotten_log_schema())
        self._snapshot: LogSnapshot | None = None

    def snapshot(self) -> LogSnapshot:
        version = self.lake.version(FORGOTTEN)
        if self._snapshot is None or self._snapshot.version != version:
            self._snapshot = self.read(version)
        return self._snapshot

    def read(self, version: int) -> LogSnapshot:
        rows = [(row["id"], row["kind"]) for row in self.at(version).where(F.col("id").isNotNull()).collect()]
        ids = Forgotten(frozenset(i for i, kind in rows if kind == TWEET), frozenset(i for i, kind in rows if kind == USER))
        if not ids:
            return LogSnapshot(version, None, None, ids)
        spark = self.lake.spark
        schema = T.StructType([T.StructField("forgotten_id", T.StringType())])
        return LogSnapshot(version, spark.createDataFrame([(i,) for i in sorted(ids.tweets)], schema).cache(),
                           spark.createDataFrame([(i,) for i in sorted(ids.users)], schema).cache(), ids)

    def at(self, version: int) -> DataFrame:
        return self.lake.spark.read.format("delta").option("versionAsOf", version).load(self.uri).select("id", "kind")

    def forget_since(self, seen: LogSnapshot, zone: Zone, uri: str | None = None) -> int:
        """After a commit to `zone`: DELETE the rows of ids logged since `seen` (the snapshot the
        batch used); the rows deleted."""
        now = self.snapshot()
        if now.version == seen.version:
            return 0
        return delete_ids(self.lake, zone, Forgotten(now.ids.tweets - seen.ids.tweets, now.ids.users - seen.ids.users),
                          uri)

def deletion_rows(records: DataFrame) -> DataFrame:
    """The compliance topic's records (the worker's JSON, one deletion each) as log rows."""
    return (
        records.select(F.from_json(F.col("value").cast("string"), forgotten_log_schema()).alias("deletion"))
        .select("deletion.*")
    )


def valid_deletions(batch: DataFrame) -> DataFrame:
    return batch.where(F.col("id").isNotNull() & F.col("kind").isin(TWEET, USER))

