"""Fill the stream's gaps from recent search: X's recovery features (backfill_minutes, redundant
connections) are Enterprise-only, so everyone else asks `GET /2/tweets/search/recent` for what was
posted while the stream was down. What is searched, what is lost and how search differs from the
stream: docs/x-stream.md.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable, Iterable

import aiohttp
import orjson
from tweepy import StreamRule, TooManyRequests, TweepyException
from tweepy.asynchronous import AsyncClient

log = logging.getLogger(__name__)

RECENT_SEARCH_SECONDS = 7 * 24 * 3600
# X refuses an end_time less than 10 s before the request; a start_time at the very edge of the
# 7 days fails by the time the request arrives.
END_TIME_MARGIN = 10.0
START_TIME_MARGIN = 60.0
PAGE_MAX, PAGE_MIN = 100, 10
PAGE_ATTEMPTS = 3


@dataclass(frozen=True)
class Gap:
    start: float  # seconds since the epoch
    end: float


@dataclass
class GapOutcome:
    recovered: int = 0
    seconds_lost: float = 0.0  # beyond recent search's 7 days
    complete: bool = True  # False: X refused a page, or the monthly cap stopped the fill


def x_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def searchable(gap: Gap, now: float) -> tuple[Gap | None, float]:
    """The part of the gap recent search can still answer, and the seconds it cannot."""
    earliest = now - RECENT_SEARCH_SECONDS + START_TIME_MARGIN
    lost = max(0.0, min(gap.end, earliest) - gap.start)
    start = max(gap.start, earliest)
    return (Gap(start, gap.end) if gap.end - start >= 1 else None), lost


def stream_messages(page: dict, rule: StreamRule) -> Iterable[bytes]:
    """A search page as the stream would have sent its posts: one message per post, with only the
    includes that post refers to (a page's includes serve all its posts)."""
    includes = page.get("includes") or {}
    by_key = {
        "users": {user.get("id"): user for user in includes.get("users", ())},
        "usernames": {user.get("username"): user for user in includes.get("users", ())},
        "tweets": {tweet.get("id"): tweet for tweet in includes.get("tweets", ())},
        "media": {media.get("media_key"): media for media in includes.get("media", ())},
        "places": {place.get("id"): place for place in includes.get("places", ())},
    }
    for tweet in page.get("data") or ():
        referenced = [by_key["tweets"].get(ref.get("id")) for ref in tweet.get("referenced_tweets", ())]
        referenced = [ref for ref in referenced if ref]
        user_ids = [tweet.get("author_id"), tweet.get("in_reply_to_user_id"), *(r.get("author_id") for r in referenced)]
        users = [by_key["users"].get(user_id) for user_id in user_ids]
        users += [by_key["usernames"].get(m.get("username")) for m in (tweet.get("entities") or {}).get("mentions", ())]
        own = {
            "users": _unique(users, "id"),
            "tweets": referenced,
            "media": [by_key["media"].get(key) for key in (tweet.get("attachments") or {}).get("media_keys", ())],
            "places": [by_key["places"].get((tweet.get("geo") or {}).get("place_id"))],
        }
        matched = {"id": rule.id, "tag": rule.tag} if rule.id else {"tag": rule.tag}
        message = {"data": tweet, "matching_rules": [matched]}
        own = {name: [item for item in items if item] for name, items in own.items()}
        if any(own.values()):
            message["includes"] = {name: items for name, items in own.items() if items}
        yield orjson.dumps(message)


def _unique(items: list[dict | None], key: str) -> list[dict]:
    seen: dict = {}
    for item in items:
        if item and item.get(key) not in seen:
            seen[item.get(key)] = item
    return list(seen.values())


class GapFiller:
    """Searches one gap, rule by rule and page by page, within the posts the cap still allows."""

    def __init__(self, client: AsyncClient, fields: dict[str, list[str]],
                 publish: Callable[[bytes, str], Awaitable[None]], allowed: Callable[[], int | None],
                 page_wait: float = 5.0):
        self.client = client
        self.fields = fields
        self.publish = publish
        self.allowed = allowed
        self.page_wait = page_wait

    async def fill(self, gap: Gap, rules: Iterable[StreamRule], now: float | None = None) -> GapOutcome:
        searched, lost = searchable(gap, time.time() if now is None else now)
        outcome = GapOutcome(seconds_lost=lost)
        if lost:
            log.warning("X gap fill: %.0f s of the gap (from %s) lie beyond recent search's 7 days: the posts "
                        "of that time are lost", lost, x_time(gap.start))
        if searched is None:
            return outcome
        # Whole seconds: X's end_time excludes its second, so the reconnect's second is searched whole.
        searched = Gap(math.floor(searched.start), math.ceil(searched.end))
        # X answers only up to END_TIME_MARGIN before the request.
        await asyncio.sleep(max(0.0, searched.end + END_TIME_MARGIN - time.time()))
        for rule in rules:
            if not await self._fill_rule(searched, rule, outcome):
                outcome.complete = False
                break
        return outcome

    async def _fill_rule(self, gap: Gap, rule: StreamRule, outcome: GapOutcome) -> bool:
        next_token = None
        while True:
            allowed = self.allowed()
            if allowed is not None and allowed < PAGE_MIN:
                log.warning("X gap fill stopped: X_MONTHLY_POST_CAP leaves %d posts this month, less than a page", allowed)
                return False
            page = await self._page(gap, rule, min(PAGE_MAX, allowed or PAGE_MAX), next_token)
            if page is None:
                return False
            for message in stream_messages(page, rule):
                await self.publish(message, rule.tag)
                outcome.recovered += 1
            next_token = (page.get("meta") or {}).get("next_token")
            if not next_token:
                return True

    async def _page(self, gap: Gap, rule: StreamRule, size: int, next_token: str | None) -> dict | None:
        for attempt in range(1, PAGE_ATTEMPTS + 1):
            try:
                return await self.client.search_recent_tweets(
                    rule.value, start_time=x_time(gap.start), end_time=x_time(gap.end), max_results=size,
                    next_token=next_token, **self.fields,
                )
            except TooManyRequests as error:
                wait = max(1.0, (error.reset_time or 0) - time.time()) if error.reset_time else 60.0
                log.warning("X gap fill: recent search rate limited; waiting %.0f s", wait)
                await asyncio.sleep(wait)
            except (TweepyException, aiohttp.ClientError, OSError) as error:
                log.warning("X gap fill: recent search for rule %r failed (attempt %d of %d): %s",
                            rule.tag, attempt, PAGE_ATTEMPTS, error)
                await asyncio.sleep(self.page_wait * attempt)
        log.error("X gap fill: gave up on rule %r for %s..%s; its posts of that time are missing",
                  rule.tag, x_time(gap.start), x_time(gap.end))
        return None
