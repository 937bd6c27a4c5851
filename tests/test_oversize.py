"""Payloads over the size limit: published as a preview with their true size, recognised by the
worker from that header, and kept as a preview in the dead letter."""
from __future__ import annotations

from tweets.oversize import HEADER, PREVIEW_BYTES, dead_letter_bytes, for_raw_topic, original_size


def test_a_payload_within_the_limit_is_published_as_it_is():
    payload = b'{"data": {"id": "1"}}'
    assert for_raw_topic(payload, 512_000) == (payload, [])
    assert original_size([]) is None and original_size(None) is None


def test_a_payload_over_the_limit_becomes_its_preview_with_its_true_size():
    payload = b"x" * 3_145_951
    value, headers = for_raw_topic(payload, 512_000)
    assert value == payload[:PREVIEW_BYTES] and len(value) == 65536
    assert headers == [(HEADER, b"3145951")]
    assert original_size(headers) == 3_145_951
    assert original_size(dict(headers)) == 3_145_951  # clients that give headers as a mapping
    assert original_size([("other", b"1"), (HEADER, b"not a number")]) is None


def test_a_dead_letter_keeps_a_payload_whole_unless_it_is_over_the_limit():
    assert dead_letter_bytes(b"y" * 1000, 512_000) == b"y" * 1000
    assert dead_letter_bytes(b"y" * 600_000, 512_000) == b"y" * PREVIEW_BYTES
