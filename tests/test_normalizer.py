"""normalize(): hand-written payloads in the shapes of the X API v2 and v1.1 data dictionaries
(made-up content), each mapped field checked."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tweets.compliance import Deletion
from tweets.normalizer import (
    Accepted, Deleted, FilterPolicy, Filtered, Lineage, Rejected, detected_language, normalize,
)
from tweets.topics import TopicMatcher
from app.models import SCHEMA_VERSION, Tweet

MATCHER = TopicMatcher.from_file()
POLICY = FilterPolicy(matcher=MATCHER, languages=frozenset({"en"}), max_payload_bytes=512_000)
KEEP_ALL = FilterPolicy(matcher=MATCHER, languages=None, max_payload_bytes=512_000, require_topic=False)
LINEAGE = Lineage("tweets.raw", 2, 41)
INGESTED_AT = datetime(2024, 5, 13, 16, 5, 15, 123456, tzinfo=timezone.utc)

AUTHOR = {"id": "2244994945", "name": "Reading Group", "username": "readinggroup"}
ANA = {"id": "1111111111", "name": "Ana", "username": "ana_ml"}


def v2_message() -> dict:
    return {
        "data": {
            "id": "1790050670343094273",
            "text": "Our #MachineLearning reading group meets Friday: @ana_ml presents graph neural networks. "
            "$NVDA https://t.co/abcDEF1234",
            "author_id": AUTHOR["id"],
            "created_at": "2024-05-13T16:05:12.000Z",
            "lang": "en",
            "conversation_id": "1790050670343094273",
            "edit_history_tweet_ids": ["1790050670343094273"],
            "source": "Twitter Web App",
            "possibly_sensitive": False,
            "reply_settings": "everyone",
            "public_metrics": {
                "retweet_count": 3,
                "reply_count": 1,
                "like_count": 12,
                "quote_count": 0,
                "bookmark_count": 2,
                "impression_count": 540,
            },
            "entities": {
                "hashtags": [{"start": 4, "end": 20, "tag": "MachineLearning"}],
                "mentions": [{"start": 49, "end": 56, "username": "ana_ml", "id": ANA["id"]}],
                "cashtags": [{"start": 89, "end": 94, "tag": "NVDA"}],
                "urls": [
                    {
                        "start": 95,
                        "end": 118,
                        "url": "https://t.co/abcDEF1234",
                        "expanded_url": "https://example.org/reading-group/graph-neural-networks",
                        "display_url": "example.org/reading-group…",
                    }
                ],
            },
        },
        "includes": {"users": [AUTHOR, ANA]},
        "matching_rules": [{"id": "1790000000000000777", "tag": "machine_learning"}],
    }


def accept(message: dict | bytes, policy: FilterPolicy = POLICY) -> dict:
    """The accepted row, after checking what every row must satisfy."""
    payload = message if isinstance(message, bytes) else orjson.dumps(message)
    outcome = normalize(payload, policy=policy, lineage=LINEAGE, ingested_at=INGESTED_AT)
    assert isinstance(outcome, Accepted), outcome
    row = outcome.row
    assert set(row) == set(Tweet._options.fields)
    assert row["raw"] == payload.decode()
    tweet = Tweet.from_data(row)
    assert tweet.tweet_id == row["tweet_id"]
    assert tweet.created_at.tzinfo is not None
    assert orjson.loads(orjson.dumps(row)) == row
    return row


def outcome_of(message: dict | bytes, policy: FilterPolicy = POLICY):
    payload = message if isinstance(message, bytes) else orjson.dumps(message)
    return normalize(payload, policy=policy)


# --- X API v2 -------------------------------------------------------------------------------------


def test_v2_stream_message_maps_every_field():
    message = v2_message()
    row = accept(message)
    assert row == {
        "tweet_id": "1790050670343094273",
        "text": message["data"]["text"],
        "created_at": "2024-05-13T16:05:12.000Z",
        "source_format": "v2",
        "raw": orjson.dumps(message).decode(),
        "schema_version": SCHEMA_VERSION,
        "retweeted_text": None,
        "lang": "en",
        "author_id": "2244994945",
        "author_username": "readinggroup",
        "conversation_id": "1790050670343094273",
        "in_reply_to_user_id": None,
        "referenced_tweets": [],
        "edit_history_tweet_ids": ["1790050670343094273"],
        "is_retweet": False,
        "is_quote": False,
        "is_reply": False,
        "hashtags": ["MachineLearning"],
        "mentions": ["ana_ml"],
        "cashtags": ["NVDA"],
        "urls": ["https://example.org/reading-group/graph-neural-networks"],
        "public_metrics": {
            "retweet_count": 3,
            "reply_count": 1,
            "like_count": 12,
            "quote_count": 0,
            "bookmark_count": 2,
            "impression_count": 540,
        },
        "source": "Twitter Web App",
        "matching_rules": [{"id": "1790000000000000777", "tag": "machine_learning"}],
        "topics": ["machine_learning"],
        "kafka_topic": "tweets.raw",
        "kafka_partition": 2,
        "kafka_offset": 41,
        "ingested_at": "2024-05-13T16:05:15.123Z",
    }


def test_raw_is_the_message_exactly_as_received():
    payload = b'{"data": {"id": "1790050670343094273", "text": "AI \\u00e9t\\u00e9", "created_at": "2024-05-13T16:05:12.000Z"}}\r\n'
    row = accept(payload)
    assert row["raw"] == payload.decode()
    assert row["text"] == "AI été"


def test_bare_v2_tweet():
    tweet = v2_message()["data"]
    row = accept(tweet)
    assert (row["tweet_id"], row["source_format"], row["author_username"]) == ("1790050670343094273", "v2", None)
    assert row["matching_rules"] == []
    assert row["raw"] == orjson.dumps(tweet).decode()


def v2_retweet() -> dict:
    original_text = (
        "A long thread on deep learning for tabular data: what works, what does not, and why "
        "gradient boosting still wins most benchmarks. " * 3
    ).strip() + " #DeepLearning https://t.co/zzzZZZ9999"
    return {
        "data": {
            "id": "1790050871669686274",
            "text": "RT @ana_ml: A long thread on deep learning for tabular data: what works, what does not, and why…",
            "author_id": AUTHOR["id"],
            "created_at": "2024-05-13T16:06:00.000Z",
            "lang": "en",
            "conversation_id": "1790050871669686274",
            "edit_history_tweet_ids": ["1790050871669686274"],
            "referenced_tweets": [{"type": "retweeted", "id": "1789999999999999999"}],
            "entities": {"mentions": [{"start": 3, "end": 10, "username": "ana_ml", "id": ANA["id"]}]},
        },
        "includes": {
            "users": [AUTHOR, ANA],
            "tweets": [
                {"id": "1700000000000000000", "text": "an unrelated included post"},
                {
                    "id": "1789999999999999999",
                    "text": original_text[:270] + "…",
                    "author_id": ANA["id"],
                    "note_tweet": {
                        "text": original_text,
                        "entities": {
                            "hashtags": [{"start": 387, "end": 400, "tag": "DeepLearning"}],
                            "urls": [
                                {
                                    "url": "https://t.co/zzzZZZ9999",
                                    "expanded_url": "https://example.org/tabular-deep-learning",
                                }
                            ],
                        },
                    },
                },
            ],
        },
        "matching_rules": [{"id": "1790000000000000777", "tag": "machine_learning"}],
    }


def test_v2_retweet_takes_the_full_original_text_and_entities_from_includes():
    message = v2_retweet()
    row = accept(message)
    assert row["text"] == message["data"]["text"]
    assert row["retweeted_text"] == message["includes"]["tweets"][1]["note_tweet"]["text"]
    assert row["referenced_tweets"] == [{"type": "retweeted", "id": "1789999999999999999"}]
    assert (row["is_retweet"], row["is_quote"], row["is_reply"]) == (True, False, False)
    assert row["hashtags"] == ["DeepLearning"]
    assert row["mentions"] == ["ana_ml"]
    assert row["urls"] == ["https://example.org/tabular-deep-learning"]
    assert row["topics"] == ["machine_learning"]


def test_v2_retweet_without_the_original_in_includes_has_no_retweeted_text():
    message = v2_retweet()
    del message["includes"]["tweets"]
    row = accept(message, KEEP_ALL)
    assert row["retweeted_text"] is None
    assert row["is_retweet"] is True
    assert row["topics"] == ["machine_learning"]  # "deep learning" is in the retweet's own text


def v2_quote() -> dict:
    return {
        "data": {
            "id": "1790051123327926275",
            "text": "This is the one to read this week 👇",
            "author_id": AUTHOR["id"],
            "created_at": "2024-05-13T16:07:00.000Z",
            "lang": "en",
            "referenced_tweets": [{"type": "quoted", "id": "1789999999999999999"}],
        },
        "includes": {
            "users": [AUTHOR],
            "tweets": [{"id": "1789999999999999999", "text": "Big data pipelines with Apache Spark", "author_id": ANA["id"]}],
        },
    }


def test_v2_quote_is_judged_by_its_own_text():
    assert outcome_of(v2_quote()) == Filtered("off_topic", "1790051123327926275")
    row = accept(v2_quote(), KEEP_ALL)
    assert row["referenced_tweets"] == [{"type": "quoted", "id": "1789999999999999999"}]
    assert (row["is_retweet"], row["is_quote"], row["is_reply"]) == (False, True, False)
    assert row["retweeted_text"] is None
    assert row["topics"] == []


def test_v2_reply():
    message = {
        "data": {
            "id": "1790051374986166276",
            "text": "@ana_ml Which PyTorch version did you use?",
            "author_id": AUTHOR["id"],
            "created_at": "2024-05-13T16:08:00.000Z",
            "lang": "en",
            "conversation_id": "1789999999999999000",
            "in_reply_to_user_id": ANA["id"],
            "referenced_tweets": [{"type": "replied_to", "id": "1789999999999999999"}],
            "entities": {"mentions": [{"start": 0, "end": 7, "username": "ana_ml", "id": ANA["id"]}]},
        },
        "includes": {"users": [AUTHOR, ANA]},
    }
    row = accept(message)
    assert row["conversation_id"] == "1789999999999999000"
    assert row["in_reply_to_user_id"] == ANA["id"]
    assert row["referenced_tweets"] == [{"type": "replied_to", "id": "1789999999999999999"}]
    assert (row["is_retweet"], row["is_quote"], row["is_reply"]) == (False, False, True)
    assert row["topics"] == ["machine_learning"]


@pytest.mark.parametrize(
    ("note", "references", "edit_history"),
    [
        ("note_tweet", "referenced_tweets", "edit_history_tweet_ids"),
        ("note_post", "referenced_posts", "edit_history_post_ids"),
    ],
)
def test_v2_long_post_uses_the_note_text_under_either_field_name(note, references, edit_history):
    full = "Why data engineering matters. " * 12 + "#DataEngineering"
    message = {
        "data": {
            "id": "1790051626644406277",
            "text": full[:275] + "…",
            "created_at": "2024-05-13T16:09:00.000Z",
            "lang": "en",
            edit_history: ["1790051626644406277"],
            references: [{"type": "quoted", "id": "1789999999999999999"}],
            note: {"text": full, "entities": {"hashtags": [{"start": 360, "end": 376, "tag": "DataEngineering"}]}},
            "entities": {},
        }
    }
    row = accept(message)
    assert row["text"] == full
    assert row["hashtags"] == ["DataEngineering"]
    assert row["is_quote"] is True
    assert row["topics"] == ["big_data"]


def test_v2_media_links_are_not_urls():
    message = v2_message()
    message["data"]["attachments"] = {"media_keys": ["3_1790000000000000100"]}
    message["data"]["entities"]["urls"].append(
        {
            "url": "https://t.co/media12345",
            "expanded_url": "https://x.com/readinggroup/status/1790050670343094273/photo/1",
            "display_url": "pic.x.com/media12345",
            "media_key": "3_1790000000000000100",
        }
    )
    message["includes"]["media"] = [{"media_key": "3_1790000000000000100", "type": "photo", "url": "https://pbs.twimg.com/media/x.jpg"}]
    assert accept(message)["urls"] == ["https://example.org/reading-group/graph-neural-networks"]


def test_v2_edited_post_is_keyed_by_its_latest_id():
    message = v2_message()
    message["data"]["id"] = "1790050670343094281"
    message["data"]["edit_history_tweet_ids"] = ["1790050670343094273", "1790050670343094281"]
    message["data"]["edit_controls"] = {"edits_remaining": 4, "is_edit_eligible": True, "editable_until": "2024-05-13T17:05:12.000Z"}
    row = accept(message)
    assert row["tweet_id"] == "1790050670343094281"
    assert row["conversation_id"] == "1790050670343094273"


def test_v2_withheld_post_is_kept():
    message = v2_message()
    message["data"]["withheld"] = {"copyright": False, "country_codes": ["DE", "FR"], "scope": "tweet"}
    message["includes"]["users"][0] = {**AUTHOR, "withheld": {"country_codes": ["DE"]}}
    row = accept(message)
    assert row["tweet_id"] == "1790050670343094273"
    assert row["author_username"] == "readinggroup"


def test_v2_minimal_post_gets_empty_defaults():
    message = {"data": {"id": "1790051878302646278", "text": "AI", "created_at": "2024-05-13T16:10:00.000Z"}}
    row = accept(message)
    expected_empty = {
        "retweeted_text": None, "lang": None, "author_id": None, "author_username": None,
        "conversation_id": None, "in_reply_to_user_id": None, "referenced_tweets": [],
        "hashtags": [], "mentions": [], "cashtags": [], "urls": [], "public_metrics": None,
        "source": None, "matching_rules": [],
    }  # fmt: skip
    assert {k: row[k] for k in expected_empty} == expected_empty
    assert row["topics"] == ["ai"]


def test_v2_optional_fields_of_the_wrong_type_read_as_absent():
    message = v2_message()
    data = message["data"]
    data.update(
        lang=5,
        entities="oops",
        public_metrics=[1, 2],
        referenced_tweets={"type": "quoted"},
        source={"name": "app"},
        conversation_id="not-an-id",
        in_reply_to_user_id=-3,
    )
    message["includes"] = "nothing"
    message["matching_rules"] = {"id": 1}
    row = accept(message, KEEP_ALL)
    assert row["lang"] is None and row["source"] is None
    assert row["hashtags"] == row["mentions"] == row["urls"] == []
    assert row["public_metrics"] is None
    assert row["referenced_tweets"] == [] and row["matching_rules"] == []
    assert row["conversation_id"] is None and row["in_reply_to_user_id"] is None
    assert row["author_username"] is None


def test_v2_metrics_keep_valid_counts_only():
    message = v2_message()
    message["data"]["public_metrics"] = {"retweet_count": "3", "like_count": -1, "reply_count": True, "quote_count": 2**64 - 1, "impression_count": 7}
    assert accept(message)["public_metrics"] == {
        "retweet_count": None, "reply_count": None, "like_count": None,
        "quote_count": None, "bookmark_count": None, "impression_count": 7,
    }  # fmt: skip


def test_field_order_and_unknown_fields_do_not_matter():
    message = v2_message()
    shuffled = {"future_field": {"x": [1]}, **{k: message[k] for k in reversed(list(message))}}
    shuffled["data"] = {k: message["data"][k] for k in reversed(list(message["data"]))} | {"new": 1}
    a, b = accept(message), accept(shuffled)
    assert {k: v for k, v in a.items() if k != "raw"} == {k: v for k, v in b.items() if k != "raw"}


def test_matching_rules_ids_and_tags_become_strings_or_none():
    message = v2_message()
    message["matching_rules"] = [
        {"id": 1166916266197536768, "tag": None},
        {"id": None, "tag": 7},
        {"id": "1790000000000000777", "tag": "ai"},
        {"id": 12.0, "tag": 1.5},
        {"id": True, "tag": ["x"]},
        {},
        "not a rule",
        None,
    ]
    assert accept(message)["matching_rules"] == [
        {"id": "1166916266197536768", "tag": None},
        {"id": None, "tag": "7"},
        {"id": "1790000000000000777", "tag": "ai"},
        {"id": "12", "tag": "1.5"},
        {"id": None, "tag": None},
        {"id": None, "tag": None},
    ]


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        ("2024-05-13T16:05:12.000Z", "2024-05-13T16:05:12.000Z"),
        ("2024-05-13T16:05:12Z", "2024-05-13T16:05:12.000Z"),
        ("2024-05-13T18:05:12.250+02:00", "2024-05-13T16:05:12.250Z"),
        ("2024-05-13T16:05:12.999999Z", "2024-05-13T16:05:12.999Z"),
        ("2024-05-13T16:05:12", "2024-05-13T16:05:12.000Z"),
        ("Mon May 13 16:05:12 +0000 2024", "2024-05-13T16:05:12.000Z"),
    ],
)
def test_created_at_becomes_iso_utc_with_milliseconds(created_at, expected):
    message = v2_message()
    message["data"]["created_at"] = created_at
    assert accept(message)["created_at"] == expected


# --- X API v1.1 -----------------------------------------------------------------------------------

V1_USER = {"id": 920000001, "id_str": "920000001", "name": "Ops Bot", "screen_name": "opsbot", "followers_count": 10}


def v1_retweet() -> dict:
    original_full = (
        "Slides from today's talk on #AI in production: evaluation, monitoring, and the boring parts "
        "that matter most. Thanks @bob_data for hosting! $MSFT #MachineLearning https://t.co/slides1234"
    )
    return {
        "created_at": "Sun Apr 05 10:46:44 +0000 2020",
        "id": 1246751115047862274,
        "id_str": "1246751115047862274",
        "text": "RT @ana_ml: Slides from today's talk on #AI in production: evaluation, monitoring, and the boring parts that matt…",
        "source": '<a href="http://twitter.com/download/android" rel="nofollow">Twitter for Android</a>',
        "truncated": False,
        "in_reply_to_status_id": None,
        "in_reply_to_status_id_str": None,
        "in_reply_to_user_id": None,
        "in_reply_to_user_id_str": None,
        "user": V1_USER,
        "retweeted_status": {
            "created_at": "Sun Apr 05 09:00:00 +0000 2020",
            "id": 1246724254725046273,
            "id_str": "1246724254725046273",
            "text": original_full[:117] + "… https://t.co/self000001",
            "truncated": True,
            "user": {"id_str": "1111111111", "screen_name": "ana_ml"},
            "entities": {"hashtags": [{"text": "AI", "indices": [28, 31]}], "user_mentions": [], "urls": [], "symbols": []},
            "extended_tweet": {
                "full_text": original_full,
                "display_text_range": [0, 213],
                "entities": {
                    "hashtags": [{"text": "AI", "indices": [28, 31]}, {"text": "MachineLearning", "indices": [166, 182]}],
                    "user_mentions": [{"screen_name": "bob_data", "id_str": "2222222222", "indices": [129, 138]}],
                    "urls": [{"url": "https://t.co/slides1234", "expanded_url": "https://example.org/slides/ai-in-production", "indices": [183, 206]}],
                    "symbols": [{"text": "MSFT", "indices": [145, 150]}],
                },
            },
            "retweet_count": 40,
            "favorite_count": 120,
        },
        "is_quote_status": False,
        "retweet_count": 0,
        "favorite_count": 0,
        "reply_count": 0,
        "quote_count": 0,
        "entities": {
            "hashtags": [{"text": "AI", "indices": [41, 44]}],
            "user_mentions": [{"screen_name": "ana_ml", "id_str": "1111111111", "indices": [3, 10]}],
            "urls": [],
            "symbols": [],
        },
        "lang": "en",
        "timestamp_ms": "1586083604000",
    }


def test_v1_retweet_maps_every_field():
    status = v1_retweet()
    row = accept(status)
    assert row == {
        "tweet_id": "1246751115047862274",
        "text": status["text"],
        "created_at": "2020-04-05T10:46:44.000Z",
        "source_format": "v1.1",
        "raw": orjson.dumps(status).decode(),
        "schema_version": SCHEMA_VERSION,
        "retweeted_text": status["retweeted_status"]["extended_tweet"]["full_text"],
        "lang": "en",
        "author_id": "920000001",
        "author_username": "opsbot",
        "conversation_id": "1246751115047862274",
        "in_reply_to_user_id": None,
        "referenced_tweets": [{"type": "retweeted", "id": "1246724254725046273"}],
        "edit_history_tweet_ids": [],
        "is_retweet": True,
        "is_quote": False,
        "is_reply": False,
        "hashtags": ["AI", "MachineLearning"],
        "mentions": ["ana_ml", "bob_data"],
        "cashtags": ["MSFT"],
        "urls": ["https://example.org/slides/ai-in-production"],
        "public_metrics": {
            "retweet_count": 0,
            "reply_count": 0,
            "like_count": 0,
            "quote_count": 0,
            "bookmark_count": None,
            "impression_count": None,
        },
        "source": "Twitter for Android",
        "matching_rules": [],
        "topics": ["ai", "machine_learning"],
        "kafka_topic": "tweets.raw",
        "kafka_partition": 2,
        "kafka_offset": 41,
        "ingested_at": "2024-05-13T16:05:15.123Z",
    }


def test_v1_retweet_of_a_quote_is_a_retweet_only():
    status = v1_retweet()
    status.update(is_quote_status=True, quoted_status_id_str="1245000000000000000", quoted_status={"id_str": "1245000000000000000", "text": "x"})
    row = accept(status)
    assert row["referenced_tweets"] == [{"type": "retweeted", "id": "1246724254725046273"}]
    assert (row["is_retweet"], row["is_quote"]) == (True, False)


def v1_quote_reply() -> dict:
    return {
        "created_at": "Sun Apr 05 12:46:44 +0200 2020",
        "id_str": "1246751115047862275",
        "id": 1246751115047862275,
        "text": "@ana_ml Agreed, and the same goes for data pipelines at scale. #BigData https://t.co/quoted0001",
        "source": '<a href="https://example.org" rel="nofollow">Q&amp;A Helper</a>',
        "in_reply_to_status_id": 1246724254725046273,
        "in_reply_to_status_id_str": "1246724254725046273",
        "in_reply_to_user_id": 1111111111,
        "in_reply_to_user_id_str": "1111111111",
        "in_reply_to_screen_name": "ana_ml",
        "user": {"id": 920000001, "screen_name": "opsbot"},
        "is_quote_status": True,
        "quoted_status_id": 1245000000000000000,
        "quoted_status_id_str": "1245000000000000000",
        "quoted_status": {"id_str": "1245000000000000000", "text": "Machine learning everywhere", "user": {"screen_name": "carol"}},
        "entities": {
            "hashtags": [{"text": "BigData", "indices": [63, 71]}],
            "user_mentions": [{"screen_name": "ana_ml", "indices": [0, 7]}],
            "urls": [{"url": "https://t.co/quoted0001", "expanded_url": "https://twitter.com/carol/status/1245000000000000000"}],
            "symbols": [],
        },
        "favorite_count": 4,
        "retweet_count": 1,
        "lang": "en",
    }


def test_v1_quote_that_is_also_a_reply():
    row = accept(v1_quote_reply())
    assert row["created_at"] == "2020-04-05T10:46:44.000Z"
    assert row["referenced_tweets"] == [
        {"type": "quoted", "id": "1245000000000000000"},
        {"type": "replied_to", "id": "1246724254725046273"},
    ]
    assert (row["is_retweet"], row["is_quote"], row["is_reply"]) == (False, True, True)
    assert row["in_reply_to_user_id"] == "1111111111"
    assert row["conversation_id"] is None  # a reply's root is not in a v1.1 status
    assert row["author_id"] == "920000001"  # from the numeric id when id_str is missing
    assert row["source"] == "Q&A Helper"
    assert row["retweeted_text"] is None
    assert row["hashtags"] == ["BigData"] and row["mentions"] == ["ana_ml"]
    assert row["public_metrics"]["like_count"] == 4
    assert row["topics"] == ["big_data"]


def test_v1_quote_found_from_quoted_status_alone():
    status = v1_quote_reply()
    for field in ("is_quote_status", "quoted_status_id", "quoted_status_id_str", "in_reply_to_status_id", "in_reply_to_status_id_str"):
        del status[field]
    assert accept(status)["referenced_tweets"] == [{"type": "quoted", "id": "1245000000000000000"}]


def test_v1_extended_tweet_gives_the_full_text_and_entities():
    full = "Five things I wish I had known before my first data science job. " * 4 + "#DataScience"
    status = {
        "created_at": "Sun Apr 05 10:46:44 +0000 2020",
        "id_str": "1246751115047862276",
        "text": full[:117] + "… https://t.co/self000002",
        "truncated": True,
        "user": V1_USER,
        "entities": {"hashtags": [], "urls": [{"expanded_url": "https://twitter.com/i/web/status/1246751115047862276"}]},
        "extended_tweet": {"full_text": full, "entities": {"hashtags": [{"text": "DataScience"}], "urls": []}},
        "lang": "en",
    }
    row = accept(status)
    assert (row["text"], row["hashtags"], row["urls"]) == (full, ["DataScience"], [])


def test_v1_extended_mode_full_text():
    status = {
        "created_at": "Sun Apr 05 10:46:44 +0000 2020",
        "id": 1246751115047862277,
        "full_text": "Deep learning on a laptop, no GPU needed",
        "display_text_range": [0, 40],
        "user": V1_USER,
        "entities": {},
    }
    row = accept(status)
    assert (row["tweet_id"], row["text"], row["source_format"]) == ("1246751115047862277", status["full_text"], "v1.1")


def test_v1_matching_rules_of_enterprise_streams():
    status = v1_retweet()
    status["matching_rules"] = [{"tag": None, "id": 1166916266197536768}]
    assert accept(status)["matching_rules"] == [{"id": "1166916266197536768", "tag": None}]


# --- filtering ------------------------------------------------------------------------------------


def test_other_languages_are_filtered_and_language_neutral_posts_kept():
    message = v2_message()
    message["data"]["lang"] = "fr"
    assert outcome_of(message) == Filtered("language", "1790050670343094273")
    for neutral in ("und", "qht", "zxx", None):
        message["data"]["lang"] = neutral
        assert accept(message)["lang"] == neutral
    message["data"]["lang"] = "EN"
    assert accept(message)["lang"] == "EN"


def test_off_topic_posts_are_filtered():
    message = v2_message()
    message["data"].update(text="Lovely weather for a walk today", entities={})
    assert outcome_of(message) == Filtered("off_topic", "1790050670343094273")


def test_language_is_checked_before_the_topic():
    message = v2_message()
    message["data"].update(text="Il fait beau", lang="fr", entities={})
    assert outcome_of(message) == Filtered("language", "1790050670343094273")


@pytest.mark.parametrize(
    "text",
    [
        "Il governo ha chiesto ai cittadini di scaricare la nuova app di AI: restate a casa fino al 3 maggio",
        "Ngiyabonga kakhulu, ai ngeke ngikwazi ukuza namuhla ngenxa ye AI",
    ],
)
def test_a_post_without_lang_is_filtered_by_its_detected_language(text):
    message = v2_message()
    del message["data"]["lang"]
    message["data"].update(text=text, entities={})
    assert outcome_of(message) == Filtered("language", "1790050670343094273")


def test_a_post_without_lang_in_a_kept_language_or_unsure_is_judged_by_topic_and_keeps_no_lang():
    message = v2_message()
    del message["data"]["lang"]
    assert accept(message)["lang"] is None
    message["data"].update(text="Le ultime sul AI", entities={})
    assert detected_language("Le ultime sul AI") == "und"
    assert accept(message)["topics"] == ["ai"]


def test_detection_trusts_only_sure_guesses():
    assert detected_language("Deep learning with PyTorch: a practical guide for people who learn by building") == "en"
    assert detected_language("Siamo tutti sottomessi ai voleri dell'Europa, dice il governo") == "it"
    assert detected_language("ai voleri del governo") == "und"  # py3langid: "vec", probability 0.23
    assert detected_language("") == "und"


def test_with_filtering_off_topics_are_still_computed():
    message = v2_message()
    message["data"]["lang"] = "de"
    assert accept(message, KEEP_ALL)["topics"] == ["machine_learning"]
    message["data"].update(text="Lovely weather", entities={})
    assert accept(message, KEEP_ALL)["topics"] == []


def test_without_a_matcher_there_are_no_topics():
    policy = FilterPolicy(matcher=None, languages=None, max_payload_bytes=512_000)
    assert accept(v2_message(), policy)["topics"] == []


# --- deletions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "deletion"),
    [
        ({"delete": {"status": {"id": 1790050670343094273, "id_str": "1790050670343094273"},
                     "timestamp_ms": "1715616312000"}},
         Deletion("1790050670343094273", "tweet", "deleted", "v1.1_delete", "2024-05-13T16:05:12.000Z")),
        ({"data": {"delete": {"tweet": {"id": "1790050670343094273", "author_id": AUTHOR["id"]},
                              "event_at": "2024-05-13T16:05:12.000Z"}}},
         Deletion("1790050670343094273", "tweet", "delete", "v2_compliance", "2024-05-13T16:05:12.000Z")),
        ({"data": {"user_suspend": {"user": {"id": AUTHOR["id"]}, "event_at": "2024-05-13T16:05:12.000Z"}}},
         Deletion(AUTHOR["id"], "user", "user_suspend", "v2_compliance", "2024-05-13T16:05:12.000Z")),
        # A batch compliance result on the stream counts as a tweet's.
        ({"id": "1790050670343094273", "action": "delete", "reason": "deleted"},
         Deletion("1790050670343094273", "tweet", "deleted", "batch_compliance", None)),
    ],
)
def test_delete_messages_are_deletions_whatever_the_policy(message, deletion):
    for policy in (POLICY, KEEP_ALL):
        outcome = normalize(orjson.dumps(message), policy=policy, lineage=LINEAGE, ingested_at=INGESTED_AT)
        assert outcome == Deleted(deletion)


@pytest.mark.parametrize(
    ("message", "event"),
    [
        ({"scrub_geo": {"user_id": 3, "user_id_str": "3", "up_to_status_id": 1, "up_to_status_id_str": "1"}},
         "scrub_geo"),
        ({"data": {"user_unprotect": {"user": {"id": AUTHOR["id"]}, "event_at": "2024-05-13T16:05:12.000Z"}}},
         "user_unprotect"),
        ({"data": {"withheld": {"tweet": {"id": "1"}, "withheld_in_countries": ["DE"]}}}, "withheld"),
        ({"id": "1790050670343094273", "action": "keep"}, "keep"),
    ],
)
def test_compliance_messages_that_delete_nothing_are_not_tweets(message, event):
    outcome = outcome_of(message)
    assert isinstance(outcome, Rejected) and outcome.reason == "not_a_tweet", outcome
    assert event in outcome.message


@pytest.mark.parametrize("message", [{"data": {"delete": {"tweet": {"id": "12ab"}}}}, {"delete": {"status": {}}}])
def test_a_delete_message_without_an_x_id_deletes_nothing(message):
    assert isinstance(outcome_of(message), Rejected)


# --- rejections -----------------------------------------------------------------------------------


def mutated(change) -> dict:
    message = v2_message()
    change(message["data"])
    return message


@pytest.mark.parametrize(
    ("message", "reason", "mentions"),
    [
        (mutated(lambda d: d.pop("id")), "missing_field", "data.id"),
        (mutated(lambda d: d.update(id="12ab")), "bad_field", "data.id"),
        (mutated(lambda d: d.update(id=None)), "missing_field", "data.id"),
        (mutated(lambda d: d.pop("text")), "missing_field", "data.text"),
        (mutated(lambda d: d.update(text=42)), "bad_field", "data.text"),
        (mutated(lambda d: d.pop("created_at")), "missing_field", "data.created_at"),
        (mutated(lambda d: d.update(created_at="yesterday")), "bad_field", "data.created_at"),
        (mutated(lambda d: d.update(created_at=1715616312)), "bad_field", "data.created_at"),
        (mutated(lambda d: d.update(created_at="Mon Foo 13 16:05:12 +0000 2024")), "bad_field", "data.created_at"),
        ({"created_at": "Sun Apr 05 10:46:44 +0000 2020", "user": {}, "text": "x"}, "missing_field", "id"),
        ({"id_str": "x1", "user": {}, "text": "x", "created_at": "Sun Apr 05 10:46:44 +0000 2020"}, "bad_field", "id_str"),
        ({"id_str": "1", "user": {}, "created_at": "Sun Apr 05 10:46:44 +0000 2020"}, "missing_field", "text"),
        ({"errors": [{"title": "operational-disconnect", "detail": "disconnected upstream"}]}, "not_a_tweet", "operational-disconnect"),
        ({"data": [v2_message()["data"]]}, "not_a_tweet", "data"),
        ([1, 2, 3], "not_a_tweet", "list"),
        ("just a string", "not_a_tweet", "str"),
    ],
)
def test_unusable_json_is_rejected_with_the_field(message, reason, mentions):
    outcome = outcome_of(message)
    assert isinstance(outcome, Rejected) and outcome.reason == reason, outcome
    assert mentions in outcome.message


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not_a_tweet"),
        (b"\r\n", "not_a_tweet"),
        (b"<html>503 Service Unavailable</html>", "not_json"),
        (b'{"data": {"id": "1790050670343094273", "text": "trunc', "not_json"),
        (b'{"data": {"id": "1", "text": "caf\xe9"}}', "not_utf8"),
        (b'\xef\xbb\xbf{"data": {}}', "not_json"),
        (b'{"text": "\\ud800"}', "not_json"),
    ],
)
def test_undecodable_bytes_are_rejected(payload, reason):
    outcome = normalize(payload, policy=POLICY)
    assert isinstance(outcome, Rejected) and outcome.reason == reason, outcome


def test_too_large_payloads_are_rejected_before_parsing():
    small = FilterPolicy(matcher=MATCHER, languages=None, max_payload_bytes=100)
    outcome = normalize(orjson.dumps(v2_message()), policy=small)
    assert isinstance(outcome, Rejected) and outcome.reason == "too_large"


# --- lineage and ingestion time -------------------------------------------------------------------


def test_without_lineage_kafka_fields_are_none_and_ingested_at_is_now():
    before = datetime.now(timezone.utc)
    outcome = normalize(orjson.dumps(v2_message()), policy=POLICY)
    row = outcome.row
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == (None, None, None)
    ingested = datetime.fromisoformat(row["ingested_at"])
    assert before - timedelta(seconds=1) <= ingested <= datetime.now(timezone.utc) + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("ingested_at", "expected"),
    [
        (datetime(2024, 5, 13, 18, 0, 0, 5000, tzinfo=timezone(timedelta(hours=2))), "2024-05-13T16:00:00.005Z"),
        (datetime(2024, 5, 13, 16, 0, 0), "2024-05-13T16:00:00.000Z"),  # naive: taken as UTC
    ],
)
def test_ingested_at_is_iso_utc(ingested_at, expected):
    outcome = normalize(orjson.dumps(v2_message()), policy=POLICY, ingested_at=ingested_at)
    assert outcome.row["ingested_at"] == expected


def test_rows_do_not_share_state():
    first = accept(v2_message())
    first["hashtags"].append("changed")
    first["referenced_tweets"].append({"type": "quoted", "id": "1"})
    second = accept(copy.deepcopy(v2_message()))
    assert second["hashtags"] == ["MachineLearning"] and second["referenced_tweets"] == []


def test_an_edited_post_keeps_its_edit_history_oldest_first():
    message = {"data": {"id": "1790050670343094300", "text": "Fine-tuning LLMs, edited",
                        "created_at": "2024-05-13T16:05:12.000Z",
                        "edit_history_tweet_ids": ["1790050670343094273", "1790050670343094300"]}}
    accepted = normalize(orjson.dumps(message), policy=KEEP_ALL)
    assert accepted.row["edit_history_tweet_ids"] == ["1790050670343094273", "1790050670343094300"]


@pytest.mark.parametrize("history", [None, [], "1790050670343094273", [{"id": 1}], ["1790050670343094273"]])
def test_an_edit_history_that_is_not_this_tweets_is_left_empty(history):
    message = {"data": {"id": "1790050670343094300", "text": "Fine-tuning LLMs", "created_at": "2024-05-13T16:05:12.000Z",
                        "edit_history_tweet_ids": history}}
    accepted = normalize(orjson.dumps(message), policy=KEEP_ALL)
    assert accepted.row["edit_history_tweet_ids"] == []
