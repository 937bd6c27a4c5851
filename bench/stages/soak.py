"""Stage soak (opt-in: `--stages soak`, not part of the default run): the worker and the streaming
sink under a steady rate for `soak_minutes` with short topic retention, to see whether memory,
the broker's disk and bronze's Delta metadata level off once retention deletes. What is sampled,
and the dedup window it uses: BENCHMARKS.md, stage 8.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from bench.harness import Bench, wait_for
from bench.lake_watch import BronzeWatcher
from bench.monitor import SPARK_GROUPS, TreeMonitor
from bench.stages.end_to_end import POLL_S, _publish_at_rate
from agents.counters import worker_counters

SAMPLE_S = 10.0


def _slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) pairs, in MB per minute."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if not spread:
        return None
    slope = sum((t - mean_t) * (m - mean_m) for t, m in samples) / spread
    return round(slope * 60, 2)


def _summary(curve: list[tuple[float, float]]) -> dict:
    second_half = [(t, mb) for t, mb in curve if t >= curve[-1][0] / 2]
    return {
        "first_mb": curve[0][1],
        "last_mb": curve[-1][1],
        "peak_mb": max(mb for _, mb in curve),
        "second_half_slope_mb_per_min": _slope_mb_per_min(second_half),
    }


def _folder_mb(folder: Path) -> float:
    """Bytes on disk under `folder` (what `du` counts), in MB."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_blocks * 512
        except FileNotFoundError:  # a segment deleted by retention while we walk
            pass
    return round(total / 2**20, 1)


def _bronze_shape(lake: Path) -> tuple[int, int]:
    """Files in bronze's _delta_log, and the most data files one hour partition has now."""
    from datalake.lake import Lake
    from datalake.layout import BRONZE

    log = lake / BRONZE.path / "_delta_log"
    log_files = sum(1 for _ in log.iterdir()) if log.exists() else 0
    files = Lake(str(lake), must_exist=False).files(BRONZE)
    if files is None or files.num_rows == 0:
        return log_files, 0
    per_partition = files.group_by(["partition.dt", "partition.hour"]).aggregate([("path", "count")])
    return log_files, max(per_partition.column("path_count").to_pylist())


def _at_minute(minute: float, broker: list[tuple[float, float]], disk: list[tuple[float, float]]) -> dict | None:
    """The samples nearest to `minute` into the run (None when the run was shorter)."""
    at = minute * 60
    if not broker or broker[-1][0] < at - SAMPLE_S:
        return None
    index = min(range(len(broker)), key=lambda i: abs(broker[i][0] - at))
    return {"broker_rss_mb": broker[index][1], "broker_disk_mb": disk[index][1]}


def run(bench: Bench) -> dict:
    config = bench.config
    rate = config.soak_rate
    count = int(rate * config.soak_minutes * 60)
    settings = bench.stage_settings("soak", dedup_window_seconds=config.soak_dedup_window_seconds,
                                    topic_retention_ms=config.soak_retention_ms)
    watcher = BronzeWatcher(settings)
    messages = bench.pool.messages(0, count)
    worker = bench.start_worker(settings, name="soak-worker")
    sink = bench.start_sink(settings, name="soak-sink")
    processes = (worker, sink)
    worker_monitor = TreeMonitor(worker.popen.pid).start()
    sink_monitor = TreeMonitor(sink.popen.pid, groups=SPARK_GROUPS).start()
    worker_curve: list[tuple[float, float]] = []
    driver_curve: list[tuple[float, float]] = []
    broker_curve: list[tuple[float, float]] = []
    disk_curve: list[tuple[float, float]] = []
    log_curve: list[tuple[float, int]] = []
    partition_curve: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample_memory() -> None:
        began = time.monotonic()
        while not stop.wait(SAMPLE_S):
            elapsed = round(time.monotonic() - began, 1)
            worker_curve.append((elapsed, worker_monitor.last_rss_mb()))
            driver_curve.append((elapsed, sink_monitor.last_rss_mb("driver")))
            broker_curve.append((elapsed, bench.broker_monitor.last_rss_mb()))
            disk_curve.append((elapsed, _folder_mb(bench.kafka_data_dir)))
            log_files, per_partition = _bronze_shape(Path(settings.lake_root))
            log_curve.append((elapsed, log_files))
            partition_curve.append((elapsed, per_partition))
            if len(worker_curve) % 6 == 0:
                bench.log(f"  soak {elapsed / 60:.1f} min: worker {worker_curve[-1][1]} MB, "
                          f"Spark driver {driver_curve[-1][1]} MB, broker {broker_curve[-1][1]} MB, "
                          f"broker disk {disk_curve[-1][1]} MB, bronze _delta_log {log_files} files, at most "
                          f"{per_partition} data files an hour, read {worker_counters(settings.faust_web_port, timeout=2).get('read', 0):,}")

    result: dict = {"soak_rate": rate, "soak_minutes": config.soak_minutes, "soak_tweets": count,
                    "topic_retention_ms": config.soak_retention_ms,
                    "dedup_window_seconds": config.soak_dedup_window_seconds, "sample_seconds": SAMPLE_S}
    sampler = threading.Thread(target=sample_memory, daemon=True, name="soak-sampler")
    try:
        wait_for(lambda: worker_counters(settings.faust_web_port, timeout=2) != {}, 120, "the soak worker's web server", processes)
        sampler.start()
        _published_at, publish_s = _publish_at_rate(bench.bootstrap_servers, settings.topic_raw, messages, rate, watcher)
        wait_for(lambda: worker_counters(settings.faust_web_port, timeout=2).get("read", 0) >= count, 120, "the soak worker read everything",
                 processes, interval=POLL_S)
        stop.set()
        sampler.join()
        result.update({
            "achieved_publish_tweets_per_s": round(count / publish_s, 1),
            "worker_counters": worker_counters(settings.faust_web_port, timeout=2),
            "worker_rss": _summary(worker_curve),
            "spark_driver_rss": _summary(driver_curve),
            "broker_rss": _summary(broker_curve),
            "broker_disk": _summary(disk_curve),
            "at_minutes": {str(minute): _at_minute(minute, broker_curve, disk_curve) for minute in (5, 15, 30)},
            "worker_rss_curve_mb": worker_curve,
            "spark_driver_rss_curve_mb": driver_curve,
            "broker_rss_curve_mb": broker_curve,
            "broker_disk_curve_mb": disk_curve,
            "bronze_delta_log_files": {"last": log_curve[-1][1] if log_curve else None,
                                       "peak": max((n for _, n in log_curve), default=None)},
            "bronze_files_per_partition": {"last": partition_curve[-1][1] if partition_curve else None,
                                           "peak": max((n for _, n in partition_curve), default=None)},
            "bronze_delta_log_files_curve": log_curve,
            "bronze_files_per_partition_curve": partition_curve,
        })
    finally:
        stop.set()
        for process in processes:
            bench.stop(process)
        worker_monitor.stop()
        sink_monitor.stop()
    bench.delete_stage_topics(settings)
    return result
