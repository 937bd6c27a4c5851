"""The X source against a fake X API over real HTTP: Tweepy's own connection, line splitting,
callbacks and backoff run; the publish function is the boundary where bytes leave the source."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid

import orjson
import pytest
import tweepy.asynchronous.streaming
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.backfill import worker_counters
from tweets.payloads import tweet_id_of
from tweets.topics import load_rules
from agents.sources.x_rules import build_rules
from agents.sources.x_stream import STREAM_FIELDS, XSource
from app.settings import Settings
from pipeline.processes import free_port
from tests.fake_x_api import (
    KEEP_ALIVE, ODDLY_FORMATTED, OPERATIONAL_DISCONNECT, RULES_PATH, STREAM_PATH,
    FakeXApi, Refuse, Send, lines, message,
)
from tests.processes import BIN, Process, settings_env

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


def run_source(fake: FakeXApi, publish: Published, until, timeout: float = 10.0) -> XSource:
    """Run the X source until `until(source)` holds, then stop it as a stopping worker would."""

    async def scenario() -> XSource:
        settings = Settings(_env_file=None, x_bearer_token="test-token", x_api_base_url=fake.base_url)
        source = XSource(settings, publish, restart_wait=0.01, restart_wait_max=0.01)
        task = asyncio.create_task(source.run())
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
    assert "X stream error message: operational-disconnect: UpstreamOperationalDisconnect: This stream" in caplog.text

    desired_rules = build_rules(load_rules(), max_rules=25)
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


def test_http_errors_and_rate_limits_back_off_as_x_documents(tweepy_waits, caplog):
    published = Published()
    connections = [Refuse(503), Refuse(429, {"title": "TooManyConnections", "detail": "Too many connections"}),
                   Send(lines(M1), end="hold")]
    with FakeXApi(connections=connections) as fake:
        source = run_source(fake, published, lambda s: len(published) == 1)

    assert published == [M1]
    # X: HTTP errors from 5 s, doubling; HTTP 429 from 60 s.
    assert tweepy_waits.seconds == [5, 60]
    assert (source.counters.errors, source.counters.rate_limited, source.counters.reconnects) == (1, 1, 0)
    assert "X stream refused the connection: HTTP 503" in caplog.text
    assert "TooManyConnections" in caplog.text


def test_a_crash_is_logged_and_the_stream_restarted_without_syncing_rules_again(tweepy_waits, caplog):
    published = FailingOnce()
    connections = [Send(lines(M1, M2), end="hold"), Send(lines(M3), end="hold")]
    with FakeXApi(connections=connections) as fake:
        source = run_source(fake, published, lambda s: len(published) == 1)

    assert published == [M3], "the message that failed to publish and those after it on that connection are lost"
    assert "X stream crashed: RuntimeError('Kafka is down')" in caplog.text
    assert "X stream restarting in 0.0 s" in caplog.text
    assert (source.counters.errors, source.counters.reconnects) == (1, 1)
    assert len(fake.made("GET", RULES_PATH)) == 1
    assert len(fake.made("GET", STREAM_PATH)) == 2


def test_a_failed_rules_sync_is_retried_before_the_stream_connects(tweepy_waits, caplog):
    published = Published()
    with FakeXApi(connections=[Send(lines(M1), end="hold")], failing_rule_reads=2) as fake:
        run_source(fake, published, lambda s: len(published) == 1)

    assert published == [M1]
    assert caplog.text.count("X source: rules sync failed") == 2
    requests = [(r.method, r.path) for r in fake.requests]
    assert requests == [("GET", RULES_PATH)] * 3 + [("POST", RULES_PATH), ("GET", STREAM_PATH)]


def test_source_x_without_a_token_fails_at_start_up_naming_the_setting():
    with pytest.raises(ValueError, match="X_BEARER_TOKEN is not set"):
        XSource(Settings(_env_file=None, source="x"), Published())


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
def test_the_worker_streams_x_messages_to_the_raw_topic_keyed_by_tweet_id(broker_settings, tmp_path):
    messages = [message(f"17900000000000001{i:02d}") for i in range(5)] + [ODDLY_FORMATTED]
    chunks = (*lines(*messages[:3]), KEEP_ALIVE, *lines(OPERATIONAL_DISCONNECT, *messages[3:]))
    with FakeXApi(connections=[Send(chunks, end="hold")]) as fake:
        env = settings_env(
            broker_settings, source="x", x_bearer_token="test-token", x_api_base_url=fake.base_url,
            faust_web_port=free_port(),
        )
        command = [str(BIN / "faust"), "-A", "app", "worker", "-l", "info", "--web-port", env["FAUST_WEB_PORT"]]
        with Process("worker", command, env, tmp_path) as worker:
            records = consume_records(broker_settings, len(messages), timeout=45)
            log_text = worker.log_text()

    assert sorted(records) == sorted((tweet_id_of(m).encode(), m) for m in messages), log_text[-4000:]
    assert "X rules synced: 4 added, 0 deleted, 0 kept" in log_text
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
