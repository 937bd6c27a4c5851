"""Stage 7, the silver job, twice: alone over bronze rows the real sink landed (its warm rate, and
its CPU per row against bare `nlp.pipe`), and under load behind the whole pipeline (whether it
keeps up). How each is measured: BENCHMARKS.md, stage 7b.
"""
from __future__ import annotations

import math
import re
import time
from pathlib import Path

import orjson
from confluent_kafka import Producer

from bench.harness import Bench, rate, wait_for
from bench.monitor import SPARK_GROUPS, TreeMonitor, spark_memory
from bench.nlp_baseline import nlp_pipe_seconds
from datalake.lake import Lake
from datalake.layout import BRONZE, SILVER
from tweets.text import tweet_content

PROGRESS = re.compile(r"silver: batch (\d+) read (\d+) rows in ([\d.]+) s")


def run(bench: Bench) -> dict:
    return {**alone(bench), **under_load(bench)}


def silver_rows_now(lake: Lake) -> int:
    return lake.rows(SILVER)


def under_load(bench: Bench) -> dict:
    config = bench.config
    settings = bench.stage_settings("silver-load")
    lake_path = Path(settings.lake_root)
    lake_path.mkdir(parents=True, exist_ok=True)
    lake = Lake(str(lake_path))
    pool = bench.pool
    share = pool.describe()["accepted_share"]
    per_second = config.silver_load_rate / share
    worker = bench.start_worker(settings, name="silver-load-worker")
    sink = bench.start_sink(settings, name="silver-load-sink")
    silver = bench.start_sink(settings, name="silver-load-silver", job="silver")
    processes = (worker, sink, silver)
    try:
        warmup = pool.messages(0, 300)
        bench.produce(settings.topic_raw, warmup)
        warm_posts = len(pool.accepted_keys(0, 300))
        wait_for(lambda: silver_rows_now(lake) >= warm_posts, 300, "the warm-up tweets in silver", processes,
                 interval=1.0)
        count = int(per_second * config.silver_load_seconds)
        messages = pool.messages(300, 300 + count)
        expected = warm_posts + len(pool.accepted_keys(300, 300 + count))
        monitor = TreeMonitor(silver.popen.pid, groups=SPARK_GROUPS).start()
        producer = Producer({"bootstrap.servers": bench.bootstrap_servers, "linger.ms": 5, "log_level": 2})
        began = time.monotonic()
        samples = []
        for sent, (key, value) in enumerate(messages):
            producer.produce(settings.topic_raw, key=key, value=value)
            producer.poll(0)
            delay = began + (sent + 1) / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.flush(30)
        published = time.monotonic()
        wait_for(lambda: samples.append((time.monotonic(), silver_rows_now(lake))) or samples[-1][1] >= expected,
                 600, "every tweet of the load in silver", processes, interval=2.0)
        done = time.monotonic()
        monitor.stop()
    finally:
        for process in processes:
            bench.stop(process)
    bench.delete_stage_topics(settings)
    return {
        "load_offered_raw_per_s": round(per_second, 1),
        "load_offered_accepted_per_s": config.silver_load_rate,
        "load_seconds": round(published - began, 1),
        "load_silver_rows": expected,
        "silver_tweets_per_s_under_load": rate(expected - warm_posts, done - began),
        "silver_lag_s": round(done - published, 1),
        "silver_under_load_peak_rss_mb": monitor.peak_rss_mb(),
    }


def alone(bench: Bench) -> dict:
    count = bench.config.silver_rows
    # Landed in four sink batches (files), so the silver job's run has four micro-batches too.
    settings = bench.stage_settings("silver", sink_max_offsets_per_trigger=math.ceil(count / 4))
    typed = bench.pool.typed_rows(count, settings.topic_raw)
    bench.produce(settings.topic_typed, typed)
    sink = bench.start_sink(settings, "--available-now", name="silver-bronze")
    wait_for(lambda: not sink.alive(), 600, "the bronze sink to land the stage's rows", interval=0.2)
    bench.stop(sink)
    lake = Lake(settings.lake_root)
    if lake.rows(BRONZE) != count:
        raise RuntimeError(f"bronze has not the {count} rows produced:\n{sink.log_tail(3000)}")

    per_batch = max(1, lake.files(BRONZE).num_rows // 4)  # the files of one sink batch
    launched = time.time()
    silver = bench.start_sink(settings, "--available-now", name="silver", job="silver",
                              silver_max_files_per_trigger=per_batch)
    cpu_at_batch: dict[int, float] = {}  # the job's CPU when each batch's progress line appeared
    with TreeMonitor(silver.popen.pid, groups=SPARK_GROUPS) as monitor:
        while silver.alive():
            for batch_id, _rows, _seconds in PROGRESS.findall(silver.log_text()):
                cpu_at_batch.setdefault(int(batch_id), monitor.cpu_seconds())
            time.sleep(0.05)
        exited = time.time()
        total_cpu = monitor.cpu_seconds()
    bench.stop(silver)
    if silver.popen.returncode != 0:
        raise RuntimeError(f"the silver job failed ({silver.popen.returncode}):\n{silver.log_tail(4000)}")
    batches = [(int(b), int(r), float(s)) for b, r, s in PROGRESS.findall(silver.log_text())]
    silver_rows = lake.rows(SILVER)
    warm = [batch for batch in batches[1:] if batch[0] in cpu_at_batch]
    warm_rows = sum(rows for _, rows, _ in warm)
    warm_cpu = cpu_at_batch[warm[-1][0]] - cpu_at_batch[batches[0][0]] if warm else 0.0

    rows = [orjson.loads(value) for _, value in typed]
    texts = [tweet_content(row["text"], row.get("retweeted_text")) for row in rows]
    baseline = nlp_pipe_seconds(texts)
    per_tweet = warm_cpu / warm_rows if warm_rows else None
    bare_per_tweet = baseline["cpu_s"] / len(texts)
    bench.delete_stage_topics(settings)
    return {
        "rows": count,
        "silver_rows": silver_rows,
        "distinct_texts": len(set(texts)),
        "batches": [{"id": b, "rows": r, "seconds": s} for b, r, s in batches],
        "silver_tweets_per_s": rate(warm_rows, sum(s for _, _, s in warm)) if warm else None,
        "silver_tweets_per_s_incl_startup": rate(count, exited - launched),
        "silver_cpu_s_per_1000": round(per_tweet * 1000, 3) if per_tweet else None,
        "silver_cpu_s_per_1000_incl_startup": round(total_cpu / count * 1000, 3),
        "nlp_pipe_cpu_s_per_1000": round(bare_per_tweet * 1000, 3),
        "nlp_pipe_tweets_per_s": baseline.get("tweets_per_s"),
        "silver_cost_vs_nlp_pipe": round(per_tweet / bare_per_tweet, 3) if per_tweet else None,
        "silver_peak_rss_mb": monitor.peak_rss_mb(),
        **{f"silver_{key}": value for key, value in spark_memory(monitor).items()},
    }



