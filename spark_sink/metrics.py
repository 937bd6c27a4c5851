"""Prometheus metrics of a Spark job's streaming queries, one series per query name, kept up to date
by the job's progress listener (spark_sink.session.ProgressLog) and served on 127.0.0.1 at
SPARK_METRICS_PORT (bronze), +1 (silver), +2 (gold)."""
from __future__ import annotations

import json
import logging
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from config.settings import Settings

log = logging.getLogger("tweetlake.spark")

PREFIX = "tweetlake_spark"


class QueryMetrics:
    """The micro-batch progress of every query of one job, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        query = ("query",)

        def counter(name: str, help_text: str) -> Counter:
            return Counter(f"{PREFIX}_{name}", help_text, query, registry=self.registry)

        def gauge(name: str, help_text: str, labels: tuple[str, ...] = query) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", help_text, labels, registry=self.registry)

        self.batches = counter("batches", "Micro-batches completed since the job started.")
        self.input_rows = counter("input_rows", "Rows the query's micro-batches read since the job started.")
        self.last_batch_id = gauge("last_batch_id", "Id of the last completed micro-batch (continues across restarts).")
        self.last_batch_input_rows = gauge("last_batch_input_rows", "Rows the last micro-batch read.")
        self.processed_rows_per_second = gauge("processed_rows_per_second", "Rows per second of the last micro-batch.")
        self.batch_duration = gauge("batch_duration_seconds", "Wall-clock time of the last micro-batch.")
        self.last_progress = gauge("last_progress_timestamp_seconds", "When the last micro-batch started (Unix time).")
        self.offsets_behind = gauge("kafka_offsets_behind_latest",
                                    "Records in the topic after the last micro-batch's end offsets.",
                                    ("query", "topic"))
        self.end_offset = gauge("kafka_end_offset", "The next offset the query reads, per topic partition "
                                "(what it has written up to; the dashboard's sink lag).", ("query", "topic", "partition"))

    def record(self, progress) -> None:
        """Take one StreamingQueryProgress (the event of a completed micro-batch)."""
        name = progress.name or str(progress.id)
        rows = progress.numInputRows or 0
        self.batches.labels(name).inc()
        self.input_rows.labels(name).inc(rows)
        self.last_batch_id.labels(name).set(progress.batchId)
        self.last_batch_input_rows.labels(name).set(rows)
        self.processed_rows_per_second.labels(name).set(progress.processedRowsPerSecond or 0.0)
        self.batch_duration.labels(name).set(progress.batchDuration / 1000)
        self.last_progress.labels(name).set(datetime.fromisoformat(progress.timestamp).timestamp())
        for source in progress.sources:
            for topic, behind in kafka_offsets_behind(source.endOffset, source.latestOffset).items():
                self.offsets_behind.labels(name, topic).set(behind)
            for topic, partitions in _kafka_offsets(source.endOffset).items():
                for partition, offset in partitions.items():
                    self.end_offset.labels(name, topic, partition).set(offset)


def kafka_offsets_behind(end_offset: str | None, latest_offset: str | None) -> dict[str, int]:
    """Per topic, latest minus end offsets summed over partitions; empty for a source that is not
    Kafka's (its offsets are not {topic: {partition: offset}}) or has no latest offsets."""
    end, latest = _kafka_offsets(end_offset), _kafka_offsets(latest_offset)
    return {
        topic: sum(max(offset - end[topic].get(partition, 0), 0) for partition, offset in partitions.items())
        for topic, partitions in latest.items() if topic in end
    }


def _kafka_offsets(text: str | None) -> dict[str, dict[str, int]]:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    offsets = {}
    for topic, partitions in value.items():
        if not isinstance(partitions, dict) or not all(isinstance(o, int) for o in partitions.values()):
            return {}
        offsets[topic] = partitions
    return offsets


# One Spark job per process: its listener and its metrics server share these.
JOB_METRICS = QueryMetrics()


def start_metrics_server(settings: Settings, job: str, metrics: QueryMetrics = JOB_METRICS) -> int | None:
    """Serve the job's metrics on 127.0.0.1 and return the port; None when SPARK_METRICS_PORT=0 or
    the port is busy (logged): the job goes on without metrics, they must never stop the lake's writes."""
    port = settings.spark_metrics_port_of(job)
    if port is None:
        return None
    try:
        start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    except OSError as error:
        log.warning("%s: no metrics at http://127.0.0.1:%d/metrics (%s); the job goes on without them",
                    job, port, error)
        return None
    log.info("%s: metrics at http://127.0.0.1:%d/metrics", job, port)
    return port
