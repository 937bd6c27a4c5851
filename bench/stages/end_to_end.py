"""Stage 6, end to end: raw topic in -> Faust worker -> typed topic -> Spark sink (streaming,
SINK_TRIGGER_SECONDS) -> rows readable in bronze: a warm-up, a burst for the sustained rate, then
latency at a fixed rate. How each is measured: BENCHMARKS.md, stage 6; `measure` is the part the
cluster stage (bench/stages/cluster_e2e.py) shares.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from confluent_kafka import Producer

from config.settings import Settings
from bench.harness import Bench, rate, wait_for
from bench.lake_watch import BronzeWatcher
from bench.monitor import SPARK_GROUPS, TreeMonitor, spark_memory
from agents.counters import worker_counters
from pipeline.processes import Process

POLL_S = 0.25


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Running:
    """A pipeline under measurement: where tweets go in, how many its workers have read, the
    processes that must stay alive, and CPU seconds used so far by each part."""

    settings: Settings
    bootstrap_servers: str
    processes: tuple[Process, ...]
    tweets_read: Callable[[], int]
    cpu_seconds: Callable[[], dict[str, float]]
    launched: float
    producer_config: dict = field(default_factory=dict)


def _cpu_per_1000(before: dict[str, float], after: dict[str, float], tweets: int) -> dict[str, float]:
    used = {name: after[name] - before[name] for name in after}
    used["total"] = sum(used.values())
    return {name: round(seconds / tweets * 1000, 4) for name, seconds in used.items()}


def run(bench: Bench) -> dict:
    """The pipeline as `make run` runs it: one broker, one Faust worker, the sink on local[*]."""
    settings = bench.stage_settings("e2e")
    launched = time.monotonic()
    worker = bench.start_worker(settings, name="e2e-worker")
    sink = bench.start_sink(settings, name="e2e-sink")
    monitors = {
        "worker": TreeMonitor(worker.popen.pid).start(),
        "sink": TreeMonitor(sink.popen.pid, groups=SPARK_GROUPS).start(),
    }
    running = Running(settings, bench.bootstrap_servers, (worker, sink), lambda: worker_counters(settings.faust_web_port, timeout=2).get("read", 0),
                      lambda: {**{name: m.cpu_seconds() for name, m in monitors.items()}, "broker": bench.broker_cpu()},
                      launched)
    result: dict = {"trigger_seconds": settings.sink_trigger_seconds, "spark_master": settings.spark_master}
    try:
        result.update(measure(bench, running))
        result["worker_counters"] = worker_counters(settings.faust_web_port, timeout=2)
    finally:
        for process in running.processes:
            bench.stop(process)
        for monitor in monitors.values():
            monitor.stop()
    result["worker_peak_rss_mb"] = monitors["worker"].peak_rss_mb()
    result.update(spark_memory(monitors["sink"]))
    bench.delete_stage_topics(settings)
    return result


def measure(bench: Bench, running: Running, compare_at: float | None = None) -> dict:
    """Warm-up, a burst, then latency at a fixed rate: --e2e-rate if given, else half the burst's
    sustained rate. With `compare_at` (the rate another pipeline's latency was measured at), the
    lower of that and half the burst's drain rate (tweets over the whole burst, latency included),
    so a slower pipeline is not timed saturated. The same tweets of the pool each time, so two
    pipelines measured are comparable."""
    config = bench.config
    settings, processes = running.settings, running.processes
    watcher = BronzeWatcher(settings)
    pool = bench.pool

    def produce(messages: list[tuple[bytes | None, bytes]]) -> None:
        bench.produce(settings.topic_raw, messages, bootstrap_servers=running.bootstrap_servers,
                      **running.producer_config)

    result: dict = {}
    # 1. Warm-up.
    start, stop = 0, config.e2e_warmup
    produce(pool.messages(start, stop))
    expected = pool.accepted_keys(start, stop)
    first_rows = wait_for(lambda: watcher.poll() > 0 or watcher.rows > 0, 300, "first rows in bronze", processes)
    wait_for(lambda: watcher.poll() >= 0 and watcher.missing(expected) == 0, 120, "warm-up rows in bronze",
             processes, interval=POLL_S)
    result["cold_start_to_first_rows_s"] = round(first_rows - running.launched, 1)

    # 2. Sustained: a burst, as fast as the pipeline drains it.
    start, stop = stop, stop + config.e2e_burst
    burst = pool.messages(start, stop)
    expected = pool.accepted_keys(start, stop)
    cpu_before = running.cpu_seconds()
    read_before = running.tweets_read()
    began = time.monotonic()
    produce(burst)
    published = time.monotonic()
    worker_done: dict = {}
    chunks: list[tuple[float, int]] = []  # (when seen, burst rows readable by then)

    def drained() -> bool:
        if "at" not in worker_done and running.tweets_read() - read_before >= len(burst):
            worker_done["at"] = time.monotonic()
        if watcher.poll():
            missing = watcher.missing(expected)
            chunks.append((time.monotonic(), len(expected) - missing))
            return missing == 0
        return False

    done = wait_for(drained, 900, f"{len(expected)} burst rows in bronze", processes, interval=POLL_S)
    cpu_after = running.cpu_seconds()
    drain_rate = len(burst) / (done - began)
    steady_rows = _steady_rate(chunks)
    e2e_rate = steady_rows * len(burst) / len(expected) if steady_rows else drain_rate
    result.update({
        "burst_tweets": len(burst),
        "burst_rows": len(expected),
        "e2e_tweets_per_s": round(e2e_rate, 1),
        "e2e_rows_per_s": round(steady_rows, 1) if steady_rows else rate(len(expected), done - began),
        "e2e_burst_drain_tweets_per_s": round(drain_rate, 1),
        "burst_chunks": [(round(at - began, 2), rows) for at, rows in chunks],
        "burst_publish_s": round(published - began, 2),
        "burst_worker_tweets_per_s": rate(len(burst), worker_done.get("at", done) - began),
        "burst_drain_s": round(done - began, 2),
        "cpu_s_per_1000_burst": _cpu_per_1000(cpu_before, cpu_after, len(burst)),
    })

    # 3. Latency at a fixed rate below saturation.
    if compare_at:
        offered = config.e2e_rate or min(compare_at, max(50.0, round(drain_rate / 2, -1)))
    else:
        offered = config.e2e_rate or max(50.0, round(e2e_rate / 2, -1))
    count = int(offered * config.e2e_latency_seconds)
    start, stop = stop, stop + count
    messages = pool.messages(start, stop)
    expected = pool.accepted_keys(start, stop)
    cpu_before = running.cpu_seconds()
    published_at, publish_s = _publish_at_rate(running.bootstrap_servers, settings.topic_raw, messages, offered,
                                               watcher, running.producer_config)
    deadline = 120 + 2 * settings.sink_trigger_seconds
    wait_for(lambda: watcher.poll() >= 0 and watcher.missing(expected) == 0, deadline,
             f"{len(expected)} latency rows in bronze", processes, interval=POLL_S)
    cpu_after = running.cpu_seconds()
    latencies = [watcher.first_seen[key] - published_at[key] for key in expected]
    result.update({
        "offered_tweets_per_s": offered,
        "achieved_publish_tweets_per_s": rate(count, publish_s),
        "latency_tweets": count,
        "latency_rows": len(latencies),
        "e2e_latency_p50_s": round(_percentile(latencies, 0.50), 2),
        "e2e_latency_p95_s": round(_percentile(latencies, 0.95), 2),
        "e2e_latency_p99_s": round(_percentile(latencies, 0.99), 2),
        "e2e_latency_max_s": round(max(latencies), 2),
        "e2e_latency_min_s": round(min(latencies), 2),
        "cpu_s_per_1000_at_offered_rate": _cpu_per_1000(cpu_before, cpu_after, count),
        "bronze_rows": watcher.rows,
        "bronze_mean_poll_ms": watcher.mean_poll_ms(),
    })
    return result


def _steady_rate(chunks: list[tuple[float, int]]) -> float | None:
    """Rows per second from the first chunk to the last; None with fewer than three chunks.
    Polls less than a second apart saw one micro-batch's files being moved in: one chunk."""
    batches: list[tuple[float, int]] = []
    for at, rows in chunks:
        if batches and at - batches[-1][0] < 1.0:
            batches[-1] = (at, rows)
        else:
            batches.append((at, rows))
    chunks = batches
    if len(chunks) < 3:
        return None
    (first_at, first_rows), (last_at, last_rows) = chunks[0], chunks[-1]
    return (last_rows - first_rows) / (last_at - first_at)


def _publish_at_rate(bootstrap_servers: str, topic: str, messages: list[tuple[bytes | None, bytes]],
                     per_second: float, watcher: BronzeWatcher,
                     producer_config: dict | None = None) -> tuple[dict[bytes, float], float]:
    """Publish at `per_second`, paced against the start time; poll bronze in between. Returns each
    keyed tweet's publish time (monotonic) and how long publishing took."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5, "log_level": 2,
                         **(producer_config or {})})
    published_at: dict[bytes, float] = {}
    started = time.monotonic()
    next_poll = started + POLL_S
    sent = 0
    while sent < len(messages):
        now = time.monotonic()
        due = min(len(messages), int((now - started) * per_second) + 1)
        while sent < due:
            key, value = messages[sent]
            producer.produce(topic, key=key, value=value)
            if key is not None:
                published_at[key] = time.monotonic()
            sent += 1
        producer.poll(0)
        if now >= next_poll:
            watcher.poll()
            next_poll = now + POLL_S
        time.sleep(0.002)
    publish_s = time.monotonic() - started
    if producer.flush(30):
        raise RuntimeError("latency phase: messages left undelivered")
    return published_at, publish_s
