"""A lake-wide lock for the jobs that must run once per lake (silver, gold): two of them would
decide against the same files and overwrite each other's rewrites."""
from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timezone

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from datalake import layout
from spark_sink.publish import HadoopFiles

log = logging.getLogger("tweetlake.locks")


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
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": datetime.now(timezone.utc).isoformat()}
        if self.files.create_exclusive(self.path, json.dumps(me)):
            return
        holder = self.holder()
        if holder.get("host") == me["host"] and not _alive(int(holder.get("pid", 0))):
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


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
