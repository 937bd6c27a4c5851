"""The live X API v2 filtered stream (SOURCE=x), through Tweepy's AsyncStreamingClient.

Tweepy connects, splits the stream into messages, tells keep-alives apart and reconnects with
X's documented backoff (network errors: +0.25 s up to 16 s; HTTP errors: 5 s doubling up to
320 s; HTTP 429: from 60 s). `FilteredStream` adds what the lake needs: every message's bytes,
as received, to the raw topic; operational messages counted and logged instead; every post read
counted against the month's spend. `XSource` is what the ingest task runs: rules synced once,
then the stream, restarted after a crash; beside it the gap fill after each reconnect
(x_gap.py), X's usage endpoint on a timer, and the monthly cap (x_spend.py).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable, NoReturn

import aiohttp
import orjson
from tweepy.asynchronous import AsyncStreamingClient

from agents.sources.base import Publish, Source, register
from agents.sources.x_access import x_limits
from agents.sources.x_api import XApiSession, bearer_token, read_usage, rest_client
from agents.sources.x_gap import Gap, GapFiller
from agents.sources.x_rules import build_rules, describe, sync_rules
from agents.sources.x_spend import LedgerFile, SpendLedger
from config.settings import Settings
from tweets.payloads import tweet_id_of
from tweets.topics import load_rules

log = logging.getLogger(__name__)

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
    """tweets: messages published to the raw topic from the stream; keep_alives; errors: error
    messages from X, HTTP errors and crashes; disconnects: connections lost or closed by X;
    reconnects: connections after the first; rate_limited: HTTP 429 answers. gaps: gaps filled
    (after a reconnect or a restart), gap_seconds: their length, gap_recovered: posts recent search
    returned for them, gap_seconds_lost: seconds beyond search's 7 days, gaps_incomplete: fills cut
    short (X refused a page, or the cap). usage_errors: failed reads of X's usage endpoint.
    capped: 1 while the monthly cap keeps the stream stopped; cap_stops: times it stopped it."""

    tweets: int = 0
    keep_alives: int = 0
    errors: int = 0
    disconnects: int = 0
    reconnects: int = 0
    rate_limited: int = 0
    gaps: int = 0
    gap_seconds: float = 0.0
    gap_recovered: int = 0
    gap_seconds_lost: float = 0.0
    gaps_incomplete: int = 0
    usage_errors: int = 0
    capped: int = 0
    cap_stops: int = 0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _quiet_tweepy_debug() -> None:
    """Tweepy's REST client logs request headers, bearer token included, at DEBUG."""
    logging.getLogger("tweepy.asynchronous.client").setLevel(logging.INFO)


class FilteredStream(AsyncStreamingClient):
    """One Tweepy stream client: publishes each message's bytes, counts and logs the rest."""

    def __init__(self, token: str, *, publish: Publish, counters: StreamCounters, api_base_url: str,
                 ledger: SpendLedger, allowed: Callable[[], int | None], on_gap: Callable[[Gap], None]):
        super().__init__(token, wait_on_rate_limit=True)
        self._api_base_url = api_base_url
        self.session = XApiSession(api_base_url)
        self._publish = publish
        self._counters = counters
        self._ledger = ledger
        self._allowed = allowed
        self._on_gap = on_gap
        self._connected_before = False

    def reopen(self) -> None:
        """A new session after the last one closed: Tweepy closes it when its stream task ends."""
        if self.session.closed:
            self.session = XApiSession(self._api_base_url)

    async def on_data(self, raw_data: bytes) -> None:
        """The bytes of one message as X sent them (Tweepy strips only the line break)."""
        now = time.time()
        self._ledger.alive_at = now
        errors = None if tweet_id_of(raw_data) else _operational_errors(raw_data)
        if errors is not None:
            self._counters.errors += 1
            for error in errors:
                log.warning("X stream error message: %s", _error_text(error))
            return
        if self._allowed() == 0:
            # Sent by X before the cap's disconnect took effect: paid for, not published.
            self._ledger.over_cap += 1
            return
        # Anything else that is not a tweet goes on too: the normalizer dead-letters it.
        self._ledger.count("stream", _rule_tags(raw_data), now)
        await self._publish(raw_data)
        self._counters.tweets += 1
        if self._allowed() == 0:
            log.warning("X_MONTHLY_POST_CAP reached: %d posts read in %s; stopping the stream",
                        self._ledger.month_total(), self._ledger.month)
            self.disconnect()

    async def on_keep_alive(self) -> None:
        self._ledger.alive_at = time.time()
        self._counters.keep_alives += 1
        log.debug("X stream keep-alive")

    async def on_connect(self) -> None:
        if self._connected_before:
            self._counters.reconnects += 1
            log.info("X stream reconnected (%s)", self._counters.as_dict())
        else:
            log.info("X stream connected")
        self._connected_before = True
        now = time.time()
        if self._ledger.alive_at is not None:
            self._on_gap(Gap(self._ledger.alive_at, now))
        self._ledger.alive_at = now

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


def _rule_tags(raw_data: bytes) -> list[str]:
    """The tags of the rules a stream message matched."""
    try:
        rules = orjson.loads(raw_data).get("matching_rules") or ()
        return [str(rule.get("tag")) for rule in rules if isinstance(rule, dict)]
    except (orjson.JSONDecodeError, AttributeError):
        return []


def _error_text(error: object) -> str:
    if not isinstance(error, dict):
        return repr(error)
    return ": ".join(str(error[key]) for key in ("title", "disconnect_type", "detail") if key in error)


@register("x")
class XSource(Source):
    """SOURCE=x: the X stream as the ingest task runs it. Missing token, or rules beyond the access
    level's limits, fail here at start-up; anything later is logged and the stream restarted,
    waiting `restart_wait` seconds, doubled after each restart that published nothing, up to
    `restart_wait_max`. `cap` gives the monthly cap, asked again every X_CAP_CHECK_SECONDS."""

    def __init__(
        self, settings: Settings, *, restart_wait: float = 5.0, restart_wait_max: float = 320.0,
        cap: Callable[[], int | None] | None = None,
    ):
        self._token = bearer_token(settings)
        self._settings = settings
        self._base_url = settings.x_api_base_url
        file_rules = load_rules(settings.x_rules_path)
        self.limits = x_limits(settings)
        self._rules = build_rules(file_rules, self.limits)
        if set(file_rules.languages) != set(settings.language_list):
            log.warning(
                "X is asked for languages %s (%s), the lake keeps LANGUAGES=%s",
                ",".join(file_rules.languages), settings.x_rules_path, settings.languages,
            )
        self._publish: Publish | None = None
        self._restart_wait = restart_wait
        self._restart_wait_max = restart_wait_max
        self._read_cap = cap or (lambda: settings.x_monthly_post_cap)
        self.cap = self._read_cap()
        self.counters = StreamCounters()
        self._ledger_file = LedgerFile(settings.faust_data_dir / "x_stream.json")
        self.ledger = self._ledger_file.load()
        self._gaps: asyncio.Queue[Gap] = asyncio.Queue()

    @classmethod
    def from_settings(cls, settings: Settings) -> "XSource":
        # The cap is read again from the environment and .env, so raising it needs no restart.
        return cls(settings, cap=lambda: Settings().x_monthly_post_cap)

    def report(self) -> dict:
        """The stream's counters and this month's reads, spend and cap, as /counters/ shows them."""
        self.ledger.roll(time.time())
        ledger = self.ledger.as_dict()
        return {
            "stream": self.counters.as_dict(),
            "access_level": self._settings.x_access_level,
            "month": ledger["month"],
            "posts_read": ledger["reads"],
            "posts_read_month": self.ledger.month_total(),
            "spend_month": round(self.ledger.cost(self._settings.x_cost_per_post_read), 4),
            "cost_per_post_read": self._settings.x_cost_per_post_read,
            "monthly_post_cap": self.cap,
            "posts_over_cap": ledger["over_cap"],
            "usage": ledger["usage"],
        }

    def allowed(self) -> int | None:
        """Posts that may still be read this month; None without a cap."""
        self.ledger.roll(time.time())
        return self.ledger.remaining(self.cap)

    async def run(self, publish: Publish) -> NoReturn:
        self._publish = publish
        _quiet_tweepy_debug()
        log.info("X source: %d rules, stream from %s (X_ACCESS_LEVEL=%s: up to %d rules of %d characters, "
                 "%d connection(s))", len(self._rules), self._base_url, self._settings.x_access_level,
                 self.limits.rules, self.limits.rule_length, self.limits.connections)
        helpers = [self._keep_ledger(), self._check_cap()]
        if self._settings.x_gap_fill:
            helpers.append(self._fill_gaps())
        if self._settings.x_usage_poll_seconds:
            helpers.append(self._poll_usage())
        tasks = [asyncio.create_task(helper) for helper in helpers]
        try:
            await self._stream_forever()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._ledger_file.save(self.ledger)

    async def _stream_forever(self) -> NoReturn:
        stream = FilteredStream(
            self._token, publish=self._publish, counters=self.counters, api_base_url=self._base_url,
            ledger=self.ledger, allowed=self.allowed, on_gap=self._gaps.put_nowait,
        )
        synced = False
        wait = self._restart_wait
        while True:
            await self._wait_below_cap()
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
            if self.allowed() == 0:
                continue
            if self.counters.tweets > published:
                wait = self._restart_wait
            log.warning("X stream restarting in %.1f s", wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, self._restart_wait_max)

    async def _wait_below_cap(self) -> None:
        """While the month's reads are at the cap: nothing is read, not even a gap. The time spent
        here is not a gap to fill later: the cap said not to read it."""
        if self.allowed() != 0:
            return
        self.counters.capped, self.counters.cap_stops = 1, self.counters.cap_stops + 1
        log.warning("X stream stopped at X_MONTHLY_POST_CAP=%d (%d posts read in %s); the rest of the pipeline "
                    "keeps running. The stream resumes next month or when the cap rises (checked every %.0f s)",
                    self.cap, self.ledger.month_total(), self.ledger.month, self._settings.x_cap_check_seconds)
        while self.allowed() == 0:
            await asyncio.sleep(self._settings.x_cap_check_seconds)
        self.ledger.alive_at = None
        self.counters.capped = 0
        log.info("X stream resumes: %s posts may be read this month (cap %s)", self.allowed(), self.cap)

    async def _check_cap(self) -> NoReturn:
        while True:
            await asyncio.sleep(self._settings.x_cap_check_seconds)
            try:
                self.cap = self._read_cap()
            except Exception as error:  # a .env being edited: keep the last cap
                log.warning("X_MONTHLY_POST_CAP could not be read again (%s); keeping %s", error, self.cap)

    async def _keep_ledger(self, every: float = 5.0) -> NoReturn:
        while True:
            await asyncio.sleep(every)
            self._ledger_file.save(self.ledger)

    async def _fill_gaps(self) -> NoReturn:
        """One gap at a time, beside the stream: X drops a stream that is read too slowly."""
        client = rest_client(self._token, self._base_url)
        filler = GapFiller(client, STREAM_FIELDS, self._publish_recovered, self.allowed)
        try:
            while True:
                gap = await self._gaps.get()
                self.counters.gaps += 1
                self.counters.gap_seconds += gap.end - gap.start
                gap = Gap(gap.start - self._settings.x_gap_fill_overlap_seconds, gap.end)
                log.info("X gap fill: searching %.0f s of posts for %d rules", gap.end - gap.start, len(self._rules))
                try:
                    outcome = await filler.fill(gap, self._rules)
                except Exception:
                    log.exception("X gap fill failed")
                    self.counters.gaps_incomplete += 1
                    continue
                self.counters.gap_seconds_lost += outcome.seconds_lost
                if outcome.seconds_lost or not outcome.complete:
                    self.counters.gaps_incomplete += 1
                log.info("X gap fill: %d posts recovered%s", outcome.recovered, "" if outcome.complete else " (incomplete)")
        finally:
            await client.session.close()

    async def _publish_recovered(self, message: bytes, tag: str) -> None:
        self.ledger.count("gap_fill", [tag], time.time())
        await self._publish(message)
        self.counters.gap_recovered += 1

    async def _poll_usage(self) -> NoReturn:
        """X's own count of the project's reads; an error is counted and the next poll tried."""
        client = rest_client(self._token, self._base_url)
        try:
            while True:
                try:
                    self.ledger.usage = await read_usage(client)
                except Exception as error:
                    self.counters.usage_errors += 1
                    log.warning("X usage endpoint unavailable: %s", error)
                await asyncio.sleep(self._settings.x_usage_poll_seconds)
        finally:
            await client.session.close()


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
