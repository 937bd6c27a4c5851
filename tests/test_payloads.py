"""Recognising payload shapes and keying raw messages by tweet id."""
from __future__ import annotations

import orjson
import pytest

from tweets.payloads import as_id, detect_format, tweet_id_of
from agents.sources.synthetic import SyntheticTweets

V2_TWEET = {"id": "1500000000000000001", "text": "hello", "edit_history_tweet_ids": ["1500000000000000001"]}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"data": V2_TWEET, "matching_rules": [{"id": "1", "tag": "ai"}]}, "v2_stream"),
        ({"data": V2_TWEET, "includes": {}, "errors": [{"title": "Not Found Error"}]}, "v2_stream"),
        ({"data": {}}, "v2_stream"),
        (V2_TWEET, "v2_tweet"),
        ({"text": "hi", "author_id": "12", "id": "1500000000000000001"}, "v2_tweet"),
        ({"id": 1, "id_str": "1", "text": "hi"}, "v1.1"),
        ({"user": {"id_str": "2"}, "full_text": "hi"}, "v1.1"),
        ({"id": 1, "text": "hi", "extended_tweet": {"full_text": "hi"}}, "v1.1"),
        ({"errors": [{"title": "operational-disconnect"}]}, None),
        ({"data": [V2_TWEET]}, None),
        ({"id": "1"}, None),
        ({}, None),
        ([V2_TWEET], None),
        ("tweet", None),
        (None, None),
    ],
)
def test_detect_format(obj, expected):
    assert detect_format(obj) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (orjson.dumps({"data": V2_TWEET}), "1500000000000000001"),
        (orjson.dumps(V2_TWEET), "1500000000000000001"),
        (b'{"user": {"id_str": "7", "id": 7}, "id_str": "1246751119155449999", "id": 1}', "1246751119155449999"),
        (b'{"id": 1246751119155449999, "text": "numbers only", "user": {}}', "1246751119155449999"),
        (b'{"retweeted_status": {"id_str": "5"}, "id_str": "6", "text": "RT"}', "6"),
        (b'{"data": {"id": "not-a-number", "text": "x"}}', None),
        (b'{"errors": [{"title": "operational-disconnect"}]}', None),
        (b"\r\n", None),
        (b"", None),
        (b"<html>503</html>", None),
        (b'{"data": {"id": "15', None),
        (b'{"data": {"id": "15\xff"}}', None),
    ],
)
def test_tweet_id_of(payload, expected):
    assert tweet_id_of(payload) == expected


def test_tweet_id_of_synthetic_messages_is_the_data_id():
    for message in SyntheticTweets(seed=3, malformed_share=0).messages(200):
        assert tweet_id_of(message) == orjson.loads(message)["data"]["id"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1246700000000000042", "1246700000000000042"),
        (1246700000000000042, "1246700000000000042"),
        (0, "0"),
        (-5, None),
        (True, None),
        (1.0, None),
        ("12a", None),
        ("", None),
        ("١٢", None),  # digits, but not ASCII ones
        (None, None),
    ],
)
def test_as_id(value, expected):
    assert as_id(value) == expected
