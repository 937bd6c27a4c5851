"""Run the project's real processes (Faust worker, Spark sink) as subprocesses for tests."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pyarrow.dataset as ds

from pipeline.processes import BIN, REPO, Process, settings_env, start_worker
from pipeline.processes import start_sink as start_project_sink
from app.settings import Settings

__all__ = ["BIN", "REPO", "Process", "settings_env", "start_worker", "start_sink", "bronze_table", "bronze_count",
           "wait_until"]


def start_sink(settings: Settings, workdir: Path, *extra_args: str, name: str = "sink", **overrides) -> Process:
    """The sink on two local cores unless a test says otherwise."""
    overrides.setdefault("spark_master", "local[2]")
    return start_project_sink(settings, workdir, *extra_args, name=name, **overrides)


def bronze_table(lake_root: Path, zone: str = "bronze"):
    """Bronze read the way a plain reader sees it: pyarrow over the hive-partitioned folder."""
    path = lake_root / str(zone)
    if not path.exists():
        return None
    return ds.dataset(path, format="parquet", partitioning="hive").to_table()


def bronze_count(lake_root: Path, zone: str = "bronze") -> int:
    table = bronze_table(lake_root, zone)
    return 0 if table is None else table.num_rows


def wait_until(condition: Callable[[], bool], timeout: float, what: str, processes: tuple[Process, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in processes:
            if not process.alive():
                raise AssertionError(f"{process.name} exited early while waiting for {what}:\n{process.log_text()[-4000:]}")
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name} ---\n{p.log_text()[-4000:]}" for p in processes)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def kill_inside_a_journal(job, lake: Path, zone: str, timeout: float) -> bool:
    """SIGKILL the job the moment a batch has both its journal (manifest) and its staging folder:
    its files are being moved in and replaced. False if that was not seen in time."""
    staging, manifests = lake / "_staging" / zone, lake / "_manifests" / zone
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for batch in staging.glob("batch=*") if staging.exists() else ():
            if (manifests / f"{int(batch.name.split('=')[1]):012d}.json").exists():
                job.kill()
                return True
        time.sleep(0.002)
    return False
