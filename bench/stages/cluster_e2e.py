"""Stage cluster (opt-in), the cost of replication: the e2e stage's measurement (warm-up, a burst,
latency at a fixed rate; the same tweets) on `make cluster`'s deployment, started on free ports:
3 Kafka brokers (replication 3, min ISR 2, producers acks=all and idempotent), an HDFS NameNode and
3 DataNodes (replication 3), a Spark master and 2 workers with the sink submitted to it, 2 Faust
workers over 8 partitions, bronze on HDFS and read back through WebHDFS. Run it with `e2e` in the
same run: its latency phase then offers e2e's rate if the cluster drained its burst at twice that
(else half its drain rate), and `cluster_vs_single` puts the two side by side; `--e2e-rate` times
both at one rate. The run's own broker stays up, idle. `make bench-cluster` runs both at 200
tweets/s, a rate both sustain on 2 cores (at 500 the cluster fell behind), into
bench/results/cluster.json.
"""
from __future__ import annotations

import time

from engines.local_cluster import ClusterLayout
from bench.harness import Bench, wait_for
from bench.monitor import TreeMonitor
from bench.stages.end_to_end import Running, measure
from pipeline.cluster_run import LocalCluster

PIPELINE = ("worker-1", "worker-2", "sink")
# CPU and memory are reported per part of the deployment.
PARTS = {"kafka": ("kafka-",), "hdfs": ("namenode", "datanode-"), "spark_nodes": ("spark-",),
         "faust_workers": ("worker-",), "sink_driver": ("sink",)}


def _part(name: str) -> str:
    return next(part for part, prefixes in PARTS.items() if name.startswith(prefixes))


def run(bench: Bench) -> dict:
    config = bench.config
    workdir = bench.workdir / "cluster"
    layout = ClusterLayout.on_free_ports(workdir / "data", extra_settings={
        "SOURCE": "none", "SINK_TRIGGER_SECONDS": f"{config.trigger_seconds:g}", "LOG_LEVEL": "info"})
    cluster = LocalCluster(layout, workdir)
    monitors: dict[str, TreeMonitor] = {}
    single = bench.measured.get("e2e", {})

    def cpu_seconds() -> dict[str, float]:
        used = dict.fromkeys(PARTS, 0.0)
        for name, monitor in monitors.items():
            used[_part(name)] += monitor.cpu_seconds()
        return used

    began = time.monotonic()
    result: dict = {"trigger_seconds": config.trigger_seconds, "spark_master": layout.spark_master,
                    "kafka_brokers": len(layout.kafka_ports), "datanodes": layout.datanodes,
                    "topic_partitions": layout.topic_partitions, "faust_workers": 2}
    try:
        cluster.start_nodes()
        result["nodes_up_s"] = round(time.monotonic() - began, 1)
        bench.log(f"  cluster nodes up in {result['nodes_up_s']} s (data in {layout.path})")
        launched = time.monotonic()
        for name in PIPELINE:
            cluster.start(name)
        # Sampled once a second: 13 process trees at the default 0.2 s would cost CPU the pipeline needs.
        monitors.update({name: TreeMonitor(process.popen.pid, interval=1.0).start()
                         for name, process in cluster.processes.items()})
        wait_for(lambda: all(cluster.worker_counters(i) is not None for i in (1, 2)), 180, "both Faust workers",
                 cluster.all_processes())
        running = Running(cluster.settings, layout.bootstrap_servers, cluster.all_processes(), cluster.tweets_read,
                          cpu_seconds, launched, producer_config={"acks": "all", "enable.idempotence": True})
        result.update(measure(bench, running, compare_at=single.get("offered_tweets_per_s")))
        result["worker_counters"] = {f"worker-{i}": cluster.worker_counters(i) for i in (1, 2)}
    finally:
        for monitor in monitors.values():
            monitor.stop()
        cluster.stop()
    peaks = dict.fromkeys(PARTS, 0.0)
    for name, monitor in monitors.items():
        peaks[_part(name)] += monitor.peak_rss_mb()
    result["peak_rss_mb_by_part"] = {part: round(mb, 1) for part, mb in peaks.items()}
    result["peak_rss_mb_sum"] = round(sum(peaks.values()), 1)
    if single.get("e2e_tweets_per_s"):
        result["vs_single"] = compare(single, result)
    return result


def compare(single: dict, cluster: dict) -> dict:
    """The cluster's figures over the single deployment's, from one run on one machine."""

    def ratio(key: str) -> float | None:
        a, b = cluster.get(key), single.get(key)
        return round(a / b, 3) if a is not None and b else None

    return {
        "tweets_per_s": ratio("e2e_tweets_per_s"),
        "latency_p50": ratio("e2e_latency_p50_s"),
        "latency_p99": ratio("e2e_latency_p99_s"),
        "same_offered_rate": cluster.get("offered_tweets_per_s") == single.get("offered_tweets_per_s"),
        "cpu_per_1000_burst": ratio_of(cluster.get("cpu_s_per_1000_burst"), single.get("cpu_s_per_1000_burst")),
    }


def ratio_of(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or not b.get("total"):
        return None
    return round(a["total"] / b["total"], 3)
