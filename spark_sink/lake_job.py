"""What the jobs that rewrite a zone of their own share (silver, gold): they run once per lake
(two would decide against the same files and overwrite each other's rewrites: a lake-wide lock),
their zone's batch-named files are finalized when their checkpoint is new, and a foreachBatch
query writes the zone."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Callable

from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession

from app.settings import Settings
from datalake import layout
from datalake.locks import abandoned, holder_record
from datalake.layout import Zone, ZoneLayout
from spark_sink.metrics import start_metrics_server
from spark_sink.publish import HadoopFiles, finalize_earlier_run, qualified_lake_root
from spark_sink.session import ProgressLog, spark_session

log = logging.getLogger("tweetlake.lake_job")


class LakeBusy(RuntimeError):
    """Another job of the same name holds the lake."""


class JobLock:
    """LAKE/_locks/<name>.json, created exclusively, holding host and pid; a lock of a process that
    no longer runs on this host is taken over."""

    def __init__(self, spark: SparkSession, lake_root: str, name: str):
        self.name = name
        self.path = f"{lake_root}/{layout.JOB_LOCKS}/{name}.json"
        self.files = HadoopFiles(spark, self.path)

    def acquire(self) -> None:
        me = holder_record()
        if self.files.create_exclusive(self.path, json.dumps(me)):
            return
        holder = self.holder()
        if abandoned(holder):
            log.warning("taking over %s from pid %s, which no longer runs", self.path, holder.get("pid"))
            self.files.delete(self.path)
            if self.files.create_exclusive(self.path, json.dumps(me)):
                return
        raise LakeBusy(f"another {self.name} job holds {self.path} ({self.holder()}): one {self.name} job per lake; "
                         "if none runs, delete that file")

    def holder(self) -> dict:
        try:
            return json.loads(self.files.read_text(self.path))
        except (Py4JJavaError, ValueError):
            return {}

    def release(self) -> None:
        if self.holder().get("pid") == os.getpid():
            self.files.delete(self.path)


@dataclass(frozen=True)
class LakeJob:
    """A job that rewrites `target` from what `stream` (over the folder `follows`) brings."""

    target: Zone
    source: Zone
    follows: Callable[[str], str]  # lake root -> the folder the stream reads (created if missing)
    stream: Callable[[SparkSession, str, Settings], DataFrame]
    writer: Callable[[SparkSession, str], Callable[[DataFrame, int], None]]
    trigger_seconds: Callable[[Settings], float]

    @property
    def name(self) -> str:
        """Its query, lock, checkpoint folder, metrics port and log name."""
        return self.target.query


def run_lake_job(job: LakeJob, settings: Settings, available_now: bool) -> None:
    run_lake_jobs([job], settings, available_now)


def run_lake_jobs(jobs: list[LakeJob], settings: Settings, available_now: bool) -> None:
    """The jobs in one Spark application, holding each one's lock. Available-now, one after the
    other (each reads what the one before wrote: silver, then gold); live, side by side. LakeBusy
    before anything runs when another job holds one of their locks."""
    spark = spark_session(settings, "tweetlake-" + "-".join(job.name for job in jobs))
    start_metrics_server(settings, jobs[0].name)
    listener = ProgressLog()
    spark.streams.addListener(listener)
    lake_root = qualified_lake_root(settings.lake_root)
    locks: list[JobLock] = []
    try:
        for job in jobs:
            locks.append(JobLock(spark, lake_root, job.name))
            locks[-1].acquire()
        queries = []
        for job in jobs:
            queries.append(start_query(spark, job, settings, lake_root, available_now))
            if available_now:
                queries[-1].awaitTermination()
        for query in queries:
            query.awaitTermination()
    finally:
        try:
            for lock in locks:
                lock.release()
        finally:
            # A listener still registered when the Python side goes makes the JVM print a stack trace.
            spark.streams.removeListener(listener)
            spark.stop()


def start_query(spark: SparkSession, job: LakeJob, settings: Settings, lake_root: str, available_now: bool):
    HadoopFiles(spark, lake_root).mkdirs(job.follows(lake_root))
    checkpoint = f"{layout.checkpoints(settings.lake_root, settings.checkpoint_root)}/{job.name}"
    if not HadoopFiles(spark, checkpoint).exists(f"{checkpoint}/offsets"):
        # Batch ids restart at 0: the zone's batch-named files must not meet a new run's.
        finalize_earlier_run(spark, ZoneLayout(lake_root, job.target))
    every = job.trigger_seconds(settings)
    query = (
        job.stream(spark, lake_root, settings).writeStream.queryName(job.name)
        .foreachBatch(job.writer(spark, lake_root))
        .option("checkpointLocation", checkpoint)
        .trigger(**({"availableNow": True} if available_now else {"processingTime": f"{every} seconds"}))
        .start()
    )
    logging.getLogger(f"tweetlake.{job.name}").info(
        "%s running: %s/%s -> %s/%s (trigger %s)", job.name, lake_root, job.source, lake_root, job.target,
        "available-now" if available_now else f"{every}s")
    return query
