"""What the jobs that refine a zone share (silver, gold): a foreachBatch query from a checkpoint of
their own, and a lock so that one process at a time runs it. Delta keeps concurrent writers to a
table correct; a streaming checkpoint is not made for two processes (the backfill's refine run and
`make run`'s live job would decide the same batches), hence LAKE/_locks/<name>.json."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Callable

from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession

from config.settings import Settings
from datalake import layout
from datalake.layout import Zone
from datalake.locks import abandoned, holder_record
from spark_sink.maintenance import Maintenance, vacuum as vacuum_table
from spark_sink.metrics import start_metrics_server
from spark_sink.session import ProgressLog, spark_session
from spark_sink.tables import QueryId, SparkLake

log = logging.getLogger("tweetlake.lake_job")


class LakeBusy(RuntimeError):
    """Another job of the same name holds the lake."""


class JobLock:
    """LAKE/_locks/<name>.json, created exclusively through Hadoop's FileSystem (local or HDFS),
    holding host and pid; a lock of a process that no longer runs on this host is taken over."""

    def __init__(self, spark: SparkSession, lake_root: str, name: str):
        self.name = name
        self.path = f"{lake_root}/{layout.JOB_LOCKS}/{name}.json"
        jvm = spark.sparkContext._jvm
        self._jvm = jvm
        self._path = jvm.org.apache.hadoop.fs.Path(self.path)
        self._fs = self._path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def acquire(self) -> None:
        me = json.dumps(holder_record())
        if self._create(me):
            return
        holder = self.holder()
        if abandoned(holder):
            log.warning("taking over %s from pid %s, which no longer runs", self.path, holder.get("pid"))
            self._fs.delete(self._path, False)
            if self._create(me):
                return
        raise LakeBusy(f"another {self.name} job holds {self.path} ({self.holder()}): one {self.name} job per lake; "
                       "if none runs, delete that file")

    def _create(self, text: str) -> bool:
        try:
            stream = self._fs.create(self._path, False)
        except Py4JJavaError as error:
            if "FileAlreadyExistsException" in str(error.java_exception):
                return False
            raise
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        return True

    def holder(self) -> dict:
        try:
            stream = self._fs.open(self._path)
            try:
                reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
                return json.loads("\n".join(iter(reader.readLine, None)))
            finally:
                stream.close()
        except (Py4JJavaError, ValueError):
            return {}

    def release(self) -> None:
        if self.holder().get("pid") == os.getpid():
            self._fs.delete(self._path, False)


@dataclass(frozen=True)
class LakeJob:
    """A job that refines `target` from what `stream` brings."""

    target: Zone
    source: Zone
    tables: tuple[Zone, ...]  # the tables it writes (and VACUUMs)
    stream: Callable[[SparkLake], DataFrame]
    writer: Callable[[SparkLake, QueryId], Callable[[DataFrame, int], None]]
    trigger_seconds: Callable[[Settings], float]

    @property
    def name(self) -> str:
        """Its query, lock, checkpoint folder, metrics port and log name."""
        return self.target.query


def run_lake_jobs(jobs: list[LakeJob], settings: Settings, available_now: bool, vacuum: tuple[Zone, ...] = ()) -> None:
    """The jobs in one Spark application, holding each one's lock. Available-now, one after the
    other (each reads what the one before wrote: silver, then gold), then VACUUM of `vacuum`; live,
    side by side, with their tables' VACUUM on a schedule. LakeBusy before anything runs when
    another job holds a lock."""
    spark = spark_session(settings, "tweetlake-" + "-".join(job.name for job in jobs))
    start_metrics_server(settings, jobs[0].name)
    listener = ProgressLog()
    spark.streams.addListener(listener)
    lake = SparkLake(spark, settings)
    locks: list[JobLock] = []
    maintenance = None
    try:
        for job in jobs:
            locks.append(JobLock(spark, lake.root, job.name))
            locks[-1].acquire()
        queries = []
        for job in jobs:
            queries.append(start_query(lake, job, available_now))
            if available_now:
                queries[-1].awaitTermination()
        if not available_now:
            maintenance = Maintenance(lake, tuple(zone for job in jobs for zone in job.tables))
            maintenance.start()
        for query in queries:
            query.awaitTermination()
        for zone in vacuum:
            vacuum_table(lake, zone)
    finally:
        try:
            if maintenance:
                maintenance.stop()
            for lock in locks:
                lock.release()
        finally:
            # A listener still registered when the Python side goes makes the JVM print a stack trace.
            spark.streams.removeListener(listener)
            spark.stop()


def start_query(lake: SparkLake, job: LakeJob, available_now: bool):
    settings = lake.settings
    checkpoint = f"{layout.checkpoints(settings.lake_root, settings.checkpoint_root)}/{job.name}"
    every = job.trigger_seconds(settings)
    query_id = QueryId(job.name)
    query = (
        job.stream(lake).writeStream.queryName(job.name)
        .foreachBatch(job.writer(lake, query_id))
        .option("checkpointLocation", checkpoint)
        .trigger(**({"availableNow": True} if available_now else {"processingTime": f"{every} seconds"}))
        .start()
    )
    query_id.set(query)
    logging.getLogger(f"tweetlake.{job.name}").info(
        "%s running: %s -> %s (trigger %s)", job.name, lake.uri(job.source), lake.uri(job.target),
        "available-now" if available_now else f"{every}s")
    return query
