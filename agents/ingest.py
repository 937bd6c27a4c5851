"""The ingestion agent: publishes raw payloads, unchanged and keyed by tweet id, to the raw topic,
from the source SOURCE names (agents/sources/base.py: synthetic, x, none).
"""
from __future__ import annotations

from agents.sources.base import Source, source_for
from app.faust_app import app
from config.settings import get_settings
from app.kafka_topics import raw_topic
from tweets.oversize import for_raw_topic
from tweets.payloads import tweet_id_of

# The running source, for the worker's /counters/ and /metrics (agents/metrics.py).
running_source: Source | None = None


async def publish_raw(payload: bytes) -> None:
    """One payload to the raw topic, keyed by tweet id; one too large for it as its preview."""
    tweet_id = tweet_id_of(payload)
    value, headers = for_raw_topic(payload, get_settings().max_payload_bytes)
    await raw_topic.send(key=tweet_id.encode() if tweet_id else None, value=value, headers=headers or None)


@app.task
async def ingest() -> None:
    global running_source
    running_source = source_for(get_settings())
    await running_source.run(publish_raw)
