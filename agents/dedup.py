"""Dedup by tweet id: a Faust table (with its changelog, so a restarted worker remembers) maps
each tweet id to where it was first seen on the raw topic and when.

A tweet met again at the SAME raw position is not a duplicate but a replay after a worker crash
(at-least-once): it is forwarded again and the sink's own dedup keeps bronze exact. Entries older
than the window are forgotten (and tombstoned in the changelog) by a periodic sweep.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import faust


@dataclass(frozen=True)
class RawPosition:
    partition: int
    offset: int


class SeenTweets:
    """The table, written with the raw event's partition so the changelog is co-partitioned."""

    def __init__(self, app: faust.App, window_seconds: float):
        self.window_seconds = window_seconds
        retention_ms = int(window_seconds * 2 * 1000)
        self.table = app.Table(
            "seen_tweets",
            key_type=str,
            value_type=list,
            extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(retention_ms)},
        )

    def is_duplicate(self, tweet_id: str, position: RawPosition, now: float | None = None) -> bool:
        """True if seen at another position within the window; otherwise remember this one."""
        now = time.time() if now is None else now
        entry = self.table.data.get(tweet_id)
        if entry is not None:
            partition, offset, seen_at = entry
            if now - seen_at <= self.window_seconds:
                return (partition, offset) != (position.partition, position.offset)
        value = [position.partition, position.offset, now]
        self.table.data[tweet_id] = value
        self.table.send_changelog(position.partition, tweet_id, value)
        return False

    def forget_expired(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        expired = [(key, entry[0]) for key, entry in list(self.table.data.items())
                   if now - entry[2] > self.window_seconds]
        for key, partition in expired:
            del self.table.data[key]
            self.table.send_changelog(partition, key, None, value_serializer="raw")
        return len(expired)
