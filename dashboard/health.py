"""The pipeline's health from outside it: the worker's counters, what each zone holds, and how far
the Faust worker and the bronze sink are behind their topics. Every probe has a short timeout and
reports a failure as unavailable: the dashboard must stay up while the pipeline is down.
"""
from __future__ import annotations

import json
import posixpath
import urllib.request

from confluent_kafka import Consumer, KafkaException, TopicPartition

from app.settings import Settings
from datalake import layout
from datalake.files import column_range, iso_utc
from datalake.fs import LakeFS
from dashboard.lake_reader import LakeReader, open_lake_fs

COUNTER_NAMES = ("read", "accepted", "filtered", "duplicates", "rejected")
# Seconds a probe may take: a refresh with the worker and Kafka both down stays ~2 s.
PROBE_TIMEOUT = 1.0
TIME_COLUMNS = {layout.BRONZE: "created_at", layout.SILVER: "created_at", layout.QUARANTINE_DEAD_LETTERS: "failed_at"}


def worker_counters(web_port: int, timeout: float = PROBE_TIMEOUT) -> dict:
    """The worker's /counters/ (read = accepted + filtered + duplicates + rejected since its start),
    with reachable=True; reachable=False and the error when it does not answer."""
    url = f"http://127.0.0.1:{web_port}/counters/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            counters = json.load(reply)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return {"reachable": False, "url": url, "error": f"worker not reachable at {url}: {reason}"}
    return {"reachable": True, "url": url, **counters}


def zones(reader: LakeReader) -> dict:
    """Files, rows (from the footers), bytes and the newest data of every zone, and quarantine's
    total. Newest data is the newest hour (or day) partition, and for bronze, silver and dead
    letters the newest created_at / failed_at in the footers' statistics of that partition."""
    listed = {zone: reader.files(zone) for zone in layout.ZONES}
    reader.forget_missing(listed)
    summaries = []
    for zone, files in listed.items():
        footers = reader.footers(files)
        newest_partition = max((file.partition for file in files), default=None)
        summaries.append({
            "zone": zone.path,
            "files": len(files),
            "rows": sum(footer.num_rows for _, footer in footers),
            "bytes": sum(file.size for file in files),
            "newest_partition": layout.partition_path(newest_partition) if newest_partition else None,
            "newest_time": _newest_time(footers, newest_partition, TIME_COLUMNS.get(zone)),
            "newest_time_column": TIME_COLUMNS.get(zone),
        })
    quarantine = [s for s in summaries if s["zone"] in {z.path for z in layout.QUARANTINE_ZONES}]
    return {
        "zones": summaries,
        "quarantine": {"rows": sum(s["rows"] for s in quarantine), "files": sum(s["files"] for s in quarantine)},
    }


def _newest_time(footers, partition, column: str | None) -> str | None:
    if column is None or partition is None:
        return None
    highs = [found[1] for file, footer in footers if file.partition == partition
             and (found := column_range(footer, column)) is not None]
    return iso_utc(max(highs)) if highs else None


def consumer_lag(settings: Settings, timeout: float = PROBE_TIMEOUT) -> dict:
    """How many messages the worker (its consumer group, the Faust app id, on the raw topic) and
    the bronze sink (its checkpoint, on the typed topic) have not processed yet."""
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
            processed = bronze_checkpoint_offsets(settings)
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


def bronze_checkpoint_offsets(settings: Settings) -> dict[str, dict[int, int]]:
    """The Kafka offsets up to which the bronze sink's newest committed micro-batch read, from its
    Spark checkpoint: offsets/<n> holds "v1", the batch's metadata and one JSON line per source
    ({"tweets.typed": {"0": 12, ...}}, the next offset per partition); commits/<n> exists once
    batch n is in bronze. RuntimeError while the sink has committed no batch."""
    root = f"{layout.checkpoints(settings.lake_root, settings.checkpoint_root)}/{layout.BRONZE.query}"
    fs, path = open_lake_fs(root, settings)
    committed = _batch_ids(fs, posixpath.join(path, "commits"))
    if not committed:
        raise RuntimeError(f"the bronze sink has committed no batch yet ({root})")
    with fs.open(posixpath.join(path, "offsets", str(max(committed)))) as stream:
        lines = [line for line in stream.read().decode().splitlines() if line.strip()]
    offsets: dict[str, dict[int, int]] = {}
    for line in lines[2:]:
        for topic, partitions in json.loads(line).items():
            offsets[topic] = {int(p): int(o) for p, o in partitions.items()}
    return offsets


def _batch_ids(fs: LakeFS, folder: str) -> list[int]:
    if not fs.exists(folder):
        return []
    return [int(entry.name) for entry in fs.list(folder) if not entry.is_dir and entry.name.isdigit()]
