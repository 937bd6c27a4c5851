"""The `tweetlake_kafka` Spark source against a real Tansu broker and a real local Spark.

Records are produced with batching (linger), so each partition ends in a multi-record batch:
exactly the case where Tansu's ListOffsets(LATEST) under-reports the end, which the source must
not trust. Each check counts (partition, offset) pairs and compares key/value bytes with what the
producer's delivery reports said was stored where.
"""
from __future__ import annotations

import json
import logging
import shutil
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from app.broker import start_tansu, stop_tansu, wait_for_broker
from spark_sink.kafka_source import (
    SCHEMA,
    DataLossError,
    KafkaOffset,
    KafkaRange,
    KafkaStreamReader,
    SourceOptions,
    _cap,
)
from spark_sink.kafka_stream import builtin_kafka_available, read_kafka_stream

PARTITIONS = 4
Records = dict[tuple[int, int], tuple[bytes, bytes]]  # (partition, offset) -> (key, value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    """One memory-only Tansu for this module; each test uses its own topics."""
    port = free_port()
    process = start_tansu("127.0.0.1", port)
    try:
        wait_for_broker(f"127.0.0.1:{port}", timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        stop_tansu(process)


def admin(bootstrap: str) -> AdminClient:
    # Keep the client referenced until its futures are done: a collected client fails them.
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})


def create_topic(bootstrap: str, topic: str) -> None:
    client = admin(bootstrap)
    deadline = time.monotonic() + 30
    while True:  # right after a delete, Tansu may still report the topic as existing
        try:
            client.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def delete_topic(bootstrap: str, topic: str) -> None:
    # Not inline in a test: pytest.raises keeps test frames alive, and a client alive at
    # teardown makes Tansu take ~6 s to stop.
    client = admin(bootstrap)
    client.delete_topics([topic])[topic].result()


def produce(bootstrap: str, topic: str, prefix: str, count: int) -> Records:
    """`count` records with batching on; returns where each one was stored."""
    stored: Records = {}

    def delivered(error, message) -> None:
        assert error is None, error
        stored[(message.partition(), message.offset())] = (message.key(), message.value())

    # A fresh producer each time: Tansu loses records sent with metadata of a deleted topic.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "log_level": 2})
    for i in range(count):
        producer.produce(
            topic, key=f"{prefix}-{i}".encode(), value=f'{{"n": {i}, "p": "{prefix}"}}'.encode(),
            on_delivery=delivered,
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert len(stored) == count
    return stored


def reported_end(bootstrap: str, topic: str) -> int:
    """The sum of ListOffsets(LATEST) over partitions: what a naive source would read up to."""
    client = admin(bootstrap)
    futures = client.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)}
    )
    return sum(future.result().offset for future in futures.values())


def run_available_now(
    spark, bootstrap: str, topic: str, out: Path, checkpoint: Path, **options
) -> list[dict]:
    """One Trigger.AvailableNow run into parquet; returns the progress of its micro-batches."""
    frame = read_kafka_stream(
        spark, bootstrap_servers=bootstrap, topic=topic, mode="python", **options
    )
    query = (
        frame.writeStream.format("parquet")
        .option("path", str(out))
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    assert query.awaitTermination(120), "availableNow query did not finish in 120 s"
    if query.exception() is not None:
        raise query.exception()
    return [progress for progress in query.recentProgress if progress["numInputRows"]]


def lake(spark, out: Path) -> list:
    # Spark's reader honours _spark_metadata, so files of failed batches do not count.
    return spark.read.parquet(str(out)).select("partition", "offset", "key", "value").collect()


def assert_exactly(rows: list, expected: Records) -> None:
    pairs = Counter((row.partition, row.offset) for row in rows)
    duplicates = {pair: n for pair, n in pairs.items() if n > 1}
    assert not duplicates, f"read more than once: {sorted(duplicates)[:10]}"
    missing, unexpected = set(expected) - set(pairs), set(pairs) - set(expected)
    assert not missing and not unexpected, (
        f"missing {sorted(missing)[:10]}, unexpected {sorted(unexpected)[:10]}"
    )
    for row in rows:
        assert (bytes(row.key), bytes(row.value)) == expected[(row.partition, row.offset)]


@pytest.mark.integration
def test_reads_every_record_once_then_only_new_ones(spark, bootstrap, tmp_path):
    topic = "once"
    create_topic(bootstrap, topic)
    started = time.time()
    first = produce(bootstrap, topic, "a", 1000)
    # The case this source exists for: Tansu reports fewer records than it stores.
    assert reported_end(bootstrap, topic) < 1000

    out, checkpoint = tmp_path / "out", tmp_path / "checkpoint"
    run_available_now(spark, bootstrap, topic, out, checkpoint)
    assert_exactly(lake(spark, out), first)

    second = produce(bootstrap, topic, "b", 300)
    batches = run_available_now(spark, bootstrap, topic, out, checkpoint)
    assert sum(batch["numInputRows"] for batch in batches) == 300
    assert_exactly(lake(spark, out), {**first, **second})

    table = spark.read.parquet(str(out))
    assert [(f.name, f.dataType) for f in table.schema] == [(f.name, f.dataType) for f in SCHEMA]
    stamps = table.selectExpr(
        "min(timestamp)", "max(timestamp)", "collect_set(timestampType)", "collect_set(topic)"
    ).first()
    assert started - 5 <= stamps[0].timestamp() <= stamps[1].timestamp() <= time.time() + 5
    assert (stamps[2], stamps[3]) == ([0], [topic])  # CreateTime, as Spark's source reports it


@pytest.mark.integration
def test_starting_offsets_latest_skips_what_exists(spark, bootstrap, tmp_path):
    topic = "latest"
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, "before", 500)
    out, checkpoint = tmp_path / "out", tmp_path / "checkpoint"
    # Batch 0 runs empty and checkpoints the resolved start; a tail of the last producer batch
    # would show up here if "latest" trusted Tansu's ListOffsets.
    first = run_available_now(spark, bootstrap, topic, out, checkpoint, starting_offsets="latest")
    assert first == []

    after = produce(bootstrap, topic, "after", 100)
    run_available_now(spark, bootstrap, topic, out, checkpoint, starting_offsets="latest")
    assert_exactly(lake(spark, out), after)


@pytest.mark.integration
def test_max_offsets_per_trigger_splits_into_batches(spark, bootstrap, tmp_path):
    topic = "capped"
    create_topic(bootstrap, topic)
    expected = produce(bootstrap, topic, "c", 1000)

    out = tmp_path / "out"
    checkpoint = tmp_path / "checkpoint"
    batches = run_available_now(
        spark, bootstrap, topic, out, checkpoint, max_offsets_per_trigger=300
    )
    assert [batch["numInputRows"] for batch in batches] == [300, 300, 300, 100]
    assert_exactly(lake(spark, out), expected)


@pytest.mark.integration
def test_recreated_topic_is_detected(spark, bootstrap, tmp_path):
    topic = "recreated"
    create_topic(bootstrap, topic)
    old = produce(bootstrap, topic, "old", 400)
    out, checkpoint = tmp_path / "out", tmp_path / "checkpoint"
    run_available_now(spark, bootstrap, topic, out, checkpoint)
    assert_exactly(lake(spark, out), old)
    strict = tmp_path / "checkpoint-strict"
    shutil.copytree(checkpoint, strict)

    delete_topic(bootstrap, topic)
    create_topic(bootstrap, topic)
    new = produce(bootstrap, topic, "new", 40)  # offsets far below the checkpointed ones

    batches = run_available_now(spark, bootstrap, topic, out, checkpoint)
    new_rows = [row for row in lake(spark, out) if bytes(row.key).startswith(b"new-")]
    assert_exactly(new_rows, new)
    assert json.loads(batches[-1]["sources"][0]["endOffset"])["@data_loss"] == 1

    with pytest.raises(Exception, match="was recreated"):
        run_available_now(
            spark, bootstrap, topic, tmp_path / "out-strict", strict, fail_on_data_loss=True
        )


@pytest.mark.integration
def test_executor_notices_a_log_that_ends_early(bootstrap, caplog):
    """Ranges planned before a topic shrank (recreated, truncated): the executor side."""
    topic = "shrunk"
    create_topic(bootstrap, topic)
    end = 1 + max(offset for p, offset in produce(bootstrap, topic, "s", 100) if p == 0)

    def read(start: int, stop: int, fail: str) -> int:
        options = {"kafka.bootstrap.servers": bootstrap, "subscribe": topic, "failOnDataLoss": fail}
        reader = KafkaStreamReader(SourceOptions.parse(options))
        return sum(batch.num_rows for batch in reader.read(KafkaRange(topic, 0, start, stop)))

    with caplog.at_level(logging.WARNING, logger="spark_sink.kafka_source"):
        assert read(0, end + 50, "false") == end
        assert read(end + 10, end + 20, "false") == 0
    assert f"now ends at {end}" in caplog.text and "beyond the end of the log" in caplog.text
    with pytest.raises(DataLossError, match="beyond the end of the log"):
        read(end + 10, end + 20, "true")


@pytest.mark.integration
def test_mode_choice(spark, bootstrap, caplog):
    assert not builtin_kafka_available(spark)  # no spark-sql-kafka jar in this environment
    with pytest.raises(RuntimeError, match="not on the classpath"):
        read_kafka_stream(spark, bootstrap_servers=bootstrap, topic="any", mode="kafka")
    with caplog.at_level(logging.INFO, logger="spark_sink.kafka_stream"):
        frame = read_kafka_stream(spark, bootstrap_servers=bootstrap, topic="any", mode="auto")
    assert frame.isStreaming and frame.schema == SCHEMA
    assert "'tweetlake_kafka' source (mode auto)" in caplog.text


def test_offsets_go_backwards_or_vanish():
    options = SourceOptions.parse({"kafka.bootstrap.servers": "unused:9092", "subscribe": "t"})
    reader = KafkaStreamReader(options)
    begin = KafkaOffset("id", {0: 10, 1: 5, 2: 7}, data_loss=2)
    events = reader._data_loss_events(begin, KafkaOffset("id", {0: 12, 1: 3}))
    assert len(events) == 2 and "t-2 is gone" in events[0] and "from 5 to 3" in events[1]
    assert reader._data_loss_events(begin, KafkaOffset("id", {0: 10, 1: 5, 2: 7})) == []
    # Spark compares offsets as JSON text: the order must not depend on how the dict was built.
    assert json.dumps(KafkaOffset("id", {10: 1, 2: 3}).to_json("t")) == (
        '{"@data_loss": 0, "@topic_id": "id", "t": {"2": 3, "10": 1}}'
    )


def test_cap_shares_rows_by_backlog():
    assert _cap({0: 0, 1: 0, 2: 5}, {0: 10, 1: 20, 2: 5}, 100) == {0: 10, 1: 20, 2: 5}
    assert _cap({0: 0, 1: 0, 2: 0}, {0: 1, 1: 1, 2: 1000}, 10) == {0: 1, 1: 0, 2: 9}  # none starved
    assert _cap({0: 0, 1: 0, 2: 0}, {0: 300, 1: 300, 2: 400}, 100) == {0: 30, 1: 30, 2: 40}
    assert _cap({0: 100, 1: 0}, {0: 90, 1: 50}, 10) == {0: 90, 1: 10}  # gone backwards: left as is
