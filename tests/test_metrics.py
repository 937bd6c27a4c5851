"""The Prometheus metrics of the worker (agents.metrics) and of the Spark jobs (spark_sink.metrics),
without processes: the worker's text from known counters, the jobs' metrics from the progress
objects Spark's listener hands over (built from Spark's progress JSON, as pyspark builds them)."""
from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime
from types import SimpleNamespace

from prometheus_client import generate_latest

from agents.counters import OutcomeCounters
from config.settings import Settings
from pipeline.processes import free_port
from spark_sink.metrics import QueryMetrics, kafka_offsets_behind, start_metrics_server
from spark_sink.session import ProgressLog
from tests.support.metrics import kafka_progress, samples, scraped


def worker_outcomes() -> OutcomeCounters:
    return OutcomeCounters(read=20, accepted=9, duplicates=2,
                           filtered_by_reason=Counter(off_topic=4, language=1),
                           rejected_by_reason=Counter(malformed_json=3, too_large=1))


def test_worker_text_has_every_counter_and_reason():
    from agents.metrics import render

    found = samples(render(worker_outcomes()).decode())

    prefix = "tweetlake_worker_tweets"
    assert found == {
        (f"{prefix}_read_total", ()): 20,
        (f"{prefix}_accepted_total", ()): 9,
        (f"{prefix}_duplicates_total", ()): 2,
        (f"{prefix}_filtered_total", ()): 5,
        (f"{prefix}_filtered_by_reason_total", (("reason", "language"),)): 1,
        (f"{prefix}_filtered_by_reason_total", (("reason", "off_topic"),)): 4,
        (f"{prefix}_rejected_total", ()): 4,
        (f"{prefix}_rejected_by_reason_total", (("reason", "malformed_json"),)): 3,
        (f"{prefix}_rejected_by_reason_total", (("reason", "too_large"),)): 1,
    }


def test_worker_text_reads_the_live_counters_at_each_scrape():
    from agents.metrics import render

    outcomes = OutcomeCounters()
    assert samples(render(outcomes).decode())[("tweetlake_worker_tweets_filtered_total", ())] == 0
    outcomes.read += 1
    outcomes.filtered_by_reason["off_topic"] += 1
    after = samples(render(outcomes).decode())
    assert after[("tweetlake_worker_tweets_read_total", ())] == 1
    assert after[("tweetlake_worker_tweets_filtered_by_reason_total", (("reason", "off_topic"),))] == 1


def test_worker_page_serves_prometheus_text_of_the_agents_counters(monkeypatch):
    import agents.metrics

    monkeypatch.setattr(agents.metrics, "counters", worker_outcomes())
    view = agents.metrics.MetricsView(agents.metrics.app, agents.metrics.app.web)
    response = asyncio.run(view.get(None))

    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert samples(response.body.decode())[("tweetlake_worker_tweets_read_total", ())] == 20


def test_spark_metrics_follow_progress_events_per_query():
    metrics = QueryMetrics()
    listener = ProgressLog(metrics)
    listener.onQueryProgress(SimpleNamespace(progress=kafka_progress(
        7, 600, end={"tweets.typed": {"0": 300, "1": 300}}, latest={"tweets.typed": {"0": 350, "1": 300}})))
    listener.onQueryProgress(SimpleNamespace(progress=kafka_progress(
        8, 0, end={"tweets.typed": {"0": 350, "1": 300}}, latest={"tweets.typed": {"0": 350, "1": 300}})))
    listener.onQueryProgress(SimpleNamespace(progress=kafka_progress(
        3, 40, end={}, latest={}, name="dead_letters")))

    found = samples(generate_latest(metrics.registry).decode())
    bronze, dead = (("query", "bronze"),), (("query", "dead_letters"),)
    assert found[("tweetlake_spark_batches_total", bronze)] == 2
    assert found[("tweetlake_spark_input_rows_total", bronze)] == 600
    assert found[("tweetlake_spark_last_batch_id", bronze)] == 8
    assert found[("tweetlake_spark_last_batch_input_rows", bronze)] == 0
    assert found[("tweetlake_spark_processed_rows_per_second", bronze)] == 400.0
    assert found[("tweetlake_spark_batch_duration_seconds", bronze)] == 1.5
    assert found[("tweetlake_spark_last_progress_timestamp_seconds", bronze)] == (
        datetime.fromisoformat("2026-05-01T12:00:00.250+00:00").timestamp())
    assert found[("tweetlake_spark_kafka_offsets_behind_latest", (("query", "bronze"), ("topic", "tweets.typed")))] == 0
    # The next offset per partition, as the last micro-batch's endOffset says (the dashboard's sink
    # lag): batch 8 moved partition 0 from 300 to 350; a source without Kafka offsets has none.
    end_offsets = {dict(labels)["partition"]: value for (name, labels), value in found.items()
                   if name == "tweetlake_spark_kafka_end_offset"
                   and dict(labels)["query"] == "bronze" and dict(labels)["topic"] == "tweets.typed"}
    assert end_offsets == {"0": 350, "1": 300}
    assert not any(name == "tweetlake_spark_kafka_end_offset" and ("query", "dead_letters") in labels
                   for name, labels in found)
    assert found[("tweetlake_spark_batches_total", dead)] == 1
    assert found[("tweetlake_spark_input_rows_total", dead)] == 40


def test_offsets_behind_are_read_from_kafka_offsets_only():
    behind = kafka_offsets_behind('{"t": {"0": 10, "1": 5}}', '{"t": {"0": 25, "1": 5}}')
    assert behind == {"t": 15}
    assert kafka_offsets_behind('{"logOffset": 4}', '{"logOffset": 9}') == {}  # a file source (silver)
    assert kafka_offsets_behind('{"t": {"0": 10}}', "null") == {}
    assert kafka_offsets_behind(None, None) == {}


def test_metrics_server_serves_the_jobs_registry_on_loopback():
    metrics = QueryMetrics()
    metrics.record(kafka_progress(1, 5, end={}, latest={}))
    port = free_port()
    start_metrics_server(Settings(_env_file=None, spark_metrics_port=port), "bronze", metrics)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = scraped(port)
    assert found[("tweetlake_spark_input_rows_total", (("query", "bronze"),))] == 5


def test_a_busy_metrics_port_or_port_zero_serves_nothing_and_the_job_goes_on():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert start_metrics_server(Settings(_env_file=None, spark_metrics_port=port), "bronze", QueryMetrics()) is None
    assert start_metrics_server(Settings(_env_file=None, spark_metrics_port=0), "gold", QueryMetrics()) is None
