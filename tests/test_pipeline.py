"""The whole pipeline with real processes: Tansu broker, Faust worker, Spark sink, parquet lake."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import orjson
import pyarrow.compute as pc
import pytest

from agents.normalizer import Accepted, FilterPolicy, Lineage, normalize
from agents.payloads import tweet_id_of
from agents.relevance import TopicMatcher, default_rules_path
from agents.sources.synthetic import SyntheticTweets
from tests.kafka_io import TopicTail, produce
from tests.processes import bronze_count, bronze_table, start_sink, start_worker, wait_until

pytestmark = pytest.mark.integration


def clean_tweets(count: int, seed: int) -> list[bytes]:
    """Generated stream messages that all pass the filters: count in, count rows out."""
    tweets = SyntheticTweets(seed=seed, off_topic_share=0.0, non_english_share=0.0, malformed_share=0.0)
    return list(tweets.messages(count))


def keyed(messages: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    return [(tweet_id_of(message).encode(), message) for message in messages]


def accepted_rows(messages: list[bytes]) -> dict[str, dict]:
    policy = FilterPolicy(
        matcher=TopicMatcher.from_file(default_rules_path()), require_topic=True,
        languages=frozenset({"en"}), max_payload_bytes=512_000,
    )
    rows = {}
    for offset, message in enumerate(messages):
        outcome = normalize(message, policy=policy, lineage=Lineage("raw", 0, offset),
                            ingested_at=datetime.now(timezone.utc))
        if isinstance(outcome, Accepted):
            rows[outcome.row["tweet_id"]] = outcome.row
    return rows


def test_generated_tweets_land_in_bronze_once_with_their_partitions(broker_settings, tmp_path):
    messages = clean_tweets(400, seed=11)
    expected = accepted_rows(messages)
    assert len(expected) == len(messages)
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    produce(settings.bootstrap_servers, settings.topic_raw, keyed(messages))

    with start_worker(settings, tmp_path) as worker, start_sink(settings, tmp_path, sink_trigger_seconds=1) as sink:
        wait_until(lambda: bronze_count(tmp_path / "lake") >= len(expected), 180, "bronze rows", (worker, sink))
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


def test_sink_killed_mid_run_resumes_from_checkpoint_without_gap_or_duplicate(broker_settings, tmp_path):
    messages = clean_tweets(3000, seed=12)
    rows = accepted_rows(messages)
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    produce(settings.bootstrap_servers, settings.topic_typed,
            ((tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in rows.items()))
    lake = tmp_path / "lake"
    slow = {"sink_trigger_seconds": 0.5, "sink_max_offsets_per_trigger": 150}

    first = start_sink(settings, tmp_path, name="sink-1", **slow)
    try:
        wait_until(lambda: bronze_count(lake) >= 300, 180, "first bronze batches", (first,))
    finally:
        first.kill()
    rows_at_kill = bronze_count(lake)
    assert 0 < rows_at_kill < len(rows), "the kill must land in the middle of the run"

    with start_sink(settings, tmp_path, name="sink-2", **slow) as second:
        wait_until(lambda: bronze_count(lake) >= len(rows), 240, "all rows after restart", (second,))
        time.sleep(2)
        table = bronze_table(lake)

    ids = table.column("tweet_id")
    assert table.num_rows == len(rows)
    assert pc.count_distinct(ids).as_py() == len(rows)
    assert set(ids.to_pylist()) == set(rows)


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
                wait_until(lambda: typed.keys() >= expected, 60, f"batch {number} on the typed topic", (worker,))
            finally:
                if stop == "sigterm":
                    assert worker.stop() == 0, worker.log_text()[-3000:]
                else:
                    worker.kill()
            first_output = min(typed.first_seen[key] for key in batch_keys)
            if number > 0:
                assert first_output - started_at < 10, f"restart {number}: processing after {first_output - started_at:.1f}s"
        assert typed.keys() >= expected
