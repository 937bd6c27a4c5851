"""The benchmarks' view of bronze (bench/lake_watch.py) and the cluster stage's comparison: each
tweet is timed once, when a commit of the Delta table first holds it; a parquet file the log does
not name does not count, and a compaction (new files of the same rows) brings no new tweets."""
from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from config.settings import Settings
from bench.lake_watch import BronzeWatcher
from bench.stages.cluster_e2e import _part, compare
from datalake.lake import Lake
from datalake.layout import BRONZE
from tests.support.bronze_files import tweet, write_bronze

TEN = datetime(2024, 5, 1, 10, 20, tzinfo=timezone.utc)
ELEVEN = datetime(2024, 5, 1, 11, 5, tzinfo=timezone.utc)


def rows(moment: datetime, *ids: str) -> list[dict]:
    return [tweet(moment, f"tweet {tweet_id}", tweet_id=tweet_id) for tweet_id in ids]


def data_files(lake) -> set[str]:
    return set(Lake(str(lake)).files(BRONZE).column("path").to_pylist())


def test_each_committed_tweet_is_timed_once_when_first_seen_and_a_compaction_brings_none(tmp_path):
    lake = tmp_path / "lake"
    watcher = BronzeWatcher(Settings(_env_file=None, lake_root=str(lake)))
    assert watcher.poll() == 0  # no lake yet: nothing, no error

    write_bronze(lake, rows(TEN, "1", "2"))
    # A data file no commit names (a writer that died before its commit): not in bronze.
    pq.write_table(pa.table({"tweet_id": ["3"]}), lake / "bronze" / "dt=2024-05-01" / "hour=10" / "part-orphan.parquet")
    assert watcher.poll() == 2
    first = dict(watcher.first_seen)
    assert set(first) == {b"1", b"2"}
    assert watcher.poll() == 0 and watcher.first_seen == first

    write_bronze(lake, rows(TEN, "5") + rows(ELEVEN, "6"))
    assert watcher.poll() == 2 and watcher.rows == 4
    assert {key: watcher.first_seen[key] for key in first} == first  # earlier tweets keep their time
    assert watcher.first_seen[b"5"] > first[b"1"]
    assert watcher.missing([b"1", b"5", b"3"]) == 1

    timed = dict(watcher.first_seen)
    before = data_files(lake)
    metrics = Lake(str(lake)).table(BRONZE).optimize.compact()
    assert metrics["numFilesAdded"] >= 1 and data_files(lake) - before, "the compaction wrote no new file"
    assert watcher.poll() == 0 and watcher.rows == 4  # the merged file's tweets were all seen
    assert watcher.first_seen == timed

    write_bronze(lake, rows(ELEVEN, "7"))
    assert watcher.poll() == 1 and set(watcher.first_seen) == {b"1", b"2", b"5", b"6", b"7"}
    assert watcher.mean_poll_ms() is not None


def test_the_cluster_is_compared_to_the_single_deployment_by_ratios():
    single = {"e2e_tweets_per_s": 4000.0, "e2e_latency_p50_s": 5.0, "e2e_latency_p99_s": 10.0,
              "offered_tweets_per_s": 200.0, "cpu_s_per_1000_burst": {"worker": 0.2, "total": 0.5}}
    cluster = {"e2e_tweets_per_s": 2000.0, "e2e_latency_p50_s": 7.5, "e2e_latency_p99_s": 12.0,
               "offered_tweets_per_s": 200.0, "cpu_s_per_1000_burst": {"kafka": 0.9, "total": 1.25}}
    assert compare(single, cluster) == {"tweets_per_s": 0.5, "latency_p50": 1.5, "latency_p99": 1.2,
                                        "same_offered_rate": True, "cpu_per_1000_burst": 2.5}
    assert [_part(name) for name in ("kafka-2", "datanode-1", "namenode", "spark-worker-2", "worker-1", "sink")] == [
        "kafka", "hdfs", "hdfs", "spark_nodes", "faust_workers", "sink_driver"]
