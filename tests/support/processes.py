"""Run the project's real processes (Faust worker, Spark sink) as subprocesses for tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from datalake.lake import Lake
from datalake.layout import zone as zone_at
from pipeline.processes import BIN, REPO, Process, settings_env, start_worker, wait_for
from pipeline.processes import start_sink as start_project_sink
from config.settings import Settings
from dashboard.health import processes as supervised_processes

__all__ = ["BIN", "REPO", "Process", "settings_env", "start_worker", "start_sink", "bronze_table", "bronze_count", "bronze_ids",
           "wait_for", "supervised", "supervised_pid"]


def start_sink(settings: Settings, workdir: Path, *extra_args: str, name: str = "sink", **overrides) -> Process:
    """The sink on two local cores unless a test says otherwise."""
    overrides.setdefault("spark_master", "local[2]")
    return start_project_sink(settings, workdir, *extra_args, name=name, **overrides)


def bronze_table(lake_root: Path | str, zone: str = "bronze", columns: list[str] | None = None):
    """A zone's current version through its Delta log (deltalake); None while it has no table."""
    return Lake(str(lake_root), must_exist=False).read(zone_at(str(zone)), columns)


def bronze_count(lake_root: Path | str, zone: str = "bronze") -> int:
    """Rows of a zone's current version, from its log's statistics (no data read)."""
    return Lake(str(lake_root), must_exist=False).rows(zone_at(str(zone)))


def bronze_ids(lake_root: Path | str) -> list[str]:
    """Bronze's tweet ids, sorted (repeats kept, so a test sees a tweet twice); none without a table."""
    table = bronze_table(lake_root, columns=["tweet_id"])
    return [] if table is None else sorted(table.column("tweet_id").to_pylist())


def supervised(settings: Settings) -> dict[str, dict]:
    """Each supervised process's state, restarts and since, by name, from the supervisor's metrics
    as the dashboard reads them."""
    return {p["process"]: p for p in supervised_processes(settings, timeout=5)["processes"]}


def supervised_pid(settings: Settings, name: str, group: str = "pipeline") -> int:
    """A supervised process's pid as an operator asks supervisorctl for it; 0 while it is not running."""
    answer = subprocess.run([os.path.join(os.path.dirname(sys.executable), "supervisorctl"), "-c",
                             str(settings.supervise_dir / "supervisord.conf"), "pid", f"{group}:{name}"],
                            capture_output=True, text=True).stdout.strip()
    return int(answer) if answer.isdigit() else 0
