"""Compliance through real processes: 1,000 backfilled tweets, 100 of them forgotten with `lake
forget` while the worker, sink, silver and gold jobs run; delete messages on the live stream (one
before its tweet); a second backfill of the same archive; a users' compliance job whose `lake
forget` is SIGKILLed right after it logged the ids and run again. Every reader (deltalake, DuckDB,
polars, Spark) sees each other tweet once and none of the forgotten ones, and gold counts what
silver holds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson
import polars
import pytest
from deltalake import DeltaTable

from agents.sources.synthetic import SyntheticTweets
from engines.broker import create_topics
from config.settings import Settings
from pipeline.lake_cli import main as lake_main
from datalake.lake import Lake
from datalake.layout import FORGOTTEN as FORGOTTEN_LOG, GOLD_TOPIC_HOURLY, SILVER
from pipeline.forget import gold_read_up_to
from tests.support.gold_lake import assert_gold_equals_silver, silver_table
from tests.support.kafka_io import produce
from tests.support.processes import Process, bronze_table, start_sink, start_worker, wait_for
from tests.support.settings import isolated_settings
from tweets.payloads import tweet_id_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # backfills and Spark jobs: minutes on 2 busy cores

ARCHIVED, LIVE, FORGOTTEN = 1000, 40, 100


def clean_tweets(count: int, seed: int) -> list[bytes]:
    tweets = SyntheticTweets(seed=seed, off_topic_share=0.0, non_english_share=0.0, malformed_share=0.0)
    return list(tweets.messages(count))


def clean_env() -> dict[str, str]:
    """No tweetlake setting from this environment (or a .env): the commands as a user runs them."""
    return {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}


def run_json(command: list[str], cwd: Path, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output (exit {result.returncode}):\n{result.stderr[-4000:]}"
    return result, json.loads(lines[-1])


def backfill(archive: Path, lake: Path, cwd: Path) -> dict:
    result, report = run_json([sys.executable, "-m", "pipeline.backfill", str(archive), "--lake-root", str(lake),
                               "--no-silver"], cwd)
    assert result.returncode == 0, result.stderr[-4000:]
    return report


def compliance_lines(ids: list[str]) -> bytes:
    return b"".join(orjson.dumps({"id": i, "action": "delete", "created_at": "2024-05-01T00:00:00.000Z",
                                  "redacted_at": "2024-06-01T00:00:00.000Z", "reason": "deleted"}) + b"\n"
                    for i in ids)


def forget_command(lake: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.lake_cli", "--lake-root", str(lake), "forget", *args]


def ids_in(lake: Path, zone: str, column: str) -> list[str]:
    """A column of a zone's current version, through its Delta log (empty while it has no table)."""
    table = bronze_table(lake, zone, [column])
    return [] if table is None else table.column(column).to_pylist()


def assert_every_reader_sees(lake: Path, expected: set[str], gone: set[str], spark) -> None:
    """Bronze holds each expected tweet once and none of `gone`, for deltalake, DuckDB, polars and
    Spark; silver each expected post once, none of `gone`."""
    arrow = ids_in(lake, "bronze", "tweet_id")
    assert len(arrow) == len(set(arrow)) and set(arrow) == expected
    duck = duckdb.connect()
    duck.register("bronze", DeltaTable(str(lake / "bronze")).to_pyarrow_dataset())
    ((rows, distinct, hits),) = duck.sql(
        f"select count(*), count(distinct tweet_id), count(*) filter (where tweet_id in ({','.join(map(repr, gone))})) "
        f"from bronze").fetchall()
    assert (rows, distinct, hits) == (len(expected), len(expected), 0)
    assert set(polars.read_delta(str(lake / "bronze"), columns=["tweet_id"])["tweet_id"].to_list()) == expected
    spark_ids = [row.tweet_id for row in spark.read.format("delta").load(str(lake / "bronze")).select("tweet_id").collect()]
    assert sorted(spark_ids) == sorted(expected)
    silver = silver_table(lake)
    posts = silver.column("edit_root_id").to_pylist()
    assert len(posts) == len(set(posts)) and set(silver.column("tweet_id").to_pylist()) == expected
    assert_gold_equals_silver(lake)


@dataclass
class Scenario:
    workdir: Path
    lake: Path
    archive: Path
    archived: list[bytes]
    settings: Settings
    doomed: set[str] = field(default_factory=set)
    live: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)  # live tweets deleted on the stream
    late: str = ""  # a tweet whose delete came first
    reports: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, session_kafka) -> Scenario:
    """The archive backfilled into bronze (silver and gold are built by the live jobs below)."""
    workdir = tmp_path_factory.mktemp("forget")
    archive = workdir / "archive.jsonl"
    archived = clean_tweets(ARCHIVED, seed=41)
    archive.write_bytes(b"\n".join(archived) + b"\n")
    lake = workdir / "lake"
    report = backfill(archive, lake, workdir)
    assert report["bronze_rows"] == ARCHIVED, report
    host, port = session_kafka.split(":")
    settings = isolated_settings(broker_host=host, broker_port=int(port), lake_root=str(lake), filter="none",
                                 sink_trigger_seconds=1.0, silver_trigger_seconds=2.0, gold_trigger_seconds=2.0)
    create_topics(settings)
    return Scenario(workdir, lake, archive, archived, settings)


@pytest.fixture(scope="module")
def forgotten_while_running(scenario: Scenario) -> Scenario:
    """Worker, sink, silver and gold running, live tweets flowing:
    `lake forget` of 100 archived tweets; then v1.1 and v2 delete messages on the raw topic for 6
    live tweets already in bronze and silver, and one for a tweet that arrives only after it."""
    s = scenario
    ids = [tweet_id_of(m) for m in s.archived]
    s.doomed = set(ids[::ARCHIVED // FORGOTTEN][:FORGOTTEN])
    deletions = s.workdir / "deleted.jsonl"
    deletions.write_bytes(compliance_lines(sorted(s.doomed)))
    live = clean_tweets(LIVE, seed=42)
    s.live = {tweet_id_of(m) for m in live}
    late = clean_tweets(1, seed=43)[0]
    s.late = tweet_id_of(late)
    s.deleted = set(sorted(s.live)[:6])
    with (start_worker(s.settings, s.workdir) as worker, start_sink(s.settings, s.workdir) as sink,
          start_sink(s.settings, s.workdir, job="silver", name="silver") as silver,
          start_sink(s.settings, s.workdir, job="gold", name="gold") as gold):
        jobs = (worker, sink, silver, gold)
        wait_for(lambda: len(ids_in(s.lake, "silver", "tweet_id")) == ARCHIVED, 300, "silver built", jobs)
        produce(s.settings.bootstrap_servers, s.settings.topic_raw, [(i.encode(), m) for i, m in zip(s.live, live)])
        wait_for(lambda: Lake(str(s.lake)).rows(GOLD_TOPIC_HOURLY) > 0, 120, "gold built", jobs)
        wait_for(lambda: set(ids_in(s.lake, "silver", "tweet_id")) >= s.live, 120, "the live tweets in silver", jobs)

        result, s.reports["forget"] = run_json(forget_command(s.lake, str(deletions)), s.workdir)
        assert result.returncode == 0, result.stderr[-4000:]

        messages = delete_messages(s)
        produce(s.settings.bootstrap_servers, s.settings.topic_raw, [(None, m) for m in messages])
        wait_for(lambda: s.late in logged_ids(s.lake), 120, "the deletions in the forgotten log", jobs)
        produce(s.settings.bootstrap_servers, s.settings.topic_raw, [(s.late.encode(), late)])
        wait_for(lambda: not s.deleted & set(ids_in(s.lake, "bronze", "tweet_id")), 120,
                   "the deleted tweets to leave bronze", jobs)
        wait_for(lambda: not s.deleted & set(ids_in(s.lake, "silver", "tweet_id")), 120, "... and silver", jobs)
        wait_for(lambda: worker_read(s.settings) >= LIVE + len(messages) + 1 and gold_settled(s.lake), 120,
                   "the worker to read the late tweet and gold to follow silver", jobs)
        time.sleep(s.settings.sink_trigger_seconds * 3)  # the late tweet's batch has long been written
    return s


def delete_messages(s: Scenario) -> list[bytes]:
    """v1.1 delete notices for three deleted tweets, v2 compliance events for three, and one for
    the late tweet."""
    deleted = sorted(s.deleted)
    messages = [orjson.dumps({"delete": {"status": {"id": int(i), "id_str": i, "user_id": 1, "user_id_str": "1"},
                                         "timestamp_ms": "1717200000000"}}) for i in deleted[:3]]
    messages += [orjson.dumps({"data": {"delete": {"tweet": {"id": i, "author_id": "1"},
                                                   "event_at": "2024-06-01T00:00:00.000Z"}}}) for i in deleted[3:]]
    return messages + [orjson.dumps({"delete": {"status": {"id": int(s.late), "id_str": s.late}}})]


def kill_once_logged(process: Process, lake: Path, log_version: int, timeout: float) -> bool:
    """SIGKILL `process` the moment the forgotten log has a version after `log_version` (its ids
    are logged; the DELETEs of the zones come next)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.alive():
        if Lake(str(lake)).table(FORGOTTEN_LOG).version() > log_version:
            process.kill()
            return True
        time.sleep(0.005)
    return False


def gold_settled(lake: Path) -> bool:
    """Gold has recomputed from silver's newest change (a commit that changed its rows)."""
    changes = [c["version"] for c in Lake(str(lake)).table(SILVER).history(50)
               if c["operation"] in ("MERGE", "DELETE", "WRITE", "UPDATE")]
    return bool(changes) and gold_read_up_to(Lake(str(lake))) >= max(changes)


def logged_ids(lake: Path) -> set[str]:
    return set(ids_in(lake, "_forgotten", "id"))


def worker_read(settings: Settings) -> int:
    """Raw messages the worker has read since it started (its counters page; 0 while it starts)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.faust_web_port}/counters/", timeout=5) as response:
            return json.loads(response.read())["read"]
    except (urllib.error.URLError, ConnectionError):
        return 0


def test_forget_while_the_pipeline_runs(forgotten_while_running, spark):
    s = forgotten_while_running
    report = s.reports["forget"]
    assert report["ids_asked"] == report["tweet_ids"] == FORGOTTEN and report["pending"] == [], report
    assert set(report) >= {"rows_removed", "files_rewritten", "seconds", "bad_lines"}
    archived = {tweet_id_of(m) for m in s.archived}
    assert_every_reader_sees(s.lake, archived - s.doomed | s.live - s.deleted, s.doomed | s.deleted | {s.late}, spark)
    assert lake_main(["--lake-root", str(s.lake), "verify"], settings=Settings(_env_file=None)) == 0


def test_deletes_on_the_stream_leave_every_zone_and_an_early_one_keeps_its_tweet_out(forgotten_while_running):
    s = forgotten_while_running
    gone = s.deleted | {s.late}
    assert gone <= logged_ids(s.lake)
    assert not gone & set(ids_in(s.lake, "bronze", "tweet_id")) and not gone & set(ids_in(s.lake, "silver", "tweet_id"))
    assert s.live - s.deleted <= set(ids_in(s.lake, "bronze", "tweet_id"))


@pytest.fixture(scope="module")
def backfilled_again(forgotten_while_running: Scenario) -> tuple[Scenario, dict]:
    s = forgotten_while_running
    return s, backfill(s.archive, s.lake, s.workdir)


def test_a_second_backfill_of_the_archive_brings_no_forgotten_tweet_back(backfilled_again, spark):
    s, report = backfilled_again
    assert report["accepted"] == ARCHIVED and report["bronze_rows"] == 0, report
    assert report["forgotten"] == FORGOTTEN and report["already_in_lake"] == ARCHIVED - FORGOTTEN
    archived = {tweet_id_of(m) for m in s.archived}
    assert_every_reader_sees(s.lake, archived - s.doomed | s.live - s.deleted, s.doomed | s.deleted, spark)


def test_a_users_job_killed_midway_then_run_again_with_no_job_running(backfilled_again, spark):
    """No sink, silver or gold job runs now: the first `lake forget` is SIGKILLed once it has logged
    the users; the second applies the log to every zone and runs the refine job itself for silver
    and gold."""
    s, _report = backfilled_again
    bronze = bronze_table(s.lake).select(["tweet_id", "author_id"]).to_pylist()
    by_author: dict[str, set[str]] = {}
    for row in bronze:
        by_author.setdefault(row["author_id"], set()).add(row["tweet_id"])
    users = sorted(by_author, key=lambda a: -len(by_author[a]))[:2]
    theirs = by_author[users[0]] | by_author[users[1]]
    path = s.workdir / "users.jsonl"
    path.write_bytes(compliance_lines(users) + b'{"id": "12", "action": "delete"\n')

    log_version = Lake(str(s.lake)).table(FORGOTTEN_LOG).version()
    first = Process("forget-users-1", forget_command(s.lake, "--users", str(path)), clean_env(), s.workdir)
    killed = kill_once_logged(first, s.lake, log_version, timeout=120)
    first.stop()
    assert killed, f"the first forget ended before it logged the users:\n{first.log_tail()}"
    assert set(ids_in(s.lake, "silver", "tweet_id")) & theirs, "the kill came after the DELETEs"
    result, report = run_json(forget_command(s.lake, "--users", str(path)), s.workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    assert report["user_ids"] == 2 and report["bad_lines"] == 1, report
    assert report["rows_removed"]["silver"] == len(theirs) >= 4
    archived = {tweet_id_of(m) for m in s.archived}
    assert_every_reader_sees(s.lake, archived - s.doomed - theirs | s.live - s.deleted, theirs | s.doomed, spark)
    assert lake_main(["--lake-root", str(s.lake), "verify"], settings=Settings(_env_file=None)) == 0
