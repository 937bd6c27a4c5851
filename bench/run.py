"""Benchmark the pipeline stage by stage, in one run, on one fresh embedded Kafka broker and the
same synthetic tweets: raw broker ceiling, the seed project's ingestion pattern, our ingestion,
the filter/normalize agent, the Spark sink, end to end (throughput and latency), memory and CPU.

    python -m bench.run [--quick] [--stages raw_broker,seed_pattern,...] [--py-spy]

Results: bench/results/latest.json (and latest.md, the same as a Markdown report).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import Bench, BenchConfig
from bench.monitor import SystemLoad, TreeMonitor, machine_info
from bench.report import render

STAGES = ("raw_broker", "seed_pattern", "ingest", "normalize", "sink", "e2e", "cluster", "silver", "dashboard",
          "forget", "soak")
# The soak stage takes ~30 minutes, the dashboard's and forget's several each (they build lakes of 1M rows),
# the cluster's starts 13 JVMs: only when asked for.
OPT_IN_STAGES = ("cluster", "dashboard", "forget", "soak")
DEFAULT_STAGES = tuple(stage for stage in STAGES if stage not in OPT_IN_STAGES)
# "No growth": under 0.5 MB a minute (5 MB over ten minutes) in the second half of the soak.
SOAK_FLAT_MB_PER_MIN = 0.5
STAGE_MODULES = {"e2e": "end_to_end", "cluster": "cluster_e2e"}
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Stages: raw_broker (confluent-kafka produce->consume), seed_pattern (kafka-python "
            "send().get() per tweet), ingest (agents.ingest.publish_raw via the Faust app), normalize "
            "(one worker, until /counters/ read == N), sink (spark-submit --available-now), silver (the silver "
            "job --available-now over N landed bronze rows, against bare nlp.pipe), e2e (worker + "
            "streaming sink: sustained rate, then latency at a fixed rate), cluster (opt-in: the e2e measurement on `make "
            "cluster`'s deployment on free ports, 3 brokers, HDFS with 3 DataNodes, Spark standalone, 2 Faust workers; "
            "with e2e in the same run it is compared to it), soak (opt-in: worker + sink at "
            "--set soak_rate=500 tweets/s for --set soak_minutes=30, topics kept --set "
            "soak_retention_ms=300000, memory and broker disk sampled every 10 s, dedup window "
            "--set soak_dedup_window_seconds=120), dashboard (opt-in: 1M silver rows and their gold, the page's "
            "load time in headless Chromium, cold and warm, and each JSON endpoint's latency), forget (opt-in: "
            "`lake forget` of 1,000 ids from a lake of 1M tweets, spread over a week and within one hour). On 2 "
            "cores the default run (all but the opt-in stages) takes about "
            "3.5 minutes, --quick (or BENCH_QUICK=1) about 1.5."
        ),
    )
    quick_default = os.environ.get("BENCH_QUICK", "").strip().lower() in ("1", "true", "yes")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=quick_default,
                        help="smaller sizes, about 1.5 minutes (default from BENCH_QUICK)")
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES),
                        help=f"comma-separated subset of {', '.join(STAGES)} (default: all but {' and '.join(OPT_IN_STAGES)})")
    parser.add_argument("--clean-tweets", action="store_true",
                        help="all tweets on topic, English and well formed (default: SyntheticTweets' realistic shares)")
    parser.add_argument("--seed", type=int, default=42, help="SyntheticTweets seed (default 42)")
    parser.add_argument("--e2e-rate", type=float, help="offered tweets/s for the latency phase (default: half the sustained rate)")
    parser.add_argument("--trigger-seconds", type=float, default=5.0, help="the streaming sink's trigger (default 5, the project default)")
    parser.add_argument("--spark-master", default="local[*]", help="SPARK_MASTER for the sink (default local[*])")
    parser.add_argument("--py-spy", action="store_true", help="profile the normalize worker with py-spy (pip install py-spy)")
    parser.add_argument("--jfr", action="store_true",
                        help="profile the sink stage's driver JVM with Java Flight Recorder (the JDK's jfr tool)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a size, e.g. --set normalize_messages=30000 (see bench/harness.py BenchConfig)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="results JSON (default bench/results/latest.json)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the logs, lakes and checkpoints of the run")
    args = parser.parse_args(argv)
    unknown = set(args.stages.split(",")) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages: {', '.join(sorted(unknown))}")
    return args


def make_config(args: argparse.Namespace) -> BenchConfig:
    values = BenchConfig.quick_sizes() if args.quick else {}
    values.update(seed=args.seed, clean=args.clean_tweets, e2e_rate=args.e2e_rate,
                  trigger_seconds=args.trigger_seconds, spark_master=args.spark_master, py_spy=args.py_spy,
                  jfr=args.jfr)
    fields = {field.name: field.type for field in dataclasses.fields(BenchConfig)}
    for assignment in args.set:
        name, _, value = assignment.partition("=")
        if name not in fields:
            raise SystemExit(f"--set: no field {name!r} in BenchConfig")
        values[name] = float(value) if "." in value else int(value)
    return BenchConfig(quick=args.quick, **values)


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _stop_on_signal(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = make_config(args)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    stages = [stage for stage in STAGES if stage in args.stages.split(",")]
    load = SystemLoad()
    ourselves = TreeMonitor(os.getpid(), interval=1.0).start()
    workdir = Path(tempfile.mkdtemp(prefix="tweetlake-bench-"))
    log(f"{'quick' if config.quick else 'full'} run of {', '.join(stages)}; work files in {workdir}")
    if load.foreign_at_start:
        log(f"note: the machine is shared: {len(load.foreign_at_start)} pipeline-like processes of others are running")
    bench = Bench(config, workdir, log)
    measured = bench.measured
    failed = False
    started = time.monotonic()
    try:
        bench.start_broker()
        bench.pool.ensure(config.broker_messages)
        log(f"{len(bench.pool.payloads):,} tweets generated ({bench.pool.describe()['generation_tweets_per_s']:,} tweets/s)")
        for stage in stages:
            log(f"stage {stage} ...")
            stage_started = time.monotonic()
            try:
                module = importlib.import_module(f"bench.stages.{STAGE_MODULES.get(stage, stage)}")
                measured[stage] = module.run(bench)
            except KeyboardInterrupt:
                raise
            except Exception as error:  # one failed stage must not hide the others' numbers
                failed = True
                measured[stage] = {"error": f"{type(error).__name__}: {error}"}
                log(f"stage {stage} FAILED:\n{traceback.format_exc()}")
            measured[stage]["stage_wall_s"] = round(time.monotonic() - stage_started, 1)
            log(f"stage {stage}: {_headline(measured[stage])}")
    except KeyboardInterrupt:
        log("interrupted: stopping every process this run started")
        failed = True
    finally:
        bench.close()
        ourselves.stop()
    load_summary = load.summary(ourselves.cpu_seconds())
    results = collect(config, measured, bench, load_summary, time.monotonic() - started)
    write(results, args.output)
    print(render(results))
    log(f"results: {args.output}")
    if failed or args.keep_workdir:
        log(f"work files kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def _headline(stage: dict) -> str:
    keys = [k for k in stage if k.endswith(("_per_s", "_p50_s", "_p99_s")) or k == "error"]
    return ", ".join(f"{k} {stage[k]}" for k in keys[:6]) or "done"


def collect(config: BenchConfig, measured: dict, bench: Bench, load: dict, wall: float) -> dict:
    def get(stage: str, key: str):
        return measured.get(stage, {}).get(key)

    def largest(*values):
        present = [v for v in values if v is not None]
        return max(present) if present else None

    seed = get("seed_pattern", "seed_pattern_tweets_per_s")
    raw = get("raw_broker", "raw_broker_msgs_per_s")
    e2e = get("e2e", "e2e_tweets_per_s")
    p99 = get("e2e", "e2e_latency_p99_s")
    soak = _soak_summary(measured.get("soak"))
    slope = soak["worker_rss_second_half_slope_mb_per_min"] if soak else None
    worker_rss = largest(get("normalize", "worker_peak_rss_mb"), get("e2e", "worker_peak_rss_mb"),
                         soak["worker_rss_peak_mb"] if soak else None)
    results = {
        "raw_broker_msgs_per_s": raw,
        "seed_pattern_tweets_per_s": seed,
        "ingest_tweets_per_s": get("ingest", "ingest_tweets_per_s"),
        "normalize_tweets_per_s": get("normalize", "normalize_tweets_per_s"),
        "sink_rows_per_s": get("sink", "sink_rows_per_s"),
        "e2e_tweets_per_s": e2e,
        "e2e_latency_p50_s": get("e2e", "e2e_latency_p50_s"),
        "e2e_latency_p99_s": p99,
        "worker_rss_mb": worker_rss,
        "spark_driver_rss_mb": largest(get("sink", "spark_driver_peak_rss_mb"), get("e2e", "spark_driver_peak_rss_mb")),
        "e2e_latency_p95_s": get("e2e", "e2e_latency_p95_s"),
        "sink_rows_per_s_incl_startup": get("sink", "sink_rows_per_s_incl_startup"),
        "worker_rss_growth_kb_per_tweet": get("normalize", "worker_rss_growth_kb_per_tweet"),
        "worker_rss_after_tweets": {"normalize": get("normalize", "tweets"),
                                    "e2e": (get("e2e", "worker_counters") or {}).get("read")},
        "spark_tree_rss_mb": largest(get("sink", "spark_tree_peak_rss_mb"), get("e2e", "spark_tree_peak_rss_mb")),
        "cluster_e2e_tweets_per_s": get("cluster", "e2e_tweets_per_s"),
        "cluster_e2e_latency_p99_s": get("cluster", "e2e_latency_p99_s"),
        "cluster_vs_single": get("cluster", "vs_single"),
        "silver_tweets_per_s": get("silver", "silver_tweets_per_s"),
        "silver_tweets_per_s_under_load": get("silver", "silver_tweets_per_s_under_load"),
        "silver_lag_s": get("silver", "silver_lag_s"),
        "silver_cost_vs_nlp_pipe": get("silver", "silver_cost_vs_nlp_pipe"),
        "silver_cpu_s_per_1000": get("silver", "silver_cpu_s_per_1000"),
        "silver_rss_mb": get("silver", "silver_peak_rss_mb"),
        "cpu_s_per_1000": {
            "ingest_publish_raw": get("ingest", "ingest_cpu_s_per_1000"),
            "normalize_worker": get("normalize", "worker_cpu_s_per_1000"),
            "sink_incl_startup": get("sink", "sink_cpu_s_per_1000_incl_startup"),
            "e2e_burst": get("e2e", "cpu_s_per_1000_burst"),
            "e2e_at_offered_rate": get("e2e", "cpu_s_per_1000_at_offered_rate"),
            "silver": get("silver", "silver_cpu_s_per_1000"),
            "silver_nlp_pipe": get("silver", "nlp_pipe_cpu_s_per_1000"),
        },
        "ratios": {
            name: {"vs_seed_pattern": _div(value, seed), "vs_raw_broker": _div(value, raw)}
            for name, value in (
                ("ingest", get("ingest", "ingest_tweets_per_s")),
                ("normalize", get("normalize", "normalize_tweets_per_s")),
                ("sink", get("sink", "sink_rows_per_s")),
                ("e2e", e2e),
            )
        },
        "goals": [
            _goal("end to end tweets/s", ">= 10,000", e2e, e2e is not None and e2e >= 10_000),
            _goal("end to end vs seed pattern", ">= 10x", _div(e2e, seed), bool(e2e and seed and e2e >= 10 * seed)),
            _goal("e2e p99 latency (s)", f"<= trigger + 3 = {config.trigger_seconds + 3:g}", p99,
                  p99 is not None and p99 <= config.trigger_seconds + 3),
            _goal("worker peak RSS (MB)", "<= 250", worker_rss, worker_rss is not None and worker_rss <= 250),
            _goal("silver tweets/s (alone, warm)", ">= 250", get("silver", "silver_tweets_per_s"),
                  (get("silver", "silver_tweets_per_s") or 0) >= 250),
            _goal("silver lag after 250 accepted tweets/s with the whole pipeline (s)", "<= 2 triggers = 20",
                  get("silver", "silver_lag_s"), (get("silver", "silver_lag_s") or 1e9) <= 20),
            _goal("silver CPU per tweet vs bare nlp.pipe", "<= 1.25x", get("silver", "silver_cost_vs_nlp_pipe"),
                  get("silver", "silver_cost_vs_nlp_pipe") is not None and get("silver", "silver_cost_vs_nlp_pipe") <= 1.25),
        ] + ([_goal("worker RSS growth, second half of the soak (MB/min)", f"<= {SOAK_FLAT_MB_PER_MIN} (flat)",
                    slope, slope is not None and slope <= SOAK_FLAT_MB_PER_MIN)] if soak else []),
        "soak": soak,
        "quick": config.quick,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_wall_s": round(wall, 1),
        "config": dataclasses.asdict(config),
        "tweets": bench.pool.describe(),
        "code": code_version(),
        "machine": machine_info(),
        "load": load,
        "stages": measured,
    }
    return results


def code_version() -> dict:
    """The commit measured, and whether the measured code had uncommitted changes."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "agents", "app", "spark_sink", "config", "dashboard", "datalake",
                  "pipeline", "tweets", "bench/stages")
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_changes": changed.splitlines()}


def _soak_summary(soak: dict | None) -> dict | None:
    """The soak stage's memory verdict, when it ran."""
    if not soak or "worker_rss" not in soak:
        return None
    return {
        "minutes": soak["soak_minutes"],
        "tweets_per_s": soak["soak_rate"],
        "worker_rss_peak_mb": soak["worker_rss"]["peak_mb"],
        "worker_rss_second_half_slope_mb_per_min": soak["worker_rss"]["second_half_slope_mb_per_min"],
        "spark_driver_rss_peak_mb": soak["spark_driver_rss"]["peak_mb"],
        "spark_driver_rss_second_half_slope_mb_per_min": soak["spark_driver_rss"]["second_half_slope_mb_per_min"],
        "broker_rss_peak_mb": soak["broker_rss"]["peak_mb"],
        "broker_rss_second_half_slope_mb_per_min": soak["broker_rss"]["second_half_slope_mb_per_min"],
        "broker_disk_peak_mb": soak["broker_disk"]["peak_mb"],
        "broker_disk_second_half_slope_mb_per_min": soak["broker_disk"]["second_half_slope_mb_per_min"],
        "broker_at_minutes": soak["at_minutes"],
    }


def _div(a, b):
    return round(a / b, 3) if a and b else None


def _goal(goal: str, target: str, measured, met: bool) -> dict:
    return {"goal": goal, "target": target, "measured": measured, "met": met}


def write(results: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(results, indent=2, default=str) + "\n")
    temporary.replace(output)
    markdown = output.with_suffix(".md")
    markdown.write_text(render(results))


if __name__ == "__main__":
    sys.exit(main())
