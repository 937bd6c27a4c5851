"""The ingestion agent: publishes raw payloads, unchanged and keyed by tweet id, to the raw topic.

The source is chosen by the SOURCE setting: `synthetic` (the default, no credentials), `x` (the
live X API v2 filtered stream) or `none` (only backfills and other producers feed the raw topic).
"""
from __future__ import annotations

import asyncio
import logging
import time

from tweets.oversize import for_raw_topic
from tweets.payloads import tweet_id_of
from agents.sources.synthetic import SyntheticTweets
from agents.sources.x_stream import XSource
from app.faust_app import app
from app.settings import Settings, get_settings
from app.topics import raw_topic

log = logging.getLogger(__name__)

# The running X source, for the worker's /counters/ and /metrics (None unless SOURCE=x).
x_source: XSource | None = None


async def publish_raw(payload: bytes) -> None:
    """One payload to the raw topic, keyed by tweet id; one too large for it as its preview."""
    tweet_id = tweet_id_of(payload)
    value, headers = for_raw_topic(payload, get_settings().max_payload_bytes)
    await raw_topic.send(key=tweet_id.encode() if tweet_id else None, value=value, headers=headers or None)


async def publish_synthetic(rate: float, seed: int | None, limit: int) -> int:
    """Publish generated stream messages at `rate` per second; return how many were sent."""
    tweets = SyntheticTweets(seed=seed)
    sent = 0
    started = time.monotonic()
    while not limit or sent < limit:
        await publish_raw(tweets.message())
        sent += 1
        # Pace against the start time so small sleeps don't accumulate drift.
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)
        if sent % 10_000 == 0:
            log.info("synthetic source: %d tweets published", sent)
    log.info("synthetic source: limit of %d tweets reached", limit)
    return sent


@app.task
async def ingest() -> None:
    settings = get_settings()
    if settings.source == "synthetic":
        log.info("synthetic source: %.0f tweets/s (seed %s)", settings.synthetic_rate, settings.synthetic_seed)
        await publish_synthetic(settings.synthetic_rate, settings.synthetic_seed, settings.synthetic_limit)
    elif settings.source == "x":
        global x_source
        # The cap is read again from the environment and .env, so raising it needs no restart.
        x_source = XSource(settings, publish_raw, cap=lambda: Settings().x_monthly_post_cap)
        await x_source.run()
    else:
        log.info("SOURCE=none: no built-in source; the raw topic is fed by backfills or other producers")
