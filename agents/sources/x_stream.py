"""The live X API v2 filtered stream (SOURCE=x), through Tweepy's AsyncStreamingClient.

Tweepy connects, splits the stream into messages, tells keep-alives apart and reconnects with
X's documented backoff (network errors: +0.25 s up to 16 s; HTTP errors: 5 s doubling up to
320 s; HTTP 429: from 60 s). `FilteredStream` adds what the lake needs: every message's bytes,
as received, to the raw topic; operational messages counted and logged instead. `XSource` is
what the ingest task runs: rules synced once, then the stream, restarted after a crash, so the
worker never stops because the stream did.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Awaitable, Callable, NoReturn

import aiohttp
import orjson
from tweepy.asynchronous import AsyncStreamingClient

from agents.sources.x_api import XApiSession, bearer_token
from agents.sources.x_rules import build_rules, describe, sync_rules
from app.settings import Settings
from tweets.payloads import tweet_id_of
from tweets.topics import load_rules

log = logging.getLogger(__name__)

Publish = Callable[[bytes], Awaitable[None]]

# What the bronze lake reads from a stream message (tweets/normalizer.py); the rest stays in `raw`.
STREAM_FIELDS: dict[str, list[str]] = {
    "tweet_fields": [
        "id", "text", "created_at", "lang", "author_id", "conversation_id", "in_reply_to_user_id",
        "referenced_tweets", "entities", "public_metrics", "source", "note_tweet",
        "edit_history_tweet_ids", "possibly_sensitive", "withheld", "attachments", "geo",
    ],
    "expansions": [
        "author_id", "referenced_tweets.id", "referenced_tweets.id.author_id",
        "attachments.media_keys", "geo.place_id", "in_reply_to_user_id", "entities.mentions.username",
    ],
    "user_fields": ["username", "name", "verified", "public_metrics", "created_at", "description", "location"],
    "media_fields": ["media_key", "type", "url", "preview_image_url", "alt_text", "duration_ms", "width", "height"],
    "place_fields": ["id", "full_name", "name", "country", "country_code", "place_type", "geo"],
}


@dataclass
class StreamCounters:
    """tweets: messages published to the raw topic; keep_alives; errors: error messages from X,
    HTTP errors and crashes; disconnects: connections lost or closed by X; reconnects:
    connections after the first; rate_limited: HTTP 429 answers."""

    tweets: int = 0
    keep_alives: int = 0
    errors: int = 0
    disconnects: int = 0
    reconnects: int = 0
    rate_limited: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _quiet_tweepy_debug() -> None:
    """Tweepy's REST client logs request headers, bearer token included, at DEBUG."""
    logging.getLogger("tweepy.asynchronous.client").setLevel(logging.INFO)


class FilteredStream(AsyncStreamingClient):
    """One Tweepy stream client: publishes each message's bytes, counts and logs the rest."""

    def __init__(self, token: str, *, publish: Publish, counters: StreamCounters, api_base_url: str):
        super().__init__(token, wait_on_rate_limit=True)
        self._api_base_url = api_base_url
        self.session = XApiSession(api_base_url)
        self._publish = publish
        self._counters = counters
        self._connected_before = False

    def reopen(self) -> None:
        """A new session after the last one closed: Tweepy closes it when its stream task ends."""
        if self.session.closed:
            self.session = XApiSession(self._api_base_url)

    async def on_data(self, raw_data: bytes) -> None:
        """The bytes of one message as X sent them (Tweepy strips only the line break)."""
        errors = None if tweet_id_of(raw_data) else _operational_errors(raw_data)
        if errors is None:
            # Anything else that is not a tweet goes on too: the normalizer dead-letters it.
            await self._publish(raw_data)
            self._counters.tweets += 1
            return
        self._counters.errors += 1
        for error in errors:
            log.warning("X stream error message: %s", _error_text(error))

    async def on_keep_alive(self) -> None:
        self._counters.keep_alives += 1
        log.debug("X stream keep-alive")

    async def on_connect(self) -> None:
        if self._connected_before:
            self._counters.reconnects += 1
            log.info("X stream reconnected (%s)", self._counters.as_dict())
        else:
            log.info("X stream connected")
        self._connected_before = True

    async def on_closed(self, resp: aiohttp.ClientResponse) -> None:
        self._counters.disconnects += 1
        log.warning("X closed the stream (HTTP %d); reconnecting", resp.status)

    async def on_connection_error(self) -> None:
        # Tweepy logs the error itself right after this call.
        self._counters.disconnects += 1
        log.warning("X stream connection lost or stalled; reconnecting")

    async def on_request_error(self, status_code: int) -> None:
        # Tweepy logs X's answer right after this call, then backs off.
        if status_code == 429:
            self._counters.rate_limited += 1
            log.warning("X stream rate limited (HTTP 429); waiting at least 60 s")
        else:
            self._counters.errors += 1
            log.error("X stream refused the connection: HTTP %d", status_code)

    async def on_exception(self, exception: Exception) -> None:
        self._counters.errors += 1
        log.error("X stream crashed: %r", exception, exc_info=exception)

    async def on_disconnect(self) -> None:
        log.info("X stream stopped (%s)", self._counters.as_dict())


def _operational_errors(raw_data: bytes) -> list | None:
    """The errors of an operational message ({"errors": [...]} without "data"), else None."""
    try:
        message = orjson.loads(raw_data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(message, dict) and "data" not in message and isinstance(message.get("errors"), list):
        return message["errors"]
    return None


def _error_text(error: object) -> str:
    if not isinstance(error, dict):
        return repr(error)
    return ": ".join(str(error[key]) for key in ("title", "disconnect_type", "detail") if key in error)


class XSource:
    """The X stream as the ingest task runs it. Missing token, or rules beyond X's limits, fail
    here at start-up; anything later is logged and the stream restarted, waiting `restart_wait`
    seconds, doubled after each restart that published nothing, up to `restart_wait_max`."""

    def __init__(
        self, settings: Settings, publish: Publish, *, restart_wait: float = 5.0, restart_wait_max: float = 320.0
    ):
        self._token = bearer_token(settings)
        self._base_url = settings.x_api_base_url
        file_rules = load_rules(settings.x_rules_path)
        self._rules = build_rules(file_rules, settings.x_max_rules)
        if set(file_rules.languages) != set(settings.language_list):
            log.warning(
                "X is asked for languages %s (%s), the lake keeps LANGUAGES=%s",
                ",".join(file_rules.languages), settings.x_rules_path, settings.languages,
            )
        self._publish = publish
        self._restart_wait = restart_wait
        self._restart_wait_max = restart_wait_max
        self.counters = StreamCounters()

    async def run(self) -> NoReturn:
        _quiet_tweepy_debug()
        log.info("X source: %d rules, stream from %s", len(self._rules), self._base_url)
        stream = FilteredStream(
            self._token, publish=self._publish, counters=self.counters, api_base_url=self._base_url
        )
        synced = False
        wait = self._restart_wait
        while True:
            stream.reopen()
            published = self.counters.tweets
            try:
                if not synced:
                    diff = await sync_rules(stream, self._rules)
                    log.info("X rules synced: %s", describe(diff)[-1])
                    synced = True
                await _stream_until_stopped(stream)
            except Exception:
                log.exception("X source: %s failed", "stream" if synced else "rules sync")
            finally:
                await stream.session.close()
            if self.counters.tweets > published:
                wait = self._restart_wait
            log.warning("X stream restarting in %.1f s", wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, self._restart_wait_max)


async def _stream_until_stopped(stream: FilteredStream) -> None:
    """Until Tweepy's stream task ends, which it does only after a crash (Tweepy reconnects after
    everything else). The task is waited for, not awaited: it swallows its own cancellation, so
    a stopping worker cancels it here and waits for it to close its connection."""
    task = stream.filter(**STREAM_FIELDS)
    try:
        await asyncio.wait({task})
    finally:
        if not task.done():
            stream.disconnect()
            await asyncio.wait({task})
