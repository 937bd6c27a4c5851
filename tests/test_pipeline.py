"""The whole pipeline with real processes: Kafka, Faust worker, Spark sink, the Delta lake."""
from __future__ import annotations

import base64
import random
import time
from collections import Counter
from datetime import datetime, timezone

import duckdb
import orjson
import polars
import pyarrow.compute as pc
import pytest
from confluent_kafka.admin import ConfigResource
from deltalake import DeltaTable

from tweets.normalizer import Accepted, Rejected
from tweets.payloads import tweet_id_of
from agents.counters import worker_counters
from agents.sources.synthetic import SyntheticTweets
from datalake.commits import commit_metadata
from engines.broker import admin_client
from tests.support.kafka_io import TopicTail, produce
from tests.support.metrics import scraped
from tests.support.processes import bronze_count, bronze_table, start_sink, start_worker, wait_for
from tests.support.tweets import accepted_rows, clean_tweets, predicted_outcomes
from pipeline.processes import free_port

pytestmark = pytest.mark.integration


def keyed(messages: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    return [(tweet_id_of(message).encode(), message) for message in messages]


def test_generated_tweets_land_in_bronze_once_with_their_partitions(broker_settings, tmp_path):
    messages = clean_tweets(400, seed=11)
    expected = accepted_rows(messages)
    assert len(expected) == len(messages)
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    produce(settings.bootstrap_servers, settings.topic_raw, keyed(messages))

    with start_worker(settings, tmp_path) as worker, start_sink(settings, tmp_path, sink_trigger_seconds=1) as sink:
        wait_for(lambda: bronze_count(tmp_path / "lake") >= len(expected), 180, "bronze rows", (worker, sink))
        time.sleep(3)  # a later batch must not add anything
        table = bronze_table(tmp_path / "lake")

    assert table.num_rows == len(expected)
    rows = {row["tweet_id"]: row for row in table.to_pylist()}
    assert set(rows) == set(expected)
    for tweet_id, row in rows.items():
        want = expected[tweet_id]
        created_at = row["created_at"].astimezone(timezone.utc)
        assert row["dt"] == created_at.strftime("%Y-%m-%d")
        assert int(row["hour"]) == created_at.hour
        assert created_at == datetime.fromisoformat(want["created_at"].replace("Z", "+00:00"))
        for column in ("text", "author_id", "author_username", "lang", "hashtags", "urls", "topics", "source_format"):
            assert row[column] == want[column], column
        assert row["raw"] == want["raw"]
        assert row["kafka_topic"] == settings.topic_raw


def test_sink_killed_repeatedly_leaves_each_tweet_once_for_every_reader(broker_settings, tmp_path, spark):
    messages = clean_tweets(3000, seed=12)
    rows = accepted_rows(messages)
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    produce(settings.bootstrap_servers, settings.topic_typed,
            ((tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in rows.items()))
    lake = tmp_path / "lake"
    slow = {"sink_trigger_seconds": 0.5, "sink_max_offsets_per_trigger": 150}
    chance = random.Random(5)

    kills = []
    for attempt in range(3):
        sink = start_sink(settings, tmp_path, name=f"sink-{attempt}", **slow)
        try:
            floor = bronze_count(lake) + 150
            wait_for(lambda: bronze_count(lake) >= floor, 180, f"progress before kill {attempt}", (sink,))
            time.sleep(chance.uniform(0.0, 1.5))  # land anywhere in a batch: write, publish or commit
        finally:
            sink.kill()
        kills.append(bronze_count(lake))
    assert kills[-1] < len(rows), "the kills must land in the middle of the run"

    with start_sink(settings, tmp_path, name="sink-final", **slow) as final:
        wait_for(lambda: bronze_count(lake) >= len(rows), 240, "all rows after the kills", (final,))
        time.sleep(2)

    table = bronze_table(lake)
    ids = table.column("tweet_id")
    assert table.num_rows == len(rows)
    assert pc.count_distinct(ids).as_py() == len(rows)
    assert set(ids.to_pylist()) == set(rows)
    duck = duckdb.connect()
    duck.register("bronze", DeltaTable(str(lake / "bronze")).to_pyarrow_dataset())
    assert duck.sql("select count(*), count(distinct tweet_id) from bronze").fetchall() == [(len(rows), len(rows))]
    assert polars.read_delta(str(lake / "bronze")).select(polars.col("tweet_id").n_unique()).item() == len(rows)
    spark_rows = spark.read.format("delta").load(str(lake / "bronze"))
    assert spark_rows.count() == len(rows)
    assert spark_rows.select("tweet_id").distinct().count() == len(rows)
    # A batch killed after its commit is replayed from the checkpoint: Delta skips its MERGE.
    merges = [commit_metadata(c)["batch"] for c in DeltaTable(str(lake / "bronze")).history() if c["operation"] == "MERGE"]
    assert len(merges) == len(set(merges)) > 3


def test_worker_restarts_resume_within_seconds_and_lose_nothing(broker_settings, tmp_path):
    settings = broker_settings
    batches = [clean_tweets(300, seed=seed) for seed in (21, 22, 23)]
    with TopicTail(settings.bootstrap_servers, settings.topic_typed) as typed:
        expected: set[bytes] = set()
        for number, (batch, stop) in enumerate(zip(batches, ("sigterm", "sigkill", "sigterm"))):
            batch_keys = {tweet_id_of(message).encode() for message in batch}
            produce(settings.bootstrap_servers, settings.topic_raw, keyed(batch))
            expected |= batch_keys
            started_at = time.monotonic()
            worker = start_worker(settings, tmp_path, name=f"worker-{number}")
            try:
                wait_for(lambda: typed.keys() >= expected, 60, f"batch {number} on the typed topic", (worker,))
            finally:
                if stop == "sigterm":
                    assert worker.stop() == 0, worker.log_text()[-3000:]
                else:
                    worker.kill()
            first_output = min(typed.first_seen[key] for key in batch_keys)
            if number > 0:  # not waiting out the killed member's session (111 s when LeaveGroup was skipped)
                assert first_output - started_at < 30, f"restart {number}: processing after {first_output - started_at:.1f}s"
        assert typed.keys() >= expected


def rows_of(query: str) -> tuple[str, tuple]:
    """The sample of a Spark query's input rows in its job's metrics."""
    return "tweetlake_spark_input_rows_total", (("query", query),)


def test_duplicates_and_malformed_are_counted_and_never_reach_bronze(broker_settings, tmp_path):
    tweets = SyntheticTweets(seed=31, off_topic_share=0.3, non_english_share=0.1, malformed_share=0.1)
    messages = list(tweets.messages(600))
    repeats = messages[:80]  # the stream and backfills repeat tweets
    stream = messages + repeats
    predicted = Counter()
    seen: set[str] = set()
    for outcome in predicted_outcomes(stream):
        tweet_id = getattr(outcome, "tweet_id", None) or (outcome.row["tweet_id"] if isinstance(outcome, Accepted) else None)
        if isinstance(outcome, Rejected):
            predicted["rejected"] += 1
        elif tweet_id in seen:
            predicted["duplicates"] += 1
        else:
            seen.add(tweet_id)
            predicted["accepted" if isinstance(outcome, Accepted) else "filtered"] += 1
    assert min(predicted.values()) > 0, predicted
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    lake = tmp_path / "lake"
    # Send in order through one partition so "first seen" is the same as in the prediction.
    produce(settings.bootstrap_servers, settings.topic_raw, ((b"same-partition", m) for m in stream))

    sink_metrics_port = free_port()  # the bronze job's SPARK_METRICS_PORT
    with start_worker(settings, tmp_path) as worker, \
            start_sink(settings, tmp_path, sink_trigger_seconds=1, sink_dead_letter_trigger_seconds=1,
                       spark_metrics_port=sink_metrics_port) as sink:
        wait_for(lambda: worker_counters(settings.faust_web_port).get("read") == len(stream), 90, "worker read all", (worker, sink))
        wait_for(
            lambda: bronze_count(lake) >= predicted["accepted"]
            and bronze_count(lake, "quarantine/dead_letter") >= predicted["rejected"],
            180, "bronze and quarantine rows", (worker, sink),
        )
        time.sleep(3)
        counters = worker_counters(settings.faust_web_port)
        worker_metrics = scraped(settings.faust_web_port)
        # The progress event of a batch comes after its commit; a scrape may time out on a busy machine.
        sink_metrics: dict = {}

        def metrics_caught_up() -> bool:
            sink_metrics.clear()
            sink_metrics.update(scraped(sink_metrics_port))
            return (sink_metrics.get(rows_of("dead_letters")) == predicted["rejected"]
                    and sink_metrics.get(rows_of("bronze")) == predicted["accepted"])

        wait_for(metrics_caught_up, 60, "the sink's metrics", (sink,))

    assert {key: counters[key] for key in predicted} == dict(predicted)
    for key in ("read", "accepted", "filtered", "duplicates", "rejected"):
        assert worker_metrics[(f"tweetlake_worker_tweets_{key}_total", ())] == counters[key], key
    for key in ("filtered", "rejected"):
        by_reason = {dict(labels)["reason"]: value for (name, labels), value in worker_metrics.items()
                     if name == f"tweetlake_worker_tweets_{key}_by_reason_total"}
        assert by_reason == counters[f"{key}_by_reason"], key
    for query in ("bronze", "dead_letters"):
        assert sink_metrics[("tweetlake_spark_batches_total", (("query", query),))] > 0, query
    assert sink_metrics[rows_of("bronze")] == predicted["accepted"]  # one typed record per accepted tweet
    assert sink_metrics[rows_of("dead_letters")] == predicted["rejected"]
    assert sink_metrics[("tweetlake_spark_kafka_offsets_behind_latest",
                         (("query", "bronze"), ("topic", settings.topic_typed)))] == 0
    assert sum(value for (name, labels), value in sink_metrics.items() if name == "tweetlake_spark_kafka_end_offset"
               and dict(labels)["query"] == "bronze") == predicted["accepted"]  # the dashboard's sink lag reads these
    assert counters["read"] == sum(predicted.values())
    bronze = bronze_table(lake)
    assert bronze.num_rows == predicted["accepted"]
    assert pc.count_distinct(bronze.column("tweet_id")).as_py() == predicted["accepted"]
    quarantine = bronze_table(lake, "quarantine/dead_letter")
    assert quarantine.num_rows == predicted["rejected"]
    assert set(quarantine.column("reason").to_pylist()) <= set(counters["rejected_by_reason"])
    originals = {base64.b64decode(value) for value in quarantine.column("raw_base64").to_pylist()}
    assert originals <= set(stream)


def test_restarted_worker_remembers_seen_tweet_ids(broker_settings, tmp_path):
    settings = broker_settings
    messages = clean_tweets(500, seed=41)
    produce(settings.bootstrap_servers, settings.topic_raw, keyed(messages))
    with start_worker(settings, tmp_path, name="worker-first") as worker:
        wait_for(lambda: worker_counters(settings.faust_web_port).get("accepted") == len(messages), 60, "first pass", (worker,))

    produce(settings.bootstrap_servers, settings.topic_raw, keyed(messages))
    with start_worker(settings, tmp_path, name="worker-second") as worker:
        wait_for(lambda: worker_counters(settings.faust_web_port).get("duplicates", 0) >= len(messages), 60, "second pass", (worker,))
        time.sleep(2)
        counters = worker_counters(settings.faust_web_port)
    assert "dedup: 500 tweet ids recovered" in worker.log_text()
    # The changelog is compacted and deleted in rolling segments, so it stays bounded.
    admin = admin_client(settings.bootstrap_servers)
    changelog = ConfigResource(ConfigResource.Type.TOPIC, f"{settings.faust_app_id}-seen_tweets-changelog")
    configs = admin.describe_configs([changelog])[changelog].result()
    assert configs["cleanup.policy"].value == "compact,delete"
    assert int(configs["segment.ms"].value) == int(settings.dedup_window_seconds * 2000) // 6
    # Every message of the second pass repeats a tweet of the first (a message re-read after a
    # rebalance is counted again: at-least-once), so nothing is accepted.
    assert counters["read"] >= len(messages)
    assert counters["duplicates"] == counters["read"], counters
    assert counters["accepted"] == 0


def test_built_in_synthetic_source_feeds_the_raw_topic_keyed_by_tweet_id(broker_settings, tmp_path):
    settings = broker_settings
    with start_worker(settings, tmp_path, source="synthetic", synthetic_rate=500, synthetic_limit=300,
                      synthetic_seed=5) as worker:
        wait_for(lambda: worker_counters(settings.faust_web_port).get("read") == 300, 60, "300 synthetic tweets read", (worker,))
        counters = worker_counters(settings.faust_web_port)
    with TopicTail(settings.bootstrap_servers, settings.topic_raw) as raw:
        wait_for(lambda: len(raw.first_seen) >= 290, 30, "raw keys")
        keys = raw.keys()
    assert counters["read"] == counters["accepted"] + counters["filtered"] + counters["duplicates"] + counters["rejected"]
    assert counters["accepted"] > 0 and counters["filtered"] > 0
    assert all(key is None or key.isdigit() for key in keys)


def test_two_workers_share_partitions_and_one_killed_mid_run_loses_and_doubles_nothing(broker_settings, tmp_path):
    messages = clean_tweets(3000, seed=51)
    expected = accepted_rows(messages)
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    lake = tmp_path / "lake"
    second_port = free_port()

    def second_counters() -> dict:
        return worker_counters(second_port)

    with start_worker(settings, tmp_path, name="worker-a") as first, \
            start_sink(settings, tmp_path, sink_trigger_seconds=1) as sink:
        second = start_worker(settings, tmp_path, name="worker-b", faust_web_port=second_port)
        try:
            wait_for(lambda: second_counters() != {} and worker_counters(settings.faust_web_port) != {}, 60, "both workers up", (first, second))
            produce(settings.bootstrap_servers, settings.topic_raw, keyed(messages[:1500]))
            wait_for(lambda: second_counters().get("read", 0) > 100, 60, "the second worker processing", (first, second))
        finally:
            second.kill()
        produce(settings.bootstrap_servers, settings.topic_raw, keyed(messages[1500:]))
        wait_for(lambda: bronze_count(lake) >= len(expected), 240, "every tweet in bronze", (first, sink))
        time.sleep(3)
        table = bronze_table(lake)

    assert table.num_rows == len(expected)
    assert pc.count_distinct(table.column("tweet_id")).as_py() == len(expected)
    assert set(table.column("tweet_id").to_pylist()) == set(expected)


def test_a_broker_crash_mid_run_loses_nothing_and_the_pipeline_keeps_going(own_broker, tmp_path):
    """The embedded Kafka is SIGKILLed while tweets flow and started again from its data dir:
    the worker and the sink reconnect, and every tweet, before, during and after, lands once."""
    settings = own_broker.settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    lake = tmp_path / "lake"
    messages = clean_tweets(900, seed=61)
    before, during, after = messages[:400], messages[400:600], messages[600:]
    with start_worker(settings, tmp_path) as worker, start_sink(settings, tmp_path, sink_trigger_seconds=1) as sink:
        produce(settings.bootstrap_servers, settings.topic_raw, keyed(before))
        wait_for(lambda: bronze_count(lake) >= 100, 180, "bronze before the crash", (worker, sink))
        produce(settings.bootstrap_servers, settings.topic_raw, keyed(during))
        own_broker.process.kill()
        own_broker.process.wait()
        own_broker.start()
        produce(settings.bootstrap_servers, settings.topic_raw, keyed(after))
        wait_for(lambda: bronze_count(lake) >= len(messages), 240, "bronze after the restart", (worker, sink))
        time.sleep(3)
        table = bronze_table(lake)
    assert table.num_rows == len(messages)
    assert set(table.column("tweet_id").to_pylist()) == set(accepted_rows(messages))
