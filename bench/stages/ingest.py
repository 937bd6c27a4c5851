"""Stage 3, our ingestion path: `agents.ingest.publish_raw` through the project's Faust app (its
producer settings, key = tweet id parsed from the payload), in a child process of its own.

Two measurements in the child: publish_raw over the run's pre-generated payloads (the same bytes
as stages 1-2), then `SyntheticSource.run` at an unlimited rate (what `SOURCE=synthetic` runs in the
worker, generation included). Each ends with the producer flushed, so every tweet is acknowledged.

    python -m bench.stages.ingest PAYLOADS.pickle RESULT.json --synthetic N --seed S  (the child)
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

from bench.harness import Bench, rate, wait_for
from bench.monitor import TreeMonitor


def run(bench: Bench) -> dict:
    count = bench.config.ingest_messages
    synthetic = bench.config.ingest_synthetic_messages
    settings = bench.stage_settings("ingest")
    stage_dir = bench.workdir / "ingest"
    payloads_file = stage_dir / "payloads.pickle"
    result_file = stage_dir / "result.json"
    bench.pool.ensure(count)
    payloads_file.write_bytes(pickle.dumps(bench.pool.payloads[:count], protocol=pickle.HIGHEST_PROTOCOL))
    broker_cpu = bench.broker_cpu()
    child = bench.start_python(
        settings, "ingest", "-m", "bench.stages.ingest", str(payloads_file), str(result_file),
        "--synthetic", str(synthetic), "--seed", str(bench.config.seed),
    )
    with TreeMonitor(child.popen.pid) as monitor:
        wait_for(lambda: not child.alive(), 300, "the ingest child to finish", interval=0.2)
    bench.stop(child)
    if child.popen.returncode != 0 or not result_file.exists():
        raise RuntimeError(f"ingest child failed ({child.popen.returncode}):\n{child.log_tail(3000)}")
    broker_cpu = bench.broker_cpu() - broker_cpu
    result = json.loads(result_file.read_text())
    bench.delete_stage_topics(settings)
    return {
        "tweets": count,
        "ingest_tweets_per_s": rate(count, result["publish_raw_s"]),
        "ingest_cpu_s_per_1000": round(result["publish_raw_cpu_s"] / count * 1000, 4),
        "synthetic_source_tweets": synthetic,
        "ingest_synthetic_source_tweets_per_s": rate(synthetic, result["synthetic_s"]),
        "child_peak_rss_mb": monitor.peak_rss_mb(),
        "broker_cpu_s": round(broker_cpu, 2),
    }


async def _publish_all(payloads: list[bytes], synthetic: int, seed: int) -> dict:
    from agents.ingest import publish_raw
    from agents.sources.synthetic import SyntheticSource
    from app.faust_app import app

    await app.maybe_start_producer()
    await publish_raw(payloads[0])  # metadata for the topic, outside the timing
    await app.producer.flush()

    cpu, started = time.process_time(), time.perf_counter()
    for payload in payloads:
        await publish_raw(payload)
    await app.producer.flush()
    publish_raw_s, publish_raw_cpu_s = time.perf_counter() - started, time.process_time() - cpu

    started = time.perf_counter()
    await SyntheticSource(rate=1e12, seed=seed + 1, limit=synthetic).run(publish_raw)
    await app.producer.flush()
    synthetic_s = time.perf_counter() - started
    await app.producer.stop()
    return {"publish_raw_s": publish_raw_s, "publish_raw_cpu_s": publish_raw_cpu_s, "synthetic_s": synthetic_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages.ingest", description="the stage-3 child")
    parser.add_argument("payloads", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--synthetic", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    payloads = pickle.loads(args.payloads.read_bytes())
    from app.faust_app import app

    result = app.loop.run_until_complete(_publish_all(payloads, args.synthetic, args.seed))
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
