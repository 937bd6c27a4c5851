"""Stage 5, the Spark sink alone: N typed rows pre-loaded (the rows the agent would send for the
run's tweets), then `spark-submit spark_sink/bronze.py --available-now` on SPARK_MASTER (local[*]).

maxOffsetsPerTrigger is set to 40% of N, so the run has three micro-batches of 40%, 40% and 20%:
the first pays the start-up (query planning, code generation), the other two are the warm rate, and their two sizes
split a warm batch's time into a fixed cost per batch and a cost per row. Batch times come from
the checkpoint (offsets/<id> is written when a batch starts, commits/<id> when it is done), rows
per batch from bronze's log (each MERGE's commit names its batch and counts the rows it inserted).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from bench.harness import Bench, rate, wait_for
from bench.jfr import jfr_options, summarize_jfr
from bench.monitor import SPARK_GROUPS, TreeMonitor, spark_memory
from datalake import layout
from datalake.commits import commit_metadata, metric
from datalake.lake import Lake
from datalake.layout import BRONZE


def batch_rows(lake: Path) -> dict[int, int]:
    """Rows each micro-batch of the sink inserted into bronze, from the table's log."""
    rows = {}
    for commit in Lake(str(lake)).table(BRONZE).history():
        batch = commit_metadata(commit).get("batch")
        if commit.get("operation") == "MERGE" and batch is not None:
            rows[batch] = metric(commit, "numTargetRowsInserted")
    return rows


def batch_times(checkpoint: Path) -> dict[int, tuple[float, float]]:
    """Batch id -> (started, committed), wall-clock seconds, from the checkpoint's file times."""
    times = {}
    for offsets in (checkpoint / "offsets").glob("[0-9]*"):
        commit = checkpoint / "commits" / offsets.name
        if commit.exists():
            times[int(offsets.name)] = (offsets.stat().st_mtime, commit.stat().st_mtime)
    return times


def run(bench: Bench) -> dict:
    count = bench.config.sink_rows
    per_batch = math.ceil(count * 0.4)
    settings = bench.stage_settings("sink", sink_max_offsets_per_trigger=per_batch)
    bench.produce(settings.topic_typed, bench.pool.typed_rows(count, settings.topic_raw))
    lake = Path(settings.lake_root)
    broker_cpu = bench.broker_cpu()
    launched = time.time()
    recording = bench.workdir / "sink.jfr"
    java_options = jfr_options(recording) if bench.config.jfr else ""
    sink = bench.start_sink(settings, "--available-now", name="sink-available-now", driver_java_options=java_options)
    with TreeMonitor(sink.popen.pid, groups=SPARK_GROUPS) as monitor:
        wait_for(lambda: not sink.alive(), 600, "spark-submit --available-now to exit", interval=0.1)
        exited = time.time()
    bench.stop(sink)
    if sink.popen.returncode != 0:
        raise RuntimeError(f"the sink failed ({sink.popen.returncode}):\n{sink.log_tail(4000)}")
    broker_cpu = bench.broker_cpu() - broker_cpu

    rows = batch_rows(lake)
    times = batch_times(Path(layout.checkpoints(str(lake))) / BRONZE.query)
    if sum(rows.values()) != count:
        raise RuntimeError(f"bronze has {sum(rows.values())} rows, expected {count}")
    batches = sorted(times)
    durations = {b: times[b][1] - times[b][0] for b in batches}
    warm = [b for b in batches if b != batches[0]]
    warm_rows = sum(rows.get(b, 0) for b in warm)
    warm_seconds = sum(durations[b] for b in warm)
    processing = sum(durations.values())
    split = _fixed_and_per_row([(rows.get(b, 0), durations[b]) for b in warm])
    bench.delete_stage_topics(settings)
    profile = {"profile": summarize_jfr(recording)} if bench.config.jfr else {}
    return {
        "rows": count,
        "max_offsets_per_trigger": per_batch,
        "batches": [{"id": b, "rows": rows.get(b, 0), "seconds": round(durations[b], 2)} for b in batches],
        "sink_rows_per_s": rate(warm_rows, warm_seconds) if warm else rate(count, processing),
        "sink_rows_per_s_all_batches": rate(count, processing),
        **split,
        "sink_rows_per_s_incl_startup": rate(count, exited - launched),
        "spark_submit_wall_s": round(exited - launched, 2),
        "sink_startup_s": round(times[batches[0]][0] - launched, 2),
        "sink_first_batch_s": round(durations[batches[0]], 2),
        **spark_memory(monitor),
        "sink_cpu_s_per_1000_incl_startup": round(monitor.cpu_seconds() / count * 1000, 4),
        "broker_cpu_s": round(broker_cpu, 2),
        **profile,
    }


def _fixed_and_per_row(batches: list[tuple[int, float]]) -> dict:
    """From two warm batches of different sizes: seconds per batch whatever its size, and the rate
    of the rows beyond that. Left out when noise makes the line meaningless."""
    if len(batches) < 2 or batches[0][0] == batches[1][0]:
        return {}
    (rows_a, time_a), (rows_b, time_b) = batches[:2]
    per_row = (time_a - time_b) / (rows_a - rows_b)
    fixed = time_a - per_row * rows_a
    if per_row <= 0 or fixed < 0:
        return {}
    return {"sink_batch_fixed_s": round(fixed, 2), "sink_marginal_rows_per_s": round(1 / per_row, 1)}
