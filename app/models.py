"""Typed records carried on the typed, dead-letter and compliance topics.

`Tweet` is the bronze row: the Spark sink's schema is derived from it (spark_sink/schema.py) and a
test checks that the two agree, so the record is the one place a column is added.
"""
from __future__ import annotations

from datetime import datetime
from typing import List, Optional

import faust

from tweets.normalizer import SCHEMA_VERSION


class ReferencedTweet(faust.Record, serializer="json"):
    type: str
    id: str


class MatchingRule(faust.Record, serializer="json"):
    id: Optional[str] = None
    tag: Optional[str] = None


class PublicMetrics(faust.Record, serializer="json"):
    retweet_count: Optional[int] = None
    reply_count: Optional[int] = None
    like_count: Optional[int] = None
    quote_count: Optional[int] = None
    bookmark_count: Optional[int] = None
    impression_count: Optional[int] = None


class Tweet(faust.Record, serializer="json", isodates=True):
    """One tweet, mapped from an X API v2 or v1.1 payload onto the bronze columns."""

    tweet_id: str
    text: str
    created_at: datetime
    source_format: str
    raw: str
    schema_version: int = SCHEMA_VERSION
    retweeted_text: Optional[str] = None
    lang: Optional[str] = None
    author_id: Optional[str] = None
    author_username: Optional[str] = None
    conversation_id: Optional[str] = None
    in_reply_to_user_id: Optional[str] = None
    referenced_tweets: List[ReferencedTweet] = []
    # X's ids of every version of an edited post, oldest first ([] if it was never edited).
    edit_history_tweet_ids: List[str] = []
    is_retweet: bool = False
    is_quote: bool = False
    is_reply: bool = False
    hashtags: List[str] = []
    mentions: List[str] = []
    cashtags: List[str] = []
    urls: List[str] = []
    public_metrics: Optional[PublicMetrics] = None
    source: Optional[str] = None
    matching_rules: List[MatchingRule] = []
    topics: List[str] = []
    kafka_topic: Optional[str] = None
    kafka_partition: Optional[int] = None
    kafka_offset: Optional[int] = None
    ingested_at: Optional[datetime] = None


class DeadLetter(faust.Record, serializer="json", isodates=True):
    """A raw message that could not become a Tweet, with why, so it can be inspected and replayed."""

    reason: str
    message: str
    raw_base64: str
    failed_at: datetime
    kafka_topic: Optional[str] = None
    kafka_partition: Optional[int] = None
    kafka_offset: Optional[int] = None


class Deletion(faust.Record, serializer="json", isodates=True):
    """An id X told the lake to delete (tweets.compliance.forgotten_record builds it), keyed by
    that id; the sink keeps it in the forgotten log."""

    id: str
    kind: str  # "tweet", or "user": all that user's tweets
    reason: str
    source: str  # "batch_compliance" | "v1.1_delete" | "v2_compliance"
    forgotten_at: datetime
    requested_at: Optional[datetime] = None
