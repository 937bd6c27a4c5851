"""The X API's edge: Tweepy's HTTP session pointed at X_API_BASE_URL, and the bearer token.
The stream (x_stream.py) and the rules (x_rules.py) both reach X through it."""
from __future__ import annotations

import time
from typing import Any

import aiohttp
from tweepy.asynchronous import AsyncClient, AsyncStreamingClient

from agents.sources.x_spend import XUsage
from config.settings import Settings

# Where Tweepy sends every request; X_API_BASE_URL replaces it.
TWEEPY_API_ORIGIN = "https://api.twitter.com"
# X sends a keep-alive every 20 s; a connection silent for longer has stalled (Tweepy's default).
STALL_SECONDS = 21

# aiohttp reads lines of up to twice its read buffer.
LINE_BUFFER_BYTES = 4 * 1024 * 1024


class XApiSession:
    """Tweepy's aiohttp session, with requests for api.twitter.com sent to X_API_BASE_URL instead.

    Tweepy writes its host into every URL, and both its REST calls (the rules) and its stream
    connection go through its `session`, so this is the one hook that leaves the rest of Tweepy
    as it is. Its read timeout is the one Tweepy gives its own stream sessions. Its read buffer
    takes lines of up to 8 MB: with aiohttp's default a line over 512 KB crashed the connection
    and was lost, while a whole line can go to the dead letters as too large.
    """

    def __init__(self, api_base_url: str):
        self._base_url = api_base_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(enable_cleanup_closed=True),
            timeout=aiohttp.ClientTimeout(sock_read=STALL_SECONDS),
            read_bufsize=LINE_BUFFER_BYTES,
        )

    def request(self, method: str, url: str, **kwargs: Any):
        if url.startswith(TWEEPY_API_ORIGIN + "/"):
            url = self._base_url + url[len(TWEEPY_API_ORIGIN):]
        return self._session.request(method, url, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def bearer_token(settings: Settings) -> str:
    token = settings.x_bearer_token.get_secret_value() if settings.x_bearer_token else ""
    if not token:
        raise ValueError(
            "X_BEARER_TOKEN is not set: SOURCE=x and the rules CLI need the bearer token of an "
            "X API v2 app (in the environment or .env)"
        )
    return token


def api_client(settings: Settings) -> AsyncStreamingClient:
    """A Tweepy client for the rules endpoints; its session must be closed by the caller."""
    client = AsyncStreamingClient(bearer_token(settings), wait_on_rate_limit=True)
    client.session = XApiSession(settings.x_api_base_url)
    return client


async def read_usage(client: AsyncClient) -> XUsage:
    """`GET /2/usage/tweets`: the posts the project read in X's current month and its cap. Tweepy
    has no method for it; its request() still sends the token and raises on X's errors."""
    response = await client.request("GET", "/2/usage/tweets", params={"usage.fields": "cap_reset_day,project_cap,project_usage"})
    data = (await response.json())["data"]
    cap = data.get("project_cap")
    reset_day = data.get("cap_reset_day")
    return XUsage(project_usage=int(data["project_usage"]), project_cap=int(cap) if cap is not None else None,
                  cap_reset_day=int(reset_day) if reset_day is not None else None, read_at=time.time())


def rest_client(token: str, api_base_url: str) -> AsyncClient:
    """A Tweepy client for X's REST endpoints (recent search, usage) answering plain JSON dicts. It
    raises on 429 instead of sleeping: the caller decides how long to wait. Close its session."""
    client = AsyncClient(token, return_type=dict)
    client.session = XApiSession(api_base_url)
    return client
