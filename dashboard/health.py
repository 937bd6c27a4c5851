"""The pipeline's health from outside it: the worker's counters, what each zone holds, how far
the Faust worker and the bronze sink are behind their topics, and each supervised process's state
and restarts. Every probe has a short timeout and
reports a failure as unavailable: the dashboard must stay up while the pipeline is down.
"""
from __future__ import annotations

import urllib.request
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from agents.counters import read_counters
from config.settings import Settings
from datalake import layout
from datalake.display import iso_utc
from datalake.errors import LakeError
from dashboard.lake_reader import LakeReader, files_by_partition

COUNTER_NAMES = ("read", "accepted", "filtered", "duplicates", "rejected")
# Seconds a probe may take: a refresh with the worker and Kafka both down stays ~2 s.
PROBE_TIMEOUT = 1.0
TIME_COLUMNS = {layout.BRONZE: "created_at", layout.SILVER: "created_at", layout.QUARANTINE_DEAD_LETTERS: "failed_at"}


def worker_counters(web_port: int, timeout: float = PROBE_TIMEOUT) -> dict:
    """The worker's /counters/ (read = accepted + filtered + duplicates + rejected since its start),
    with reachable=True; reachable=False and the error when it does not answer."""
    url = f"http://127.0.0.1:{web_port}/counters/"
    try:
        counters = read_counters(web_port, timeout)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return {"reachable": False, "url": url, "error": f"worker not reachable at {url}: {reason}"}
    return {"reachable": True, "url": url, **counters}


def zones(reader: LakeReader) -> dict:
    """Version, files, rows, bytes and the newest data of every table, from its log, and
    quarantine's total. Newest data is the newest hour (or day) partition, and for bronze, silver
    and dead letters the newest created_at / failed_at in the log's statistics of that partition."""
    summaries = []
    for zone in layout.ZONES:
        try:
            table = reader.lake.table(zone)
            files = None if table is None else pa.table(table.get_add_actions(flatten=True))
        except LakeError:
            table = files = None
        column = TIME_COLUMNS.get(zone)
        summary = {"zone": zone.path, "version": None if table is None else table.version(), "files": 0, "rows": 0,
                   "bytes": 0, "newest_partition": None, "newest_time": None, "newest_time_column": column}
        if files is not None and files.num_rows:
            partitions = files_by_partition(zone, files)
            newest = max(partitions)
            summary.update(files=files.num_rows, rows=sum(files.column("num_records").to_pylist()),
                           bytes=sum(files.column("size_bytes").to_pylist()), newest_partition=newest,
                           newest_time=_newest_time(files, set(partitions[newest]), column))
        summaries.append(summary)
    quarantine = [s for s in summaries if s["zone"] in {z.path for z in layout.QUARANTINE_ZONES}]
    return {
        "zones": summaries,
        "quarantine": {"rows": sum(s["rows"] for s in quarantine), "files": sum(s["files"] for s in quarantine)},
    }


def _newest_time(files: pa.Table, newest_files: set[str], column: str | None) -> str | None:
    if column is None or f"max.{column}" not in files.column_names:
        return None
    chosen = files.filter(pc.is_in(files.column("path"), value_set=pa.array(sorted(newest_files))))
    return iso_utc(pc.max(chosen.column(f"max.{column}")).as_py())


def consumer_lag(settings: Settings, timeout: float = PROBE_TIMEOUT) -> dict:
    """How many messages the worker (its consumer group, the Faust app id, on the raw topic) and
    the bronze sink (its last micro-batch's end offsets, on the typed topic) have not processed yet."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.faust_app_id,
                         "enable.auto.commit": False, "socket.timeout.ms": max(int(timeout * 1000), 10),
                         "log_level": 0, "log.connection.close": False})
    try:
        try:
            metadata = consumer.list_topics(timeout=timeout).topics
        except KafkaException as error:
            down = _unavailable(f"Kafka at {settings.bootstrap_servers}: {kafka_reason(error)}")
            return {"worker": down, "bronze_sink": down}
        try:
            raw_ends = end_offsets(consumer, metadata, settings.topic_raw, timeout)
            committed = consumer.committed([TopicPartition(settings.topic_raw, p) for p in raw_ends], timeout=timeout)
            worker = _lag(settings.topic_raw, raw_ends, {tp.partition: tp.offset for tp in committed if tp.offset >= 0})
            worker["group"] = settings.faust_app_id
        except (KafkaException, RuntimeError) as error:
            worker = _unavailable(error)
        try:
            processed = bronze_sink_offsets(settings, timeout)
            typed_ends = end_offsets(consumer, metadata, settings.topic_typed, timeout)
            sink = _lag(settings.topic_typed, typed_ends, processed.get(settings.topic_typed, {}))
        except (KafkaException, RuntimeError, OSError, ValueError) as error:
            sink = _unavailable(error)
    finally:
        consumer.close()
    return {"worker": worker, "bronze_sink": sink}


def end_offsets(consumer: Consumer, metadata: dict, topic: str, timeout: float) -> dict[int, int]:
    """The next offset to be written, per partition of `topic`."""
    found = metadata.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise RuntimeError(f"topic {topic} not found on the broker")
    return {partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)[1]
            for partition in sorted(found.partitions)}


def _lag(topic: str, ends: dict[int, int], processed: dict[int, int]) -> dict:
    """End offsets minus processed offsets (the next offset to read), per partition; a partition
    nothing was processed of is behind by all of it (earliest offsets are not subtracted: what
    retention deleted counts as behind, an overestimate only while nothing was read)."""
    per_partition = {str(p): max(end - processed.get(p, 0), 0) for p, end in ends.items()}
    return {"available": True, "topic": topic, "lag": sum(per_partition.values()), "partitions": per_partition}


def _unavailable(error: BaseException | str) -> dict:
    reason = kafka_reason(error) if isinstance(error, KafkaException) else error
    return {"available": False, "error": f"unavailable: {reason}"}


def kafka_reason(error: KafkaException) -> str:
    """librdkafka's message ("Failed to get metadata: Local: Broker transport failure")."""
    detail = error.args[0] if error.args else error
    return detail.str() if hasattr(detail, "str") else str(detail)


def bronze_sink_offsets(settings: Settings, timeout: float = PROBE_TIMEOUT) -> dict[str, dict[int, int]]:
    """The Kafka offsets up to which the bronze sink's last micro-batch read, from its metrics
    (tweetlake_spark_kafka_end_offset{query="bronze"}): the next offset per topic and partition.
    RuntimeError when its metrics are off or do not answer."""
    port = settings.spark_metrics_port_of("bronze")
    if port is None:
        raise RuntimeError("the bronze sink's metrics are off (SPARK_METRICS_PORT=0)")
    offsets: dict[str, dict[int, int]] = {}
    for labels, value in scrape(port, "the bronze sink's metrics", timeout).get("tweetlake_spark_kafka_end_offset", []):
        if labels.get("query") == layout.BRONZE.query:
            offsets.setdefault(labels["topic"], {})[int(labels["partition"])] = int(value)
    if not offsets:
        raise RuntimeError("the bronze sink has finished no micro-batch since it started")
    return offsets


def scrape(port: int, what: str, timeout: float = PROBE_TIMEOUT) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The samples (labels, value) of each metric on 127.0.0.1:port/metrics, by sample name (one
    request); RuntimeError naming `what` when nothing answers there."""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            text = reply.read().decode()
    except OSError as error:
        raise RuntimeError(f"{what} do not answer at {url}: {getattr(error, 'reason', error)}") from error
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def processes(settings: Settings, timeout: float = PROBE_TIMEOUT) -> dict:
    """Each supervised process's state, restarts and since when (the supervisor's metrics,
    supervise/listener.py), with available=True; available=False and the error when the set does
    not run under `make run` or `make cluster`'s supervisor."""
    try:
        samples = scrape(settings.supervise_metrics_port, "the supervisor's metrics", timeout)
    except RuntimeError as error:
        return {"available": False, "error": str(error), "processes": []}
    restarts = {labels["process"]: int(value) for labels, value in samples.get("tweetlake_process_restarts_total", [])}
    since = {labels["process"]: value for labels, value in samples.get("tweetlake_process_state_since_seconds", [])}
    current = {labels["process"]: labels["state"] for labels, value in samples.get("tweetlake_process_state", [])
               if value == 1}
    return {"available": True, "processes": [
        {"process": name, "state": state, "restarts": restarts.get(name, 0),
         "since": iso_utc(datetime.fromtimestamp(since[name], timezone.utc).replace(microsecond=0)) if name in since else None}
        for name, state in current.items()]}
