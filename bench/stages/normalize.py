"""Stage 4, the filter/normalize agent alone: N raw messages pre-loaded (keyed as publish_raw keys
them), then one worker (`faust -A app worker`, SOURCE=none) started; done when its /counters/
endpoint reads N. The rate is taken from the first counters reading above zero to the last, so the
worker's start-up and group join are reported apart."""
from __future__ import annotations

import time

from agents.counters import worker_counters
from bench.harness import Bench, rate, wait_for
from bench.monitor import TreeMonitor
from bench.profile import PySpy


def run(bench: Bench) -> dict:
    count = bench.config.normalize_messages
    settings = bench.stage_settings("normalize")
    bench.produce(settings.topic_raw, bench.pool.messages(0, count))
    broker_cpu = bench.broker_cpu()
    launched = time.monotonic()
    worker = bench.start_worker(settings, name="normalize-worker")
    profiler = None
    try:
        with TreeMonitor(worker.popen.pid) as monitor:
            first: dict = {}

            def started_reading() -> bool:
                reading = worker_counters(settings.faust_web_port, timeout=2)
                if reading.get("read", 0) > 0:
                    first.update(reading, at=time.monotonic(), cpu=monitor.cpu_seconds(), rss=monitor.last_rss)
                    return True
                return False

            wait_for(started_reading, 120, "the worker's first batch", (worker,), interval=0.05)
            if bench.config.py_spy:
                profiler = PySpy.attach(worker.popen.pid, bench.workdir / "normalize.pyspy.txt")
            final: dict = {}

            def read_all() -> bool:
                final.update(worker_counters(settings.faust_web_port, timeout=2))
                return final.get("read", 0) >= count

            done = wait_for(read_all, 600, f"/counters/ read == {count}", (worker,), interval=0.05)
            cpu_running = monitor.cpu_seconds() - first["cpu"]
            cpu_total = monitor.cpu_seconds()
            profile = profiler.finish() if profiler else None
    finally:
        if profiler:
            profiler.kill()
        bench.stop(worker)
    broker_cpu = bench.broker_cpu() - broker_cpu
    bench.delete_stage_topics(settings)
    processed = count - first["read"]
    result = {
        "tweets": count,
        "normalize_tweets_per_s": rate(processed, done - first["at"]),
        "normalize_tweets_per_s_incl_startup": rate(count, done - launched),
        "worker_first_batch_after_s": round(first["at"] - launched, 2),
        "counters": {key: final.get(key) for key in ("read", "accepted", "filtered", "duplicates", "rejected")},
        "worker_peak_rss_mb": monitor.peak_rss_mb(),
        # Growth while processing (the dedup table holds every tweet id for DEDUP_WINDOW_SECONDS).
        "worker_rss_growth_kb_per_tweet": round((monitor.peak_rss - first["rss"]) / 1024 / processed, 2),
        "worker_rss_at_first_batch_mb": round(first["rss"] / 2**20, 1),
        "worker_cpu_s_per_1000": round(cpu_running / processed * 1000, 4),
        "worker_cpu_s_total": round(cpu_total, 2),
        "broker_cpu_s": round(broker_cpu, 2),
    }
    if profile:
        result["profile"] = profile
    return result
