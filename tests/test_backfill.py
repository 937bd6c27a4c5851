"""The backfill command end to end, as a user runs it: archive files in, bronze and quarantine
rows out, and a last JSON line whose counts add up and match what the normalizer decides."""
from __future__ import annotations

import base64
import gzip
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tweets.normalizer import Accepted, FilterPolicy, Rejected, normalize
from tweets.payloads import tweet_id_of
from tweets.topics import TopicMatcher
from agents.sources.archive import ArchiveFile
from agents.sources.synthetic import SyntheticTweets
from config.settings import Settings
from datalake.lake import Lake
from datalake.layout import BRONZE
from tests.support.backfill import assert_adds_up, backfill
from tests.support.bronze_files import snowflake
from tests.support.gold_lake import assert_gold_equals_silver
from tests.support.kafka_io import produce
from tests.support.metrics import scraped
from tests.support.processes import bronze_count, bronze_ids, bronze_table, start_sink, start_worker, wait_for
from tests.support.tweets import SEED_FILE, page_of, v1_status
from pipeline.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # a backfill with silver and gold: minutes on 2 busy cores

MATCHER = TopicMatcher.from_file()
POLICIES = {
    "topics": FilterPolicy(matcher=MATCHER, languages=frozenset({"en"})),
    "none": FilterPolicy(matcher=MATCHER, require_topic=False),
}


def edited_post(created: datetime, texts: list[str], minutes_apart: int) -> list[dict]:
    """The versions of one edited post as X API v2 stream messages, oldest first."""
    moments = [created + timedelta(minutes=minutes_apart * n) for n in range(len(texts))]
    ids = [snowflake(moment, 7) for moment in moments]
    return [{"data": {"id": ids[n], "text": text, "lang": "en", "author_id": "4242",
                      "created_at": moments[n].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                      "edit_history_tweet_ids": ids[: n + 1]},
             "includes": {"users": [{"id": "4242", "username": "editor"}]}}
            for n, text in enumerate(texts)]


# Edited posts: the backfills see P's first and Q's second version; the live stream then brings
# P's newer and Q's older one.
P = edited_post(datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
                ["Machine learning notes, first draft", "Machine learning notes, fixed the typo"], 20)
Q = edited_post(datetime(2024, 5, 1, 10, 5, tzinfo=timezone.utc),
                ["Deep learning on a budget", "Deep learning on a budget (with numbers)"], 25)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> list[Path]:
    """~300 tweets in three files: search pages, a gzip capture of the stream with malformed
    lines and repeats, and v1.1 statuses (with a blank line, a 3 MB line that no Kafka record
    can hold, and a truncated last line)."""
    folder = tmp_path_factory.mktemp("archive")
    clean = [orjson.loads(m) for m in SyntheticTweets(seed=61, malformed_share=0.0).messages(100)]
    pages = folder / "search.jsonl"
    pages.write_bytes(b"".join(orjson.dumps(page_of(clean[i:i + 25])) + b"\n" for i in range(0, 100, 25)))

    stream = list(SyntheticTweets(seed=62, malformed_share=0.08).messages(150))
    stream += stream[:12]  # repeated tweets, as overlapping captures have
    stream += [b"<html>502 Bad Gateway</html>", stream[0][:80], orjson.dumps(P[0]), orjson.dumps(Q[1])]
    capture = folder / "capture-2024-05-01"  # gzip without the .gz name
    capture.write_bytes(gzip.compress(b"\n".join(stream) + b"\n"))

    statuses = [orjson.dumps(v1_status(n)) for n in range(40)]
    v1 = folder / "statuses.jsonl"
    huge = orjson.dumps({**v1_status(99), "text": "machine learning " * 185_000})
    # Real data that used to pass: Italian "ai" (the preposition) with no lang, and year 0001.
    italian = {**v1_status(97), "text": "Grazie ai ragazzi della scuola per la festa di ieri sera"}
    del italian["lang"]
    year_one = {**v1_status(98), "created_at": "Mon Jan 01 00:00:00 +0000 0001"}
    v1.write_bytes(b"\n".join(statuses[:10] + [huge, orjson.dumps(italian), orjson.dumps(year_one)] + statuses[10:20]
                              + [b""] + statuses[20:]) + b"\n"
                   + statuses[0][:100])
    return [pages, capture, v1]


def predicted(files: list[Path], filter_name: str) -> tuple[Counter, set[str]]:
    """The counts and accepted ids the worker must report: the same pure normalize(), and the
    first copy of a tweet id wins (copies share a key, hence a partition, hence their order)."""
    counts: Counter = Counter()
    accepted: set[str] = set()
    seen: set[str] = set()
    for path in files:
        for message in ArchiveFile(path).messages():
            outcome = normalize(message.payload, policy=POLICIES[filter_name])
            counts["read"] += 1
            if isinstance(outcome, Rejected):
                counts["rejected"] += 1
                continue
            tweet_id = outcome.row["tweet_id"] if isinstance(outcome, Accepted) else outcome.tweet_id
            if tweet_id in seen:
                counts["duplicates"] += 1
            elif isinstance(outcome, Accepted):
                counts["accepted"] += 1
                accepted.add(tweet_id)
            else:
                counts["filtered"] += 1
            seen.add(tweet_id)
    return counts, accepted


def lake_contents(lake: Path) -> tuple[Counter, int]:
    """Bronze tweet ids and the number of dead-letter rows, through the tables' logs."""
    return Counter(bronze_ids(lake)), bronze_count(lake, "quarantine/dead_letter")


def check_run(result, report, files, filter_name, lake: Path, before: tuple[Counter, int] = (Counter(), 0)) -> None:
    assert result.returncode == 0, result.stderr[-4000:]
    assert_adds_up(report)
    counts, accepted = predicted(files, filter_name)
    assert {key: report[key] for key in counts} == dict(counts)
    assert min(counts.values()) > 0, counts
    ids, dead_letters = lake_contents(lake)
    added = ids - before[0]
    assert report["accepted"] == report["bronze_rows"] + report["already_in_lake"] == len(accepted)
    assert report["bronze_rows"] == sum(added.values())
    assert set(added) == accepted - set(before[0])
    assert report["already_in_lake"] == len(accepted & set(before[0]))
    assert report["forgotten"] == report["deletions_logged"] == 0
    assert max(ids.values()) == 1, "a tweet id twice in bronze"
    assert report["rejected"] == report["quarantine_rows"] == dead_letters - before[1]
    assert (report["files"], report["lines"], report["blank_lines"], report["pages"]) == (3, 215, 1, 4)


def raw_messages(settings: Settings, expected: int, timeout: float = 30.0) -> list:
    """The raw topic read from the start by assignment (no group join to wait for)."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "backfill-test", "log_level": 2})
    consumer.assign([TopicPartition(settings.topic_raw, p, OFFSET_BEGINNING) for p in range(settings.topic_partitions)])
    messages: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(500, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return messages


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lake") / "lake"


@pytest.fixture(scope="module")
def first_run(archive, lake, tmp_path_factory):
    result, report = backfill(*map(str, archive), "--lake-root", str(lake), cwd=tmp_path_factory.mktemp("run"))
    return result, report


def silver_posts(lake: Path) -> dict[str, dict]:
    """Silver by edit_root_id, read with pyarrow; no post twice."""
    rows = bronze_table(lake, "silver").to_pylist()
    posts = {row["edit_root_id"]: row for row in rows}
    assert len(posts) == len(rows), "a post is in silver twice"
    return posts


def test_backfill_with_the_topic_filter(archive, lake, first_run):
    result, report = first_run
    check_run(result, report, archive, "topics", lake)
    _counts, accepted = predicted(archive, "topics")
    posts = silver_posts(lake)
    assert report["silver_rows"] == len(posts) == len(accepted)
    assert {row["tweet_id"] for row in posts.values()} == accepted
    assert report["gold_rows"] == sum(assert_gold_equals_silver(lake).values()) > 0
    assert posts[P[0]["data"]["id"]]["text"] == P[0]["data"]["text"]
    assert list(lake.glob("_checkpoints/backfill-*/bronze"))


def test_a_line_too_large_for_kafka_is_a_dead_letter_and_the_backfill_goes_on(lake, first_run):
    _result, report = first_run
    assert report["rejected_by_reason"]["too_large"] == 1
    letters = bronze_table(lake, "quarantine/dead_letter").to_pylist()
    (letter,) = [row for row in letters if row["reason"] == "too_large"]
    assert "3145" in letter["message"] and "first 65536 bytes" in letter["message"], letter["message"]
    preview = base64.b64decode(letter["raw_base64"])
    assert len(preview) == 65536 and preview.startswith(b'{"created_at"')
    # The statuses after it were read and decided like the others.
    assert report["lines"] == 215


def test_an_italian_ai_without_lang_is_filtered_and_year_one_is_rejected(lake, first_run):
    _result, report = first_run
    assert report["filtered_by_reason"]["language"] >= 1
    assert report["rejected_by_reason"]["created_at_contradicts_id"] == 1
    letters = bronze_table(lake, "quarantine/dead_letter").to_pylist()
    (letter,) = [row for row in letters if row["reason"] == "created_at_contradicts_id"]
    assert "0001-01-01" in letter["message"]
    ids = set(bronze_ids(lake))
    assert str(v1_status(97)["id"]) not in ids and str(v1_status(98)["id"]) not in ids
    assert not list(lake.glob("bronze/dt=0001-*"))


def test_backfill_without_filter_into_the_same_lake_keeps_the_earlier_rows(archive, lake, first_run, tmp_path):
    before = lake_contents(lake)
    files_before = set(Lake(str(lake)).files(BRONZE).column("path").to_pylist())
    silver_before = silver_posts(lake)
    result, report = backfill(*map(str, archive), "--lake-root", str(lake), "--filter", "none", cwd=tmp_path)
    check_run(result, report, archive, "none", lake, before)
    assert report["filtered"] == 0
    assert files_before <= set(Lake(str(lake)).files(BRONZE).column("path").to_pylist())  # only added to
    # The first run's tweets were left out of this one (already_in_lake); silver holds every post once.
    _counts, accepted = predicted(archive, "none")
    posts = silver_posts(lake)
    assert {row["tweet_id"] for row in posts.values()} == accepted
    assert report["silver_rows"] == len(posts) - len(silver_before) == len(accepted - set(before[0])) > 0
    assert report["gold_rows"] == sum(assert_gold_equals_silver(lake).values())
    assert all(posts[key]["refined_at"] == row["refined_at"] for key, row in silver_before.items())


def test_the_live_stream_over_the_backfilled_lake_repeats_and_edits(archive, lake, broker_settings, tmp_path):
    """After the two backfills: the live pipeline (worker, bronze sink, silver job) on the same lake
    gets tweets the lake has, P's newer version and Q's older one."""
    before = silver_posts(lake)
    repeats = [m.payload for m in ArchiveFile(archive[0]).messages()][:10]
    settings = broker_settings.model_copy(update={"lake_root": str(lake), "filter": "none"})
    messages = repeats + [orjson.dumps(P[1]), orjson.dumps(Q[0])]
    produce(settings.bootstrap_servers, settings.topic_raw,
            [(tweet_id_of(m).encode(), m) for m in messages])
    p_key, q_key = P[0]["data"]["id"], Q[0]["data"]["id"]
    bronze_before = bronze_count(lake)
    silver_metrics_port = free_port()
    silver_rows_read = ("tweetlake_spark_input_rows_total", (("query", "silver"),))
    with (start_worker(settings, tmp_path) as worker,
          start_sink(settings, tmp_path, sink_trigger_seconds=1, spark_metrics_port=0) as sink,
          # silver serves on SPARK_METRICS_PORT + 1
          start_sink(settings, tmp_path, job="silver", name="silver", silver_trigger_seconds=1,
                     spark_metrics_port=silver_metrics_port - 1) as silver):
        wait_for(lambda: len(silver_posts(lake)[q_key]["source_tweet_ids"]) == 2
                   and silver_posts(lake)[p_key]["tweet_id"] == P[1]["data"]["id"],
                   240, "silver to take P's new version and Q's old one", (worker, sink, silver))
        # Silver's micro-batches read exactly the bronze rows this run landed.
        wait_for(lambda: scraped(silver_metrics_port).get(silver_rows_read, 0)
                   == bronze_count(lake) - bronze_before > 0, 60, "silver's metrics", (sink, silver))
        silver_metrics = scraped(silver_metrics_port)
    assert silver_metrics[("tweetlake_spark_batches_total", (("query", "silver"),))] > 0
    posts = silver_posts(lake)
    assert set(posts) == set(before)
    assert posts[p_key]["text"] == "Machine learning notes, fixed the typo"
    assert posts[p_key]["source_tweet_ids"] == [P[0]["data"]["id"], P[1]["data"]["id"]]
    assert (posts[q_key]["tweet_id"], posts[q_key]["text"]) == (Q[1]["data"]["id"], Q[1]["data"]["text"])
    repeated = {tweet_id_of(m) for m in repeats} - {p_key, q_key}
    assert all(posts[key]["refined_at"] == before[key]["refined_at"] for key in repeated & set(before))


def test_a_backfill_overlapping_the_live_stream_adds_no_bronze_row_twice(lake, broker_settings, tmp_path):
    """The live pipeline and a backfill bring the same new tweets into the lake at the same time:
    their sinks MERGE into bronze side by side, and each tweet is there once."""
    tweets = list(SyntheticTweets(seed=64, malformed_share=0.0, off_topic_share=0.0, non_english_share=0.0).messages(400))
    archived = tmp_path / "overlap.jsonl"
    archived.write_bytes(b"\n".join(tweets[100:]) + b"\n")
    new = {tweet_id_of(m) for m in tweets}
    before = set(bronze_ids(lake))
    assert not new & before
    settings = broker_settings.model_copy(update={"lake_root": str(lake), "filter": "none"})
    live = [(tweet_id_of(m).encode(), m) for m in tweets[:300]]
    with (start_worker(settings, tmp_path) as worker,
          start_sink(settings, tmp_path, sink_trigger_seconds=1, spark_metrics_port=0) as sink):
        publisher = threading.Thread(target=produce_slowly, args=(settings, live, 3.5), daemon=True)  # ~85 s
        publisher.start()
        result, report = backfill(str(archived), "--lake-root", str(lake), "--filter", "none", "--no-silver",
                                  cwd=tmp_path)
        publisher.join()
        wait_for(lambda: new <= set(bronze_ids(lake)), 240, "every tweet in bronze", (worker, sink))
    assert result.returncode == 0, result.stderr[-4000:]
    ids = Counter(bronze_ids(lake))
    assert set(ids) == before | new and max(ids.values()) == 1
    assert report["accepted"] == report["bronze_rows"] + report["already_in_lake"] == 300
    assert report["already_in_lake"] > 0, "the live sink had none of the shared tweets yet: no overlap"


def produce_slowly(settings: Settings, messages: list[tuple[bytes, bytes]], per_second: float) -> None:
    """The live stream: the messages to the raw topic at about `per_second`."""
    for start in range(0, len(messages), 10):
        produce(settings.bootstrap_servers, settings.topic_raw, messages[start:start + 10])
        time.sleep(10 / per_second)


def test_with_kafka_bootstrap_servers_it_only_publishes(archive, broker_settings, tmp_path):
    result, report = backfill(*map(str, archive), cwd=tmp_path,
                              KAFKA_BOOTSTRAP_SERVERS=broker_settings.bootstrap_servers,
                              TOPIC_RAW=broker_settings.topic_raw)
    assert result.returncode == 0, result.stderr[-4000:]
    counts, _ = predicted(archive, "topics")
    assert report["read"] == report["published"] == counts["read"]
    assert all(report[key] is None for key in ("accepted", "filtered", "duplicates", "rejected", "bronze_rows"))
    assert len(raw_messages(broker_settings, counts["read"])) == counts["read"]
    assert not (tmp_path / "lake").exists()


def test_filter_and_lake_root_are_refused_with_kafka_bootstrap_servers(archive, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.backfill", str(archive[0]), "--filter", "none"], cwd=tmp_path,
        env=os.environ | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "apply only without KAFKA_BOOTSTRAP_SERVERS" in result.stderr


@pytest.mark.skipif(not SEED_FILE.is_file(), reason=f"no seed file at {SEED_FILE}")
def test_backfill_of_the_seed_file(tmp_path):
    result, report = backfill(str(SEED_FILE), "--lake-root", str(tmp_path / "lake"), "--no-silver", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert report["silver_rows"] is None and not (tmp_path / "lake" / "silver").exists()
    assert report["gold_rows"] is None and not (tmp_path / "lake" / "gold").exists()
    assert_adds_up(report)
    assert report["read"] == 1000 and report["rejected"] == 0
    counts, accepted = predicted([SEED_FILE], "topics")
    assert report["accepted"] == report["bronze_rows"] == len(accepted) == counts["accepted"] > 0
    assert set(bronze_ids(tmp_path / "lake")) == accepted
