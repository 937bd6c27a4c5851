"""The records on the typed, dead-letter and compliance topics, in one plain form (dataclasses,
no Faust, no Spark): the worker's faust.Record classes (app/models.py) and the Spark jobs' schemas
(spark_sink/schema.py) are both derived from these, so a column is added here once."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import List, Optional

from tweets.normalizer import SCHEMA_VERSION


@dataclass
class ReferencedTweet:
    type: str
    id: str


@dataclass
class MatchingRule:
    id: Optional[str] = None
    tag: Optional[str] = None


@dataclass
class PublicMetrics:
    retweet_count: Optional[int] = None
    reply_count: Optional[int] = None
    like_count: Optional[int] = None
    quote_count: Optional[int] = None
    bookmark_count: Optional[int] = None
    impression_count: Optional[int] = None


@dataclass
class Tweet:
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
    referenced_tweets: List[ReferencedTweet] = field(default_factory=list)
    # X's ids of every version of an edited post, oldest first ([] if it was never edited).
    edit_history_tweet_ids: List[str] = field(default_factory=list)
    is_retweet: bool = False
    is_quote: bool = False
    is_reply: bool = False
    hashtags: List[str] = field(default_factory=list)
    mentions: List[str] = field(default_factory=list)
    cashtags: List[str] = field(default_factory=list)
    urls: List[str] = field(default_factory=list)
    public_metrics: Optional[PublicMetrics] = None
    source: Optional[str] = None
    matching_rules: List[MatchingRule] = field(default_factory=list)
    topics: List[str] = field(default_factory=list)
    kafka_topic: Optional[str] = None
    kafka_partition: Optional[int] = None
    kafka_offset: Optional[int] = None
    ingested_at: Optional[datetime] = None


@dataclass
class DeadLetter:
    """A raw message that could not become a Tweet, with why, so it can be inspected and replayed."""

    reason: str
    message: str
    raw_base64: str
    failed_at: datetime
    kafka_topic: Optional[str] = None
    kafka_partition: Optional[int] = None
    kafka_offset: Optional[int] = None


@dataclass
class Deletion:
    """An id X told the lake to delete (tweets.compliance.forgotten_record builds it), keyed by
    that id; the sink keeps it in the forgotten log."""

    id: str
    kind: str  # "tweet", or "user": all that user's tweets
    reason: str
    source: str  # "batch_compliance" | "v1.1_delete" | "v2_compliance"
    forgotten_at: datetime
    requested_at: Optional[datetime] = None
