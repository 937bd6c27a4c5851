"""Publish one micro-batch into a lake zone so that every reader sees it exactly once.

Spark's file sink is exactly-once only for readers that honour `_spark_metadata`; plain pyarrow,
DuckDB or pandas readers also see the files of killed batches. Instead, each batch is written
by Spark to a staging folder outside the zone, then its files are moved into the zone under
names derived from the batch id. A manifest of those names is written before the move, so when
Spark replays a batch after a crash, the files of the earlier attempt are deleted first and the
replay replaces itself instead of doubling. Renames go through Hadoop's FileSystem, so the same
code works on a local folder and on `hdfs://`.
"""
from __future__ import annotations

import json
import logging
import os

from pyspark.sql import DataFrame

from datalake.layout import PUBLISHED_NAME, ZoneLayout, final_names, published_name

log = logging.getLogger(__name__)


def qualified_lake_root(lake_root: str) -> str:
    """Local folders become absolute `file:` URIs; `hdfs://` and other URIs pass through."""
    if "://" in lake_root:
        return lake_root
    return "file://" + os.path.abspath(lake_root)


class HadoopFiles:
    """The few Hadoop FileSystem calls the publisher needs, through the driver's JVM."""

    def __init__(self, spark, any_path: str):
        jvm = spark.sparkContext._jvm
        self._jvm = jvm
        self._Path = jvm.org.apache.hadoop.fs.Path
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = self._Path(any_path).getFileSystem(self._conf)

    def list_files(self, root: str, suffix: str) -> list[str]:
        path = self._Path(root)
        if not self._fs.exists(path):
            return []
        found = []
        iterator = self._fs.listFiles(path, True)
        while iterator.hasNext():
            name = iterator.next().getPath().toString()
            if name.endswith(suffix):
                found.append(name)
        return sorted(found)

    def list_dir(self, root: str) -> list[str]:
        path = self._Path(root)
        if not self._fs.exists(path):
            return []
        return sorted(status.getPath().toString() for status in self._fs.listStatus(path))

    def exists(self, path: str) -> bool:
        return self._fs.exists(self._Path(path))

    def read_text(self, path: str) -> str:
        stream = self._fs.open(self._Path(path))
        try:
            reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            return "\n".join(iter(reader.readLine, None))
        finally:
            stream.close()

    def qualify(self, path: str) -> str:
        return self._fs.makeQualified(self._Path(path)).toString()

    def write_text_atomically(self, path: str, text: str) -> None:
        temporary = self._Path(path + ".tmp")
        stream = self._fs.create(temporary, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        target = self._Path(path)
        self._fs.delete(target, False)
        if not self._fs.rename(temporary, target):
            raise OSError(f"could not rename {temporary} to {path}")

    def mkdirs(self, path: str) -> None:
        self._fs.mkdirs(self._Path(path))

    def create_exclusive(self, path: str, text: str) -> bool:
        """Write a new file `path`; False, writing nothing, if it exists."""
        from py4j.protocol import Py4JJavaError

        try:
            stream = self._fs.create(self._Path(path), False)
        except Py4JJavaError as error:
            if "FileAlreadyExistsException" in str(error.java_exception):
                return False
            raise
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        return True

    def move(self, source: str, target: str) -> None:
        target_path = self._Path(target)
        self._fs.mkdirs(target_path.getParent())
        self._fs.delete(target_path, False)
        if not self._fs.rename(self._Path(source), target_path):
            raise OSError(f"could not rename {source} to {target}")

    def delete(self, path: str, recursive: bool = False) -> None:
        self._fs.delete(self._Path(path), recursive)


def finalize_earlier_run(spark, layout: ZoneLayout) -> int:
    """Before a query starts from a NEW checkpoint, give the zone's batch-named files final names.

    Batch ids restart at 0 with a new checkpoint; without this, its batch 0 would take an earlier
    run's manifest for its own and delete that run's files as if replaying. Returns files renamed.
    """
    files = HadoopFiles(spark, layout.data)
    names = final_names()
    renamed = 0
    for path in files.list_files(layout.data, ".parquet"):
        folder, name = path.rsplit("/", 1)
        if PUBLISHED_NAME.fullmatch(name):
            files.move(path, f"{folder}/{next(names)}")
            renamed += 1
    # The manifests go, their folder stays: another job may follow it (gold follows silver's).
    for manifest in files.list_dir(layout.manifests):
        files.delete(manifest)
    if renamed:
        log.warning("%s: new checkpoint; %d file(s) of an earlier run renamed to final names", layout.zone, renamed)
    return renamed


def stage_batch(batch: DataFrame, batch_id: int, layout: ZoneLayout, partition_columns: tuple[str, ...],
                plain_columns: tuple[str, ...] = ()) -> list[str]:
    """Write `batch` with Spark into the batch's staging folder (replacing what an earlier attempt
    left there); the staged files' paths.

    `plain_columns` are written without a parquet dictionary: for columns of unique values (ids,
    texts) building one is wasted work (bronze warm batches 15% faster, files the same size)."""
    files = HadoopFiles(batch.sparkSession, layout.data)
    staging = layout.staging(batch_id)
    writer = batch.write.mode("overwrite").partitionBy(*partition_columns)
    for column in plain_columns:
        writer = writer.option(f"parquet.enable.dictionary#{column}", "false")
    writer.parquet(staging)
    return files.list_files(staging, ".parquet")


def moves_into_zone(files: HadoopFiles, staged: list[str], layout: ZoneLayout, batch_id: int,
                    attempt: int) -> list[tuple[str, str]]:
    """Each staged file with the zone path it moves to: the same partition folder, a published name."""
    staging_prefix = files.qualify(layout.staging(batch_id))
    moves = []
    for index, source in enumerate(staged):
        if not source.startswith(staging_prefix):
            raise ValueError(f"{source} is not under {staging_prefix}")
        relative_dir = source[len(staging_prefix):].rsplit("/", 1)[0]
        moves.append((source, f"{layout.data}{relative_dir}/{published_name(batch_id, index, attempt)}"))
    return moves


def publish_batch(
    batch: DataFrame, batch_id: int, layout: ZoneLayout, partition_columns: tuple[str, ...], keep_manifests: int = 100,
    plain_columns: tuple[str, ...] = (),
) -> int:
    """Write `batch` into the zone for `batch_id`, replacing any earlier attempt; return file count."""
    files = HadoopFiles(batch.sparkSession, layout.data)
    staged = stage_batch(batch, batch_id, layout, partition_columns, plain_columns)
    manifest = layout.manifest(batch_id)
    attempt = 0
    if files.exists(manifest):
        earlier = json.loads(files.read_text(manifest))
        attempt = earlier.get("attempt", 0) + 1
        log.warning("batch %d of %s is a replay: replacing %d files of the earlier attempt",
                    batch_id, layout.zone, len(earlier["files"]))
        for path in earlier["files"]:
            files.delete(path)
    moves = moves_into_zone(files, staged, layout, batch_id, attempt)
    files.mkdirs(layout.manifests)
    files.write_text_atomically(manifest, json.dumps({"batch_id": batch_id, "attempt": attempt,
                                                      "files": [t for _, t in moves]}))
    for source, target in moves:
        files.move(source, target)
    files.delete(layout.staging(batch_id), recursive=True)
    prune_manifests(files, layout, batch_id, keep_manifests)
    return len(moves)


def finish_journal(files: HadoopFiles, layout: ZoneLayout, journal: dict, keep_manifests: int) -> None:
    """Carry out a copy-on-write batch's journal (silver's, gold's), written before any of it:
    move its staged files in, delete the files they replace, delete its staging folder. Each step
    checks whether it is done already, so a replay after a crash anywhere finishes the batch."""
    for source, target in journal["moves"]:
        if files.exists(source):
            files.move(source, target)
        elif not files.exists(target):
            raise OSError(f"{layout.zone} batch {journal['batch_id']}: staged file {source} is missing and "
                          f"{target} is not in {layout.zone}")
    for path in journal["replaces"]:
        files.delete(path)
    files.delete(layout.staging(journal["batch_id"]), recursive=True)
    prune_manifests(files, layout, journal["batch_id"], keep_manifests)


def prune_manifests(files: HadoopFiles, layout: ZoneLayout, batch_id: int, keep: int) -> None:
    """Only the last uncommitted batch can be replayed: old manifests are not needed."""
    for path in files.list_dir(layout.manifests):
        name = path.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit() and int(name[:-5]) <= batch_id - keep:
            files.delete(path)
