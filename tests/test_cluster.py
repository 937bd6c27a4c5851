"""The pipeline on `make cluster` itself (3 Kafka brokers, an HDFS NameNode and 3 DataNodes, a Spark
master and 2 workers, 2 Faust workers, the sink, silver and gold jobs on the Spark master, the
dashboard, all under its supervisor), on free ports. While tweets flow at a modest rate, one
broker, one DataNode, one Spark worker and one Faust worker are SIGKILLed in turn and nothing is
restarted by hand: the supervisor brings each back and it rejoins, nothing else stops; every
produced tweet is in bronze exactly once and every malformed message in quarantine, read through
deltalake's own HDFS client and with Spark."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from agents.sources.synthetic import SyntheticTweets
from engines.local_cluster import NODES, PIPELINE, ClusterLayout
from datalake.errors import LakeError
from datalake.lake import Lake
from datalake.layout import zone as zone_at
from pipeline.cluster_run import LocalCluster, outside_settings
from pipeline.processes import REPO
from tests.support.processes import supervised, supervised_pid, wait_for
from tweets.payloads import tweet_id_of

pytestmark = pytest.mark.integration

RATE = 30.0  # tweets a second
MALFORMED_EVERY = 50
OUTPUT = Path(__file__).parent / "output" / "cluster_faults.json"


def lake(cluster: LocalCluster) -> Lake:
    return Lake(cluster.layout.lake_root)


def zone_rows(cluster: LocalCluster, zone: str) -> int:
    """Rows of a zone's current version on the cluster's HDFS; -1 while HDFS does not answer."""
    try:
        return lake(cluster).rows(zone_at(zone))
    except (LakeError, OSError):
        return -1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`make cluster` on a layout of free ports (written first; `up` keeps a layout it finds), its
    nodes joined. The LocalCluster starts nothing: it only probes the nodes."""
    workdir = tmp_path_factory.mktemp("cluster")
    layout = ClusterLayout.on_free_ports(workdir / "data", topic_partitions=6, extra_settings={
        "SOURCE": "none", "SINK_TRIGGER_SECONDS": "2", "SINK_DEAD_LETTER_TRIGGER_SECONDS": "5",
        "FAUST_SESSION_TIMEOUT": "10", "KAFKA_HEAP_MB": "384", "HDFS_HEAP_MB": "256",
        "SUPERVISE_START_SECONDS": "20"})
    probes = LocalCluster(layout, workdir)
    env = outside_settings()  # the cluster's settings come from its layout
    with open(workdir / "make-cluster.log", "wb") as log:
        run = subprocess.Popen(["make", "cluster", f"CLUSTER_DIR={layout.path}"], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: probes.brokers_up() == 3 and probes.live_datanodes() == 3
                   and probes.alive_spark_workers() == 2, 300, "every node of make cluster")
        yield probes
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        try:
            run.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def group_of(name: str) -> str:
    return "infra" if name in NODES else "pipeline"


class Feed(threading.Thread):
    """Clean tweets (and every MALFORMED_EVERY-th message malformed) to the raw topic at RATE,
    acks=all and idempotent; `ids` are the tweets delivered, `malformed` the bad ones delivered."""

    def __init__(self, cluster: LocalCluster):
        super().__init__(daemon=True)
        self.topic = cluster.settings.topic_raw
        self.producer = Producer({"bootstrap.servers": cluster.layout.bootstrap_servers, "acks": "all",
                                  "enable.idempotence": True, "log_level": 2})
        self.tweets = SyntheticTweets(seed=71, off_topic_share=0.0, non_english_share=0.0, malformed_share=0.0)
        self.ids: set[str] = set()
        self.malformed = 0
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        sent = 0
        started = time.monotonic()
        while not self.stopping.is_set():
            sent += 1
            if sent % MALFORMED_EVERY == 0:
                self.producer.produce(self.topic, b'{"data": {"id": "1", "text": cut', on_delivery=self._bad)
            else:
                message = next(self.tweets.messages(1))
                tweet_id = tweet_id_of(message)
                self.producer.produce(self.topic, message, tweet_id.encode(),
                                      on_delivery=lambda error, _m, tid=tweet_id: self._tweet(error, tid))
            self.producer.poll(0)
            time.sleep(max(0.0, sent / RATE - (time.monotonic() - started)))
        self.producer.flush(120)

    def _tweet(self, error, tweet_id: str) -> None:
        if error is None:
            self.ids.add(tweet_id)
        else:
            self.failed += 1

    def _bad(self, error, _message) -> None:
        if error is None:
            self.malformed += 1
        else:
            self.failed += 1


@pytest.mark.timeout(1200)  # the cluster's start and stop (15 JVMs on 2 cores) count in
def test_every_tweet_once_after_a_broker_a_datanode_a_spark_worker_and_a_faust_worker_are_killed(cluster, spark):
    wait_for(lambda: cluster.worker_counters(1) is not None and cluster.worker_counters(2) is not None, 300,
               "both Faust workers")
    feed = Feed(cluster)
    feed.start()
    wait_for(lambda: zone_rows(cluster, "bronze") > 0, 420, "the sink's first bronze rows")
    settings = cluster.settings
    pids = {name: supervised_pid(settings, name, group_of(name)) for name in (*NODES, *PIPELINE)}
    assert all(pids.values()), pids

    rejoined = {
        "kafka-2": lambda: cluster.brokers_up() == 3 and cluster.in_sync_everywhere(settings.topic_raw),
        "datanode-2": cluster.fully_replicated,
        "spark-worker-1": lambda: cluster.alive_spark_workers() == 2,
        "worker-2": lambda: cluster.worker_counters(2) is not None and cluster.worker_counters(2).get("read", 0) > 0,
    }
    faults = []
    for name, back in rejoined.items():
        before = len(feed.ids)
        killed_at = time.monotonic()
        os.kill(pids[name], signal.SIGKILL)  # nobody restarts it but the supervisor
        wait_for(lambda: supervised_pid(settings, name, group_of(name)) not in (0, pids[name]), 60, f"{name} restarted")
        restarted_at = time.monotonic()
        # Back means: up for SUPERVISE_START_SECONDS (RUNNING; by then the cluster has noticed the
        # death, which a probe right after a quick restart would not show) and joined again.
        wait_for(lambda: supervised(settings).get(name, {}).get("state") == "RUNNING" and back(), 240, f"{name} to rejoin")
        faults.append({"killed": name, "produced_while_down_and_rejoining": len(feed.ids) - before,
                       "restarted_after_s": round(restarted_at - killed_at, 1),
                       "running_and_rejoined_after_s": round(time.monotonic() - killed_at, 1)})
    feed.stopping.set()
    feed.join(180)
    assert feed.failed == 0, f"{feed.failed} messages were not acknowledged with acks=all"

    wait_for(lambda: zone_rows(cluster, "bronze") >= len(feed.ids)
               and zone_rows(cluster, "quarantine/dead_letter") >= feed.malformed, 300,
               f"{len(feed.ids)} tweets in bronze and {feed.malformed} dead letters")
    time.sleep(settings.sink_trigger_seconds * 3)  # nothing more may arrive

    the_lake = lake(cluster)
    ids = the_lake.read(zone_at("bronze"), ["tweet_id"]).column("tweet_id").to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) == feed.ids
    assert the_lake.read(zone_at("quarantine/dead_letter"), ["letter_id"]).num_rows == feed.malformed
    bronze = spark.read.format("delta").load(f"{cluster.layout.lake_root}/bronze")
    assert bronze.count() == bronze.select("tweet_id").distinct().count() == len(feed.ids)
    # Each killed process came back once; nothing else stopped.
    states = {name: (p["state"], p["restarts"]) for name, p in supervised(settings).items()}
    assert states == {name: ("RUNNING", 1 if name in rejoined else 0) for name in (*NODES, *PIPELINE)}, states
    assert {name: supervised_pid(settings, name, group_of(name)) for name in pids if name not in rejoined} == \
        {name: pid for name, pid in pids.items() if name not in rejoined}
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps({"tweets": len(feed.ids), "malformed": feed.malformed, "rate": RATE,
                                  "faults": faults}, indent=2) + "\n")
    assert all(fault["produced_while_down_and_rejoining"] > 0 for fault in faults), faults
