"""The Faust application: one object, configured from settings, shared by every agent.

`faust -A app worker` discovers the agents (`autodiscover`) and, as the worker initialises,
installs the Faust patches (`app.faust_patches`) and makes its producer idempotent.
"""
from __future__ import annotations

from typing import Any, Mapping

import faust
from faust.transport.drivers.aiokafka import Producer as AIOKafkaDriverProducer

from app.faust_patches import install_worker_patches
from app.faust_patches.pinned import install_for_pinned_faust
from app.heap import keep_heap_trimmed
from config.settings import Settings, get_settings

AGENT_MODULES = ["agents.ingest", "agents.normalize_agent", "agents.metrics"]


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]


def _idempotent_producer_settings(self) -> Mapping[str, Any]:
    """What Faust 0.15.3's `Producer._settings_extra` gives aiokafka under exactly_once only."""
    return {"acks": "all", "enable_idempotence": True}


def produce_idempotently() -> bool:
    """Every producer Faust creates is idempotent: a send retried after a lost reply or a leader
    change is written once. Faust exposes no setting for it outside exactly_once; aiokafka keeps
    one request in flight per broker, so its sequence numbers stay in order for the outbox's
    record batches too (agents/outbox.py)."""
    return install_for_pinned_faust(AIOKafkaDriverProducer, "_settings_extra", _idempotent_producer_settings,
                                    "idempotent producer (enable_idempotence)")


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.faust_app_id,
        broker=broker_urls(settings),
        autodiscover=AGENT_MODULES,
        # Without an origin Faust would scan (import) every module of the `app` package.
        origin="app.faust_app",
        # Tables keep their state in memory and recover it from their changelog topics.
        store="memory://",
        datadir=str(settings.faust_data_dir),
        # At-least-once: the normalize agent's outbox sends whole record batches through the plain
        # producer, outside Faust's per-partition transactions; dedup in the worker and the sink
        # keep bronze exact instead (docs/architecture.md, "Delivery guarantee").
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.faust_session_timeout,
        broker_heartbeat_interval=settings.faust_heartbeat_interval,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # Fetch up to 8 MB per partition (Faust's default is 1 MB, ~500 tweets): fewer fetch round
        # trips measured 4.2k -> 6.4k tweets/s for one normalize worker (docs/benchmark-history.md).
        consumer_max_fetch_size=8 * 1024 * 1024,
        # Room for two or more take_events batches between the fetcher and the agent (Faust's
        # default 4,096 is one), so the agent does not wait on the fetcher between batches.
        stream_buffer_maxsize=settings.faust_stream_buffer,
        # Acknowledged once every in-sync replica has the record (TOPIC_MIN_INSYNC_REPLICAS of them
        # at least): Faust's default, written out because idempotence requires it.
        producer_acks=-1,
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        # web_host is only the advertised name; web_bind is the address the server listens on.
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        web_port=settings.faust_web_port,
        web_in_thread=False,
    )

    @app.on_worker_init.connect
    def _install_patches(sender: faust.App, **_kwargs) -> None:
        install_worker_patches()
        produce_idempotently()

    # Otherwise RSS keeps the high-water mark of every backlog (glibc keeps freed pages).
    keep_heap_trimmed(app, settings.heap_trim_seconds)
    return app


app = create_app(get_settings())
