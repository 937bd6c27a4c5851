"""The Faust application: one object, configured from settings, shared by every agent."""
from __future__ import annotations

import faust

from app.settings import Settings, get_settings
from app.faust_delivery import deliver_without_tasks
from app.heap import keep_heap_trimmed
from app.tansu_compat import (
    fetch_only_active_partitions,
    leave_group_from_generation_zero,
    seek_streams_before_resuming_them,
)


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]


def create_app(settings: Settings) -> faust.App:
    if settings.embedded_broker:
        leave_group_from_generation_zero()
    # Two Faust races (not broker bugs) that lose stream records after table recovery.
    seek_streams_before_resuming_them()
    fetch_only_active_partitions()
    # Faust's per-message delivery cost four asyncio tasks: skipped when a delivery never waits.
    deliver_without_tasks()
    app = faust.App(
        settings.faust_app_id,
        broker=broker_urls(settings),
        # Tables keep their state in memory and recover it from their changelog topics.
        store="memory://",
        datadir=str(settings.faust_data_dir),
        # Kafka transactions do not work on the embedded broker: exactly-once into bronze comes
        # from dedup and the sink, not from here.
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.group_session_timeout,
        broker_heartbeat_interval=settings.group_heartbeat_interval,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # Fetch up to 8 MB per partition (Faust's default is 1 MB, ~500 tweets): fewer fetch round
        # trips measured 4.2k -> 6.4k tweets/s for one normalize worker (BENCHMARKS.md).
        consumer_max_fetch_size=8 * 1024 * 1024,
        # Room for two or more take_events batches between the fetcher and the agent (Faust's
        # default 4,096 is one), so the agent does not wait on the fetcher between batches.
        stream_buffer_maxsize=settings.faust_stream_buffer,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        web_host="127.0.0.1",
        web_port=settings.faust_web_port,
        web_in_thread=False,
    )
    # Otherwise RSS keeps the high-water mark of every backlog (glibc keeps freed pages).
    keep_heap_trimmed(app, settings.heap_trim_seconds)
    return app


app = create_app(get_settings())
