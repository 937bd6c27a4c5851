"""Prometheus scrapes and Spark progress events for the metrics tests."""
from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql.streaming.listener import StreamingQueryProgress


def scraped(port: int) -> dict[tuple[str, tuple], float]:
    """The samples at http://127.0.0.1:<port>/metrics (a worker or a Spark job); empty while
    nothing answers there."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return samples(response.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return {}


def kafka_progress(batch_id: int, rows: int, end: dict, latest: dict, name: str = "bronze") -> StreamingQueryProgress:
    """A progress event as Spark 4.2 reports a Kafka query's micro-batch (its JSON, trimmed)."""
    return StreamingQueryProgress.fromJson({
        "id": "5a1d2c3e-0000-4000-8000-000000000001", "runId": "5a1d2c3e-0000-4000-8000-000000000002",
        "name": name, "timestamp": "2026-05-01T12:00:00.250Z", "batchId": batch_id, "batchDuration": 1500,
        "durationMs": {"addBatch": 1200, "latestOffset": 10, "triggerExecution": 1500},
        "stateOperators": [], "numInputRows": rows, "inputRowsPerSecond": 100.0, "processedRowsPerSecond": 400.0,
        "sources": [{
            "description": "KafkaV2[Subscribe[tweets.typed]]", "startOffset": {"tweets.typed": {"0": 0, "1": 0}},
            "endOffset": end, "latestOffset": latest, "numInputRows": rows, "inputRowsPerSecond": 100.0,
            "processedRowsPerSecond": 400.0,
            "metrics": {"avgOffsetsBehindLatest": "25.0", "maxOffsetsBehindLatest": "50", "minOffsetsBehindLatest": "0"},
        }],
        "sink": {"description": "ForeachBatchSink", "numOutputRows": -1},
    })


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
