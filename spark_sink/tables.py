"""The lake's Delta tables as the Spark jobs write them: created with the layout's properties,
written once per micro-batch, and retried when another writer committed first.

Exactly once per micro-batch comes from Delta's idempotent writes: each write of a batch carries
the query's id (txnAppId, stable across restarts of one checkpoint) and the batch id (txnVersion);
Delta records them in the commit, and a replay of a committed batch after a crash writes nothing.
Appends take them as write options; MERGE takes them from the session's configuration, which is
the query's own session (Spark clones the session per streaming query), so two queries of one
job never see each other's values.
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from delta.exceptions import (
    ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
    ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
    MetadataChangedException, ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from config.settings import Settings
from datalake import layout
from datalake.lake import lake_uri
from datalake.layout import Zone

log = logging.getLogger("tweetlake.tables")

TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
TXN_VERSION = "spark.databricks.delta.write.txnVersion"
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# Another writer committed first (Delta's classes share no base class in Python).
CONFLICTS = (ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
             ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
             MetadataChangedException, ProtocolChangedException)
# Attempts of a write that meets another writer's commit (the sink, a backfill, `lake forget`,
# auto compaction): Delta then re-reads the table and the write runs again.
ATTEMPTS = 8

Result = TypeVar("Result")


def qualified_lake_root(lake_root: str) -> str:
    """Local folders become absolute `file:/...` URIs (Hadoop's own spelling: Delta refuses a table
    created at file:///x whose location reads back as file:/x); `hdfs://` and other URIs pass through."""
    if lake_root.startswith("file://"):
        lake_root = lake_root.removeprefix("file://")
    elif "://" in lake_root:
        return lake_root
    return "file:" + os.path.abspath(lake_root)


class SparkLake:
    """The lake root as the jobs write it: each table's URI, created on first use."""

    def __init__(self, spark: SparkSession, settings: Settings, lake_root: str | None = None):
        self.spark = spark
        self.settings = settings
        self.root = qualified_lake_root(lake_root or settings.lake_root)

    def uri(self, zone: Zone) -> str:
        return layout.table_uri(self.root, zone)

    def ensure(self, zone: Zone, schema: T.StructType, uri: str | None = None) -> DeltaTable:
        """The zone's table, created with its partitions and properties if it does not exist yet
        (two jobs creating it at once: one wins, the other finds it)."""
        uri = uri or self.uri(zone)
        properties = layout.table_properties(zone, self.settings.lake_retention_hours,
                                             self.settings.lake_log_retention_hours)
        for attempt in range(ATTEMPTS):
            if DeltaTable.isDeltaTable(self.spark, uri):
                return DeltaTable.forPath(self.spark, uri)
            builder = DeltaTable.createIfNotExists(self.spark).location(uri).addColumns(schema)
            if zone.partitions:
                builder = builder.partitionedBy(*zone.partitions)
            for key, value in properties.items():
                builder = builder.property(key, value)
            try:
                builder.execute()
            except (*CONFLICTS, AnalysisException) as error:
                log.info("%s: not created (%s); looking again", zone, str(error).splitlines()[0])
                time.sleep(0.2 * (attempt + 1))
                continue
            log.info("%s: created the Delta table at %s", zone, uri)
            return DeltaTable.forPath(self.spark, uri)
        raise RuntimeError(f"could not create or open the Delta table {uri}")

    def version(self, zone: Zone, uri: str | None = None) -> int:
        """The table's newest version, read in the driver by deltalake (milliseconds; through
        Spark it was a job per call, two per micro-batch)."""
        import deltalake

        return deltalake.DeltaTable(lake_uri(uri or self.uri(zone))).version()


def remove_folder(spark: SparkSession, uri: str) -> None:
    """Delete a folder and all it holds, through Hadoop's FileSystem (local or HDFS)."""
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri)
    path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)


def retrying(what: str, write: Callable[[], Result]) -> Result:
    """`write()` again after a commit conflict (Delta's optimistic concurrency: another writer
    changed files this write read), with a growing pause; the last conflict is raised."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return write()
        except CONFLICTS as error:
            if attempt == ATTEMPTS:
                raise
            pause = min(0.5 * 2 ** (attempt - 1), 10.0)
            log.warning("%s: %s; trying again in %.1f s (attempt %d of %d)", what,
                        type(error).__name__, pause, attempt + 1, ATTEMPTS)
            time.sleep(pause)
    raise AssertionError("unreachable")


@contextmanager
def batch_commit(batch: DataFrame, uri: str, app_id: str, batch_id: int, metadata: dict) -> Iterator[DeltaTable]:
    """The table at `uri` in the micro-batch's own session (`batch`'s): a MERGE of it inside this
    block commits once per (app_id, batch_id) and carries `metadata` in its commit info."""
    session = batch.sparkSession
    conf = session.conf
    conf.set(TXN_APP_ID, app_id)
    conf.set(TXN_VERSION, str(batch_id))
    conf.set(USER_METADATA, json.dumps(metadata, sort_keys=True))
    try:
        yield DeltaTable.forPath(session, uri)
    finally:
        for key in (TXN_APP_ID, TXN_VERSION, USER_METADATA):
            conf.unset(key)


def append_once(rows: DataFrame, uri: str, app_id: str, batch_id: int, metadata: dict) -> None:
    """Append `rows` to the table at `uri`, once per (app_id, batch_id)."""
    (rows.write.format("delta").mode("append")
     .option("txnAppId", app_id).option("txnVersion", str(batch_id))
     .option("userMetadata", json.dumps(metadata, sort_keys=True))
     .save(uri))


def partition_filter(values: list[tuple[str, ...]], columns: tuple[str, ...], alias: str = "") -> str:
    """A SQL condition that holds in exactly those partitions, grouped by the first column:
    (t.dt = '2024-05-01' AND t.hour IN ('06', '07')) OR ... ; 'false' for none. Delta prunes a
    MERGE's or an overwrite's files by it."""
    if not values:
        return "false"
    prefix = f"{alias}." if alias else ""
    if len(columns) == 1:
        return f"{prefix}{columns[0]} IN ({', '.join(sql_string(v[0]) for v in sorted(set(values)))})"
    groups: dict[str, set[str]] = {}
    for first, second in values:
        groups.setdefault(first, set()).add(second)
    return " OR ".join(
        f"({prefix}{columns[0]} = {sql_string(first)} AND {prefix}{columns[1]} IN "
        f"({', '.join(sql_string(v) for v in sorted(seconds))}))"
        for first, seconds in sorted(groups.items())
    )


def sql_string(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class QueryId:
    """The streaming query's id, known once it has started (its foreachBatch may run first)."""

    def __init__(self, name: str):
        self.name = name
        self._id: str | None = None

    def set(self, query) -> None:
        self._id = f"tweetlake-{self.name}-{query.id}"

    def get(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while self._id is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"query {self.name}: its id was never set")
            time.sleep(0.05)
        return self._id
