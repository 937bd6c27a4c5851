"""Tweets and archive pages to test with, and what the normalizer makes of them."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agents.sources.synthetic import SyntheticTweets
from tweets.normalizer import Accepted, FilterPolicy, Lineage, normalize
from tweets.topics import TopicMatcher, default_rules_path


def page_of(messages: list[dict]) -> dict:
    """What the search endpoint would have returned for these stream messages: one page, the
    expansions of all its tweets merged."""
    includes: dict[str, dict[str, dict]] = {}
    for message in messages:
        for kind, objects in message.get("includes", {}).items():
            for obj in objects:
                includes.setdefault(kind, {}).setdefault(obj.get("id") or obj.get("media_key"), obj)
    data = [message["data"] for message in messages]
    return {
        "data": data,
        "includes": {kind: list(objects.values()) for kind, objects in includes.items()},
        "meta": {"result_count": len(data), "newest_id": data[0]["id"], "oldest_id": data[-1]["id"]},
    }


def clean_tweets(count: int, seed: int) -> list[bytes]:
    """Generated stream messages that all pass the filters: count in, count rows out."""
    tweets = SyntheticTweets(seed=seed, off_topic_share=0.0, non_english_share=0.0, malformed_share=0.0)
    return list(tweets.messages(count))


def accepted_rows(messages: list[bytes]) -> dict[str, dict]:
    return {
        outcome.row["tweet_id"]: outcome.row
        for outcome in predicted_outcomes(messages) if isinstance(outcome, Accepted)
    }


def v1_status(number: int) -> dict:
    lang, text = V1_TEXTS[number % len(V1_TEXTS)]
    created = datetime(2021, 6, 1, 9, 30, tzinfo=timezone.utc) + timedelta(seconds=17 * number)
    # A snowflake id carries its creation time (ms since X's epoch, above 22 bits).
    tweet_id = (int(created.timestamp() * 1000) - 1288834974657 << 22) + number
    return {
        "created_at": created.strftime("%a %b %d %H:%M:%S +0000 %Y"),
        "id": tweet_id, "id_str": str(tweet_id), "text": f"{text} ({number})", "lang": lang,
        "user": {"id": 7000 + number % 9, "id_str": str(7000 + number % 9), "screen_name": f"writer{number % 9}"},
        "entities": {"hashtags": [], "user_mentions": [], "urls": [], "symbols": []},
        "source": '<a href="https://example.org" rel="nofollow">Example client</a>',
        "retweet_count": number, "favorite_count": 2 * number,
    }


SEED_FILE = Path(
    os.environ.get("TWEETLAKE_SEED_FILE")
    or Path(__file__).resolve().parents[3] / "shared/data/seed-stream-v1.jsonl"
)


def predicted_outcomes(messages: list[bytes]) -> list:
    """What the worker must decide for each message, from the same pure function and rules."""
    policy = FilterPolicy(
        matcher=TopicMatcher.from_file(default_rules_path()), require_topic=True,
        languages=frozenset({"en"}), max_payload_bytes=512_000,
    )
    return [
        normalize(message, policy=policy, lineage=Lineage("raw", 0, offset), ingested_at=datetime.now(timezone.utc))
        for offset, message in enumerate(messages)
    ]


V1_TEXTS = [
    ("en", "Our team moved the whole feature pipeline to machine learning on Spark"),
    ("en", "Artificial intelligence will not replace code review any time soon"),
    ("en", "Sunny afternoon at the lake, nothing else to report"),
    ("fr", "Un cours gratuit sur le machine learning commence lundi"),
    ("en", "Notebook tips for every data scientist: restart and run all"),
]
