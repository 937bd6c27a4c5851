"""A fake X API v2 on 127.0.0.1 (filtered stream, its rules, recent search, usage), for Tweepy
to talk to over real HTTP.

It runs its own event loop in a thread, so that in-process tests and a worker subprocess can
both use it. Every request is recorded. Stream connections follow `connections` in order (an
HTTP error, or messages then a close by the server); once those are used up, a connection gets
keep-alives until the client leaves. The first `failing_rule_reads` reads of the rules fail (503).
Recent search finds the `posted` tweets of the rule whose value is the query, created within
start_time..end_time, newest first, `page_size` a page. The usage endpoint answers each status
of `usage_failures` in turn, then `usage`.
"""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.bronze_files import SNOWFLAKE_EPOCH_MS, snowflake

RULES_PATH = "/2/tweets/search/stream/rules"
STREAM_PATH = "/2/tweets/search/stream"
SEARCH_PATH = "/2/tweets/search/recent"
USAGE_PATH = "/2/usage/tweets"
KEEP_ALIVE = b"\r\n"


@dataclass(frozen=True)
class Refuse:
    """Answer a stream connection with an HTTP error."""

    status: int
    body: dict = field(default_factory=lambda: {"title": "ConnectionException", "detail": "refused by the fake"})


@dataclass(frozen=True)
class Send:
    """Answer a stream connection with these chunks (messages end in \\r\\n), then `end` it:
    "close" (X ends the response), "abort" (the connection drops mid-response) or "hold"
    (keep-alives until the client leaves)."""

    chunks: tuple[bytes, ...]
    end: Literal["close", "abort", "hold"] = "close"
    # Posts made on X as the connection ends (so created while the client is away): each a tuple
    # of the rule tags it matches.
    posts_at_end: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: object
    authorization: str | None


class FakeXApi:
    def __init__(
        self, connections: list[Refuse | Send] = (), rules: list[dict] = (), refused_values: set[str] = frozenset(),
        failing_rule_reads: int = 0, posted: list[tuple[dict, str]] = (), page_size: int = 100,
        usage: dict | None = None, usage_failures: list[int] = (),
    ):
        self.connections = list(connections)
        self.posted = list(posted)
        self.page_size = page_size
        self.usage = usage
        self.usage_failures = list(usage_failures)
        self.rules = {rule["id"]: rule for rule in rules}
        self.refused_values = refused_values
        self.failing_rule_reads = failing_rule_reads
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1000)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: TestServer | None = None
        self._stopping: asyncio.Event | None = None
        self.base_url = ""

    def __enter__(self) -> "FakeXApi":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def made(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_get(RULES_PATH, self._get_rules)
        app.router.add_post(RULES_PATH, self._post_rules)
        app.router.add_get(STREAM_PATH, self._stream)
        app.router.add_get(SEARCH_PATH, self._search)
        app.router.add_get(USAGE_PATH, self._usage)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server(shutdown_timeout=1.0)
        self.base_url = str(self._server.make_url("")).rstrip("/")

    async def _stop(self) -> None:
        self._stopping.set()
        await self._server.close()

    async def _record(self, request: web.Request) -> object:
        body = await request.json() if request.can_read_body else None
        self.requests.append(Recorded(
            request.method, request.path, dict(request.query), body, request.headers.get("Authorization"),
        ))
        return body

    async def _get_rules(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.failing_rule_reads:
            self.failing_rule_reads -= 1
            return web.json_response({"title": "Service Unavailable", "detail": "try again"}, status=503)
        rules = list(self.rules.values())
        answer: dict = {"meta": {"sent": "2024-05-01T12:00:00.000Z", "result_count": len(rules)}}
        if rules:
            answer["data"] = rules
        return web.json_response(answer)

    async def _post_rules(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        if "delete" in body:
            ids = body["delete"]["ids"]
            deleted = [rule_id for rule_id in ids if self.rules.pop(rule_id, None)]
            summary = {"deleted": len(deleted), "not_deleted": len(ids) - len(deleted)}
            return web.json_response({"meta": {"sent": "2024-05-01T12:00:00.000Z", "summary": summary}})
        created, errors = [], []
        for rule in body["add"]:
            if rule["value"] in self.refused_values:
                errors.append({"value": rule["value"], "details": ["Reference to invalid operator 'nope'"],
                               "title": "Invalid Rule", "type": "https://api.twitter.com/2/problems/invalid-rules"})
                continue
            rule = {"id": str(next(self._ids)), **rule}
            self.rules[rule["id"]] = rule
            created.append(rule)
        answer: dict = {"meta": {"sent": "2024-05-01T12:00:00.000Z", "summary": {
            "created": len(created), "not_created": len(errors), "valid": len(created), "invalid": len(errors)}}}
        if created:
            answer["data"] = created
        if errors:
            answer["errors"] = errors
        return web.json_response(answer, status=201)

    async def _search(self, request: web.Request) -> web.Response:
        await self._record(request)
        query = request.query
        size = int(query.get("max_results", 10))
        if not 10 <= size <= 100:
            return web.json_response({"title": "Invalid Request", "detail": "max_results: 10 to 100"}, status=400)
        tags = {rule["value"]: rule["tag"] for rule in self.rules.values()}
        if query["query"] not in tags:
            return web.json_response({"meta": {"result_count": 0}})
        start, end = (x_seconds(query[name]) for name in ("start_time", "end_time"))
        found = sorted((tweet for tweet, tag in self.posted
                        if tag == tags[query["query"]] and start <= created_seconds(tweet["id"]) < end),
                       key=lambda tweet: int(tweet["id"]), reverse=True)
        offset = int(query.get("next_token", 0))
        page = found[offset:offset + min(size, self.page_size)]
        meta: dict = {"result_count": len(page)}
        if offset + len(page) < len(found):
            meta["next_token"] = str(offset + len(page))
        answer: dict = {"meta": meta}
        if page:
            answer["data"] = page
            answer["includes"] = {"users": [{"id": "2244994945", "name": "X Dev", "username": "XDevelopers"}]}
        return web.json_response(answer)

    async def _usage(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.usage_failures:
            status = self.usage_failures.pop(0)
            return web.json_response({"title": "Unavailable", "detail": f"fake {status}"}, status=status)
        if self.usage is None:
            return web.json_response({"title": "Not Found", "detail": "no usage"}, status=404)
        return web.json_response({"data": self.usage})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        script = self.connections.pop(0) if self.connections else None
        if isinstance(script, Refuse):
            return web.Response(status=script.status, body=orjson.dumps(script.body), content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
        await response.prepare(request)
        if isinstance(script, Send):
            for chunk in script.chunks:
                await response.write(chunk)
                await asyncio.sleep(0.005)
            for sequence, tags in enumerate(script.posts_at_end):
                tweet = post(snowflake_at(time.time(), sequence))
                self.posted += [(tweet, tag) for tag in tags]
            if script.end == "close":
                await response.write_eof()
                return response
            if script.end == "abort":
                request.transport.close()
                return response
        while not self._stopping.is_set():
            await response.write(KEEP_ALIVE)
            try:
                await asyncio.wait_for(self._stopping.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
        return response


def snowflake_time(tweet_id: str) -> str:
    """The creation time an X id carries (ms since X's epoch in its upper bits), as X writes it."""
    ms = (int(tweet_id) >> 22) + SNOWFLAKE_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def created_seconds(tweet_id: str) -> float:
    return ((int(tweet_id) >> 22) + SNOWFLAKE_EPOCH_MS) / 1000


def snowflake_at(seconds: float, sequence: int = 0) -> str:
    """An X id for a post created at `seconds` since the epoch."""
    return snowflake(datetime.fromtimestamp(seconds, timezone.utc), sequence)


def x_seconds(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def post(tweet_id: str, text: str = "Gradient boosting beats deep learning on tabular data") -> dict:
    """A post as recent search returns it (the fields the stream asks for)."""
    return orjson.loads(message(tweet_id, text))["data"]


def message(tweet_id: str, text: str = "Fine-tuning a language model with PyTorch") -> bytes:
    """A filtered-stream message as X sends it: the tweet, its includes, the rules it matched."""
    return orjson.dumps({
        "data": {
            "id": tweet_id, "text": text, "created_at": snowflake_time(tweet_id), "lang": "en",
            "author_id": "2244994945", "conversation_id": tweet_id, "edit_history_tweet_ids": [tweet_id],
        },
        "includes": {"users": [{"id": "2244994945", "name": "X Dev", "username": "XDevelopers"}]},
        "matching_rules": [{"id": "1001", "tag": "machine_learning"}],
    })


# X's own formatting is not orjson's: spaces, escaped and raw non-ASCII. Bytes must pass as they are.
ODDLY_FORMATTED = (
    b'{ "matching_rules": [{"id": "1002", "tag": "ai"}], "data": {"text": "AI caf\\u00e9 \xe2\x98\x95 #AI",'
    b' "id": "1790000000000000002", "lang": "en", "created_at": "2024-05-13T12:43:51.248Z"} }'
)
OPERATIONAL_DISCONNECT = orjson.dumps({"errors": [{
    "title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect",
    "detail": "This stream has been disconnected upstream for operational reasons.",
    "type": "https://api.twitter.com/2/problems/operational-disconnect",
}]})


def lines(*messages: bytes) -> tuple[bytes, ...]:
    """Messages as stream chunks: each followed by \\r\\n."""
    return tuple(m + b"\r\n" for m in messages)
