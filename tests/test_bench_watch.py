"""The benchmarks' view of bronze (bench/lake_watch.py) and the cluster stage's comparison: a file
is read once, when it first shows, and files still in staging or hidden do not count."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from app.settings import Settings
from bench.lake_watch import BronzeWatcher
from bench.stages.cluster import _part, compare


def write_part(folder, name: str, ids: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"tweet_id": ids}), folder / name)


def test_each_published_file_is_read_once_and_its_tweets_timed_when_first_seen(tmp_path):
    lake = tmp_path / "lake"
    watcher = BronzeWatcher(Settings(_env_file=None, lake_root=str(lake)))
    assert watcher.poll() == 0  # no lake yet: nothing, no error

    write_part(lake / "bronze" / "dt=2024-05-01" / "hour=10", "part-00000-b0.parquet", ["1", "2"])
    write_part(lake / "_staging" / "bronze" / "batch=1", "part-00000-b1.parquet", ["3"])  # not published
    write_part(lake / "bronze" / "dt=2024-05-01" / "hour=10", ".part-00001-b1.parquet", ["4"])  # hidden
    assert watcher.poll() == 2
    first = dict(watcher.first_seen)
    assert set(first) == {b"1", b"2"}

    write_part(lake / "bronze" / "dt=2024-05-01" / "hour=11", "part-00000-b2.parquet", ["2", "5"])
    assert watcher.poll() == 2 and watcher.rows == 4
    assert watcher.first_seen[b"2"] == first[b"2"]  # seen again later: still timed at its first sight
    assert watcher.missing([b"1", b"5", b"3"]) == 1
    assert watcher.poll() == 0 and watcher.mean_poll_ms() is not None


def test_the_cluster_is_compared_to_the_single_deployment_by_ratios():
    single = {"e2e_tweets_per_s": 4000.0, "e2e_latency_p50_s": 5.0, "e2e_latency_p99_s": 10.0,
              "offered_tweets_per_s": 200.0, "cpu_s_per_1000_burst": {"worker": 0.2, "total": 0.5}}
    cluster = {"e2e_tweets_per_s": 2000.0, "e2e_latency_p50_s": 7.5, "e2e_latency_p99_s": 12.0,
               "offered_tweets_per_s": 200.0, "cpu_s_per_1000_burst": {"kafka": 0.9, "total": 1.25}}
    assert compare(single, cluster) == {"tweets_per_s": 0.5, "latency_p50": 1.5, "latency_p99": 1.2,
                                        "same_offered_rate": True, "cpu_per_1000_burst": 2.5}
    assert [_part(name) for name in ("kafka-2", "datanode-1", "namenode", "spark-worker-2", "worker-1", "sink")] == [
        "kafka", "hdfs", "hdfs", "spark_nodes", "faust_workers", "sink_driver"]
