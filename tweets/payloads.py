"""What a raw message is: an X API v2 filtered-stream message, a bare v2 tweet, a v1.1 status, or
not a tweet at all (stream errors, keep-alives, anything else).

Only shapes are looked at here; mapping fields onto the bronze row is tweets/normalizer.py.
"""
from __future__ import annotations

from typing import Literal

import orjson

PayloadFormat = Literal["v2_stream", "v2_tweet", "v1.1"]

# Fields only v1.1 status objects have (X renamed or moved all of them in v2).
_V1_MARKERS = ("id_str", "user", "full_text", "extended_tweet")


def detect_format(obj: object) -> PayloadFormat | None:
    """The payload's shape from its top-level keys; None when it is not a tweet.

    A v2 stream message wraps the tweet as {"data": {...}, "includes": ..., "matching_rules": ...};
    a bare v2 tweet has "id" and "text" but none of v1.1's fields. A stream error message
    ({"errors": [...]} without "data") is operational, not a tweet.
    """
    if not isinstance(obj, dict):
        return None
    if "data" in obj:
        return "v2_stream" if isinstance(obj["data"], dict) else None
    if any(marker in obj for marker in _V1_MARKERS):
        return "v1.1"
    if "id" in obj and "text" in obj:
        return "v2_tweet"
    return None


def tweet_of(obj: dict, payload_format: PayloadFormat) -> dict:
    """The tweet object itself: the stream message's "data", else the payload."""
    return obj["data"] if payload_format == "v2_stream" else obj


def as_id(value: object) -> str | None:
    """An X id as a string of digits. v2 sends strings, v1.1 numbers (use its *_str twins first)."""
    if isinstance(value, str):
        return value if value.isdigit() and value.isascii() else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return None


def id_of(tweet: dict, payload_format: PayloadFormat) -> str | None:
    if payload_format == "v1.1":
        return as_id(tweet.get("id_str")) or as_id(tweet.get("id"))
    return as_id(tweet.get("id"))


def tweet_id_of(payload: bytes) -> str | None:
    """The tweet id to key a raw message by; None for anything that is not a tweet.

    Parses the whole payload: ids also occur in nested objects (user, retweeted_status), and key
    order is not guaranteed, so scanning for the first "id" could pick the wrong one.
    """
    try:
        obj = orjson.loads(payload)
    except (orjson.JSONDecodeError, TypeError):
        return None
    payload_format = detect_format(obj)
    if payload_format is None:
        return None
    return id_of(tweet_of(obj, payload_format), payload_format)
