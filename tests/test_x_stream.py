"""The X source against a fake X API over real HTTP: Tweepy's own connection, line splitting,
callbacks and backoff run; the publish function is the boundary where bytes leave the source."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import pytest
import tweepy.asynchronous.streaming
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agents.counters import worker_counters
from tweets.payloads import tweet_id_of
from tweets.topics import load_rules
from agents.sources import x_gap
from agents.sources.base import source_for
from agents.sources.x_access import ACCESS_LEVELS
from agents.sources.x_rules import build_rules
from agents.sources.x_spend import month_of
from agents.sources.x_stream import STREAM_FIELDS, XSource
from config.settings import Settings
from pipeline.processes import free_port
from tests.support.fake_x_api import (
    KEEP_ALIVE, ODDLY_FORMATTED, OPERATIONAL_DISCONNECT, RULES_PATH, SEARCH_PATH, STREAM_PATH, USAGE_PATH,
    FakeXApi, Refuse, Send, lines, message, post, snowflake_at, x_seconds,
)
from tests.support.processes import BIN, Process, bronze_count, bronze_table, settings_env, start_sink, wait_for

M1, M2, M3 = (message(f"179000000000000000{i}") for i in (1, 3, 4))


class TweepyWaits:
    """Stands in for asyncio inside Tweepy's streaming module. Its backoff waits (5 s, 60 s, ...)
    are constants inside its connection loop, with no parameter to shorten them, so the tests
    record the waits Tweepy asks for instead of sleeping them."""

    def __init__(self):
        self.seconds: list[float] = []

    def __getattr__(self, name: str):
        return getattr(asyncio, name)

    async def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def search_at_once(monkeypatch):
    """X answers recent search only up to 10 s before the request; the fake answers at once."""
    monkeypatch.setattr(x_gap, "END_TIME_MARGIN", 0.0)


@pytest.fixture
def tweepy_waits(monkeypatch) -> TweepyWaits:
    waits = TweepyWaits()
    monkeypatch.setattr(tweepy.asynchronous.streaming, "asyncio", waits)
    return waits


class Published(list):
    """The publish function: collects what the source hands over."""

    async def __call__(self, payload: bytes) -> None:
        self.append(payload)


class FailingOnce(Published):
    async def __call__(self, payload: bytes) -> None:
        if not hasattr(self, "failed"):
            self.failed = True
            raise RuntimeError("Kafka is down")
        await super().__call__(payload)


def run_source(fake: FakeXApi, publish: Published, until, timeout: float = 10.0, *, cap=None,
               data_dir: Path | None = None, **settings_values) -> XSource:
    """Run the X source until `until(source)` holds, then stop it as a stopping worker would."""

    async def scenario() -> XSource:
        values = {"x_usage_poll_seconds": 0, **settings_values}
        settings = Settings(_env_file=None, x_bearer_token="test-token", x_api_base_url=fake.base_url,
                            faust_data_dir=data_dir or Path(tempfile.mkdtemp()), **values)
        source = XSource(settings, restart_wait=0.01, restart_wait_max=0.01, cap=cap)
        task = asyncio.create_task(source.run(publish))
        deadline = time.monotonic() + timeout
        while not until(source):
            if task.done():
                task.result()
            assert time.monotonic() < deadline, f"timed out: {publish!r}, {source.counters}"
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return source

    return asyncio.run(scenario())


def test_each_message_is_published_as_the_bytes_x_sent_and_the_rest_is_counted(tweepy_waits, caplog):
    caplog.set_level(logging.DEBUG)
    # M1 split across two chunks, keep-alives, an operational message between the tweets.
    chunks = (M1[:25], M1[25:] + b"\r\n", KEEP_ALIVE, *lines(ODDLY_FORMATTED, OPERATIONAL_DISCONNECT),
              KEEP_ALIVE, *lines(M2))
    published = Published()
    with FakeXApi(connections=[Send(chunks, end="hold")]) as fake:
        source = run_source(fake, published, lambda s: len(published) == 3 and s.counters.keep_alives >= 2)

    assert published == [M1, ODDLY_FORMATTED, M2]
    assert [tweet_id_of(p) for p in published] == ["1790000000000000001", "1790000000000000002", "1790000000000000003"]
    counters = source.counters
    assert (counters.tweets, counters.errors, counters.disconnects, counters.reconnects) == (3, 1, 0, 0)

    desired_rules = build_rules(load_rules(), ACCESS_LEVELS["pay-per-use"])
    assert {(r["value"], r["tag"]) for r in fake.rules.values()} == {(r.value, r.tag) for r in desired_rules}
    (connection,) = fake.made("GET", STREAM_PATH)
    assert connection.query == {
        name.replace("_", "."): ",".join(values) for name, values in STREAM_FIELDS.items()
    }
    assert {r.authorization for r in fake.requests} == {"Bearer test-token"}
    assert "test-token" not in caplog.text, "the bearer token must never be logged, not even at DEBUG"


def test_a_dropped_and_a_closed_connection_are_both_reconnected(tweepy_waits):
    published = Published()
    connections = [Send(lines(M1), end="abort"), Send(lines(M2), end="close"), Send(lines(M3), end="hold")]
    with FakeXApi(connections=connections) as fake:
        source = run_source(fake, published, lambda s: len(published) == 3)

    assert published == [M1, M2, M3]
    assert (source.counters.disconnects, source.counters.reconnects) == (2, 2)
    assert len(fake.made("GET", STREAM_PATH)) == 3
    # X: reconnect at once after a network error (then +250 ms each time); a close needs no wait.
    assert tweepy_waits.seconds == [0]


def test_http_errors_and_rate_limits_back_off_as_x_documents(tweepy_waits):
    published = Published()
    connections = [Refuse(503), Refuse(429, {"title": "TooManyConnections", "detail": "Too many connections"}),
                   Send(lines(M1), end="hold")]
    with FakeXApi(connections=connections) as fake:
        source = run_source(fake, published, lambda s: len(published) == 1)

    assert published == [M1]
    # X: HTTP errors from 5 s, doubling; HTTP 429 from 60 s.
    assert tweepy_waits.seconds == [5, 60]
    assert (source.counters.errors, source.counters.rate_limited, source.counters.reconnects) == (1, 1, 0)


def test_a_crash_is_counted_and_the_stream_restarted_without_syncing_rules_again(tweepy_waits):
    published = FailingOnce()
    connections = [Send(lines(M1, M2), end="hold"), Send(lines(M3), end="hold")]
    with FakeXApi(connections=connections) as fake:
        source = run_source(fake, published, lambda s: len(published) == 1)

    assert published == [M3], "the message that failed to publish and those after it on that connection are lost"
    assert (source.counters.errors, source.counters.reconnects) == (1, 1)
    assert len(fake.made("GET", RULES_PATH)) == 1
    assert len(fake.made("GET", STREAM_PATH)) == 2


def test_a_failed_rules_sync_is_retried_before_the_stream_connects(tweepy_waits):
    published = Published()
    with FakeXApi(connections=[Send(lines(M1), end="hold")], failing_rule_reads=2) as fake:
        run_source(fake, published, lambda s: len(published) == 1)

    assert published == [M1]
    requests = [(r.method, r.path) for r in fake.requests]
    assert requests == [("GET", RULES_PATH)] * 3 + [("POST", RULES_PATH), ("GET", STREAM_PATH)]


def tag_of_rule(fake: FakeXApi, tag: str) -> str:
    return next(rule["value"] for rule in fake.rules.values() if rule["tag"] == tag)


def test_the_posts_of_a_disconnect_are_recovered_from_recent_search_page_by_page(tweepy_waits, tmp_path):
    now = time.time()
    during = [post(snowflake_at(now - 2, i)) for i in range(3)]  # posted while the stream was down
    earlier = post(snowflake_at(now - 3600))  # long before the gap: not searched for
    other_topic = post(snowflake_at(now - 1, 9))
    posted = [(tweet, "machine_learning") for tweet in (*during, earlier)] + [(other_topic, "big_data")]
    connections = [Send(lines(M1), end="abort"), Send(lines(M2), end="hold")]
    published = Published()
    with FakeXApi(connections=connections, posted=posted, page_size=2) as fake:
        source = run_source(fake, published, lambda s: s.counters.gap_recovered == 4 and len(published) == 6,
                            data_dir=tmp_path)
        searches = fake.made("GET", SEARCH_PATH)
        rules = {rule["value"]: rule["tag"] for rule in fake.rules.values()}

    recovered = [orjson.loads(p) for p in published if p not in (M1, M2)]
    assert sorted(m["data"]["id"] for m in recovered) == sorted(t["id"] for t in (*during, other_topic))
    assert {m["data"]["id"]: m["matching_rules"][0]["tag"] for m in recovered}[other_topic["id"]] == "big_data"
    assert recovered[0]["includes"]["users"][0]["username"] == "XDevelopers"
    assert M1 in published and M2 in published
    # One search per rule, with the stream's fields; machine_learning's three posts in two pages.
    assert sorted(rules[r.query["query"]] for r in searches) == ["ai", "big_data", "data_science",
                                                                 "machine_learning", "machine_learning"]
    first = searches[0].query
    assert first["tweet.fields"] == ",".join(STREAM_FIELDS["tweet_fields"]) and first["max_results"] == "100"
    assert x_seconds(first["start_time"]) <= now - 2 and x_seconds(first["end_time"]) >= now - 1
    assert x_seconds(first["start_time"]) > now - 3600
    counters = source.counters
    assert (counters.gaps, counters.gap_recovered, counters.gaps_incomplete, counters.gap_seconds_lost) == (1, 4, 0, 0)
    reads = source.ledger.as_dict()["reads"]
    assert reads["stream"]["(total)"] == 2 and reads["gap_fill"] == {"machine_learning": 3, "big_data": 1, "(total)": 4}


def test_a_gap_longer_than_recent_search_reaches_is_reported_and_the_rest_filled(tweepy_waits, tmp_path):
    """The worker was down for 8 days: the ledger it left says when the stream was last heard from."""
    now = time.time()
    (tmp_path / "x_stream.json").write_text(json.dumps({"month": month_of(now), "alive_at": now - 8 * 86400}))
    two_days_ago = post(snowflake_at(now - 2 * 86400))
    published = Published()
    with FakeXApi(connections=[Send(lines(M1), end="hold")], posted=[(two_days_ago, "ai")]) as fake:
        source = run_source(fake, published, lambda s: s.counters.gaps_incomplete == 1 and len(published) == 2,
                            data_dir=tmp_path)
        starts = {x_seconds(r.query["start_time"]) for r in fake.made("GET", SEARCH_PATH)}

    assert [orjson.loads(p)["data"]["id"] for p in published if p != M1] == [two_days_ago["id"]]
    assert min(starts) >= now - 7 * 86400, "recent search reaches back 7 days, no further"
    assert 86400 - 120 <= source.counters.gap_seconds_lost <= 86400 + 120


def test_the_stream_stops_at_the_monthly_cap_and_resumes_when_the_cap_rises(tweepy_waits, tmp_path):
    cap = [3]
    tweets = [message(f"17900000000000002{i:02d}") for i in range(5)]
    later = message("1790000000000000299")
    published = Published()
    with FakeXApi(connections=[Send(lines(*tweets), end="hold"), Send(lines(later), end="hold")]) as fake:
        def stopped_at_cap(source: XSource) -> bool:
            return source.counters.capped == 1

        async def scenario():
            settings = Settings(_env_file=None, x_bearer_token="test-token", x_api_base_url=fake.base_url,
                                faust_data_dir=tmp_path, x_usage_poll_seconds=0, x_cap_check_seconds=0.05,
                                x_cost_per_post_read=0.005)
            source = XSource(settings, restart_wait=0.01, restart_wait_max=0.01, cap=lambda: cap[0])
            task = asyncio.create_task(source.run(published))
            deadline = time.monotonic() + 10
            while not stopped_at_cap(source):
                assert time.monotonic() < deadline and not task.done(), (published, source.counters)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # stopped means stopped: nothing more is read
            at_cap = (list(published), len(fake.made("GET", STREAM_PATH)), source.ledger.month_total(),
                      source.ledger.cost(settings.x_cost_per_post_read), task.done())
            cap[0] = 10
            while later not in published:
                assert time.monotonic() < deadline and not task.done(), (published, source.counters)
                await asyncio.sleep(0.01)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return source, at_cap

        source, (published_at_cap, connections_at_cap, read_at_cap, cost_at_cap, ended) = asyncio.run(scenario())

    assert published_at_cap == tweets[:3] and connections_at_cap == 1 and not ended
    assert (read_at_cap, cost_at_cap) == (3, pytest.approx(0.015))
    assert published == tweets[:3] + [later]
    assert (source.counters.cap_stops, source.counters.capped, source.counters.gaps) == (1, 0, 0)
    saved = json.loads((tmp_path / "x_stream.json").read_text())
    assert saved["reads"]["stream"]["(total)"] == 4 and saved["month"] == month_of(time.time())


def test_x_usage_endpoint_errors_never_stop_the_stream_and_its_count_joins_the_months(tweepy_waits):
    published = Published()
    usage = {"project_id": "1", "project_cap": "2000000", "project_usage": "1234", "cap_reset_day": 5}
    messages = [message(f"17900000000000003{i:02d}") for i in range(2)]
    chunks = (*lines(messages[0]), *([KEEP_ALIVE] * 20), *lines(messages[1]))
    with FakeXApi(connections=[Send(chunks, end="hold")], usage=usage, usage_failures=[503, 429, 401]) as fake:
        source = run_source(fake, published, lambda s: s.ledger.usage is not None and len(published) == 2,
                            x_usage_poll_seconds=0.05)
        polls = len(fake.made("GET", USAGE_PATH))

    assert published == messages
    assert source.counters.usage_errors == 3 and polls >= 4
    assert (source.ledger.usage.project_usage, source.ledger.usage.project_cap) == (1234, 2_000_000)
    assert source.ledger.month_total() == 1234, "X's count of the project's reads when higher than the worker's"


def test_an_unknown_source_fails_at_start_up_naming_the_known_ones():
    with pytest.raises(ValueError, match="SOURCE='nope' is not a source; known: none, synthetic, x"):
        source_for(Settings(_env_file=None, source="nope"))


def test_source_x_without_a_token_fails_at_start_up_naming_the_setting():
    with pytest.raises(ValueError, match="X_BEARER_TOKEN is not set"):
        source_for(Settings(_env_file=None, source="x"))


def consume_records(settings: Settings, expected: int, timeout: float) -> list[tuple[bytes, bytes]]:
    """(key, value) of the raw topic's records from the start. Partitions are assigned, not
    subscribed to: a consumer group join would take the embedded broker seconds."""
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"test-{uuid.uuid4()}",
        "enable.auto.commit": False, "log_level": 2,
    })
    partitions = range(settings.topic_partitions)
    consumer.assign([TopicPartition(settings.topic_raw, p, OFFSET_BEGINNING) for p in partitions])
    records: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            records += [(m.key(), m.value()) for m in consumer.consume(500, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return records


@pytest.mark.integration
def test_the_worker_streams_x_to_the_raw_topic_and_fills_a_disconnect_so_bronze_has_every_post_once(
        broker_settings, tmp_path):
    messages = [message(f"17900000000000001{i:02d}") for i in range(5)] + [ODDLY_FORMATTED]
    # The connection drops after three messages; X goes on posting (one post matches two rules).
    connections = [Send((*lines(*messages[:3]), KEEP_ALIVE), end="abort",
                        posts_at_end=(("machine_learning",), ("ai", "machine_learning"), ("big_data",))),
                   Send(lines(OPERATIONAL_DISCONNECT, *messages[3:]), end="hold")]
    with FakeXApi(connections=connections) as fake:
        settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
        env = settings_env(settings, source="x", x_bearer_token="test-token", x_api_base_url=fake.base_url,
                           faust_web_port=free_port())
        command = [str(BIN / "faust"), "-A", "app", "worker", "-l", "info", "--web-port", env["FAUST_WEB_PORT"]]
        with Process("worker", command, env, tmp_path) as worker, \
                start_sink(settings, tmp_path, sink_trigger_seconds=1) as sink:
            wait_for(lambda: len(fake.posted) == 4, 60, "the posts made during the gap", (worker,))
            posted = {tweet["id"] for tweet, _ in fake.posted}
            expected = {tweet_id_of(m) for m in messages} | posted
            wait_for(lambda: bronze_count(settings.lake_root) >= len(expected), 180, "every post in bronze",
                       (worker, sink))
            records = consume_records(settings, len(messages) + 4, timeout=30)
            x = worker_counters(int(env["FAUST_WEB_PORT"]))["x"]
            log_text = worker.log_text()

    assert sorted(bronze_table(settings.lake_root, columns=["tweet_id"]).column("tweet_id").to_pylist()) == sorted(expected)
    stream_records = [(key, value) for key, value in records if value in messages]
    assert sorted(stream_records) == sorted((tweet_id_of(m).encode(), m) for m in messages), log_text[-4000:]
    assert {key.decode() for key, _ in records} == expected, "the recovered posts keyed by their ids too"
    assert x["stream"]["gaps"] == 1 and x["stream"]["gap_recovered"] == 4
    assert x["posts_read"]["gap_fill"] == {"machine_learning": 2, "ai": 1, "big_data": 1, "(total)": 4}
    assert x["posts_read"]["stream"]["(total)"] == len(messages)
    assert x["spend_month"] == pytest.approx((len(messages) + 4) * 0.005)
    assert {(r["value"], r["tag"]) for r in fake.rules.values()} == {
        (r.value, r.tag) for r in build_rules(load_rules(), ACCESS_LEVELS["pay-per-use"])}
    assert "test-token" not in log_text


def dead_letters(settings: Settings, expected: int, timeout: float) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"test-{uuid.uuid4()}",
                         "enable.auto.commit": False, "log_level": 2})
    consumer.assign([TopicPartition(settings.topic_dead_letter, p, OFFSET_BEGINNING)
                     for p in range(settings.topic_partitions)])
    letters: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(letters) < expected and time.monotonic() < deadline:
            letters += [orjson.loads(m.value()) for m in consumer.consume(100, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return letters


@pytest.mark.integration
def test_a_stream_message_too_large_for_kafka_is_a_dead_letter_and_the_stream_goes_on(broker_settings, tmp_path):
    huge = message("1790000000000000300", text="deep learning " * 230_000)  # ~3.2 MB
    after = message("1790000000000000301")
    with FakeXApi(connections=[Send(lines(huge, after), end="hold")]) as fake:
        env = settings_env(broker_settings, source="x", x_bearer_token="test-token", x_api_base_url=fake.base_url,
                           faust_web_port=free_port())
        command = [str(BIN / "faust"), "-A", "app", "worker", "-l", "info", "--web-port", env["FAUST_WEB_PORT"]]
        with Process("worker", command, env, tmp_path) as worker:
            letters = dead_letters(broker_settings, 1, timeout=60)
            records = consume_records(broker_settings, 2, timeout=30)
            counters = worker_counters(int(env["FAUST_WEB_PORT"]))
            log_text = worker.log_text()

    assert len(huge) > 3_000_000
    assert len(letters) == 1, [(l["reason"], l["message"][:200]) for l in letters]
    (letter,) = letters
    assert letter["reason"] == "too_large" and str(len(huge)) in letter["message"], log_text[-3000:]
    assert len(base64.b64decode(letter["raw_base64"])) == 65536
    assert (b"1790000000000000301", after) in records
    assert counters["rejected_by_reason"] == {"too_large": 1}
    assert counters["read"] == counters["accepted"] + counters["filtered"] + counters["duplicates"] + counters["rejected"]


def test_the_dashboard_shows_posts_read_and_spend_this_month_against_the_cap(tmp_path):
    from dashboard.x_panel import x_stream_panel

    settings = Settings(_env_file=None, source="x", x_bearer_token="test-token", faust_data_dir=tmp_path,
                        x_monthly_post_cap=1000, x_cost_per_post_read=0.005)
    source = XSource(settings)
    for _ in range(240):
        source.ledger.count("stream", ["ai"], time.time())
    for _ in range(10):
        source.ledger.count("gap_fill", ["ai"], time.time())
    panel = x_stream_panel({"reachable": True, "x": orjson.loads(orjson.dumps(source.report()))})

    shown = {child.children[1].id: child.children[1].children for child in panel[1].children}
    assert shown["x-posts-read"] == "250 of 1,000 (25%)"
    assert shown["x-spend"] == "$1.25 at $0.005 a post"
    assert shown["x-stream-state"] == "reading"
    assert x_stream_panel({"reachable": True, "read": 0}) == [], "no X panel without SOURCE=x"
