"""Payloads too large for the raw topic: what a producer publishes instead, and how the worker
recognises it.

Kafka refuses a record over its size limit (1 MB by default), and one such line used to stop a
whole backfill. A producer (the backfill, the live stream) therefore publishes the first
`PREVIEW_BYTES` of a payload over MAX_PAYLOAD_BYTES (a setting) with a header that carries its true size;
the worker turns that record into a `too_large` dead letter, counted like every other rejection.
"""
from __future__ import annotations

PREVIEW_BYTES = 64 * 1024
HEADER = "tweetlake-original-bytes"


def for_raw_topic(payload: bytes, max_payload_bytes: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers to publish: the payload itself, or its preview and true size."""
    if len(payload) <= max_payload_bytes:
        return payload, []
    return payload[:PREVIEW_BYTES], [(HEADER, str(len(payload)).encode())]


def original_size(headers) -> int | None:
    """The true size a producer recorded for a cut payload; None for a whole one. `headers` as
    clients give them: a list of (name, value) pairs, a mapping, or None."""
    if not headers:
        return None
    pairs = headers.items() if hasattr(headers, "items") else headers
    for name, value in pairs:
        if name == HEADER and value:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def dead_letter_bytes(payload: bytes, max_payload_bytes: int) -> bytes:
    """What a dead letter keeps of a payload: all of it, unless it is over the limit (its
    base64 would not fit the dead-letter topic either)."""
    return payload if len(payload) <= max_payload_bytes else payload[:PREVIEW_BYTES]
