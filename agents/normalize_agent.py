"""The filter/normalize agent: raw payloads in, `Tweet` rows on the typed topic, deletions X asks
for on the compliance topic, the rest to the dead-letter topic or counted as filtered. The
decisions are the pure `normalizer.normalize`.
"""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from agents.counters import OutcomeCounters
from agents.dedup import RawPosition, SeenTweets
from agents.outbox import Outbox
from tweets.oversize import dead_letter_bytes, original_size
from tweets.compliance import forgotten_record
from tweets.normalizer import Accepted, Deleted, FilterPolicy, Filtered, Lineage, Rejected, normalize
from app.faust_app import app
from app.models import DeadLetter
from config.settings import get_settings
from app.kafka_topics import compliance_topic, dead_letter_topic, raw_topic, typed_topic

log = logging.getLogger(__name__)

BATCH_SIZE = 4000
BATCH_WITHIN_SECONDS = 0.05

counters = OutcomeCounters()


settings = get_settings()
policy = FilterPolicy.configured(settings.filter, settings.language_list, settings.max_payload_bytes)
outbox = Outbox(app.producer)
seen_tweets = SeenTweets(app, settings.dedup_window_seconds, outbox)


def dead_letter(rejection: Rejected, payload: bytes, lineage: Lineage) -> DeadLetter:
    return DeadLetter(
        reason=rejection.reason,
        message=rejection.message,
        raw_base64=base64.b64encode(dead_letter_bytes(payload, policy.max_payload_bytes)).decode("ascii"),
        failed_at=datetime.now(timezone.utc),
        kafka_topic=lineage.topic,
        kafka_partition=lineage.partition,
        kafka_offset=lineage.offset,
    )


@app.agent(raw_topic, name="normalize")
async def normalize_tweets(stream):
    """Batch events so the per-message overhead of the stream is paid once per batch.

    Routing queues records in the outbox without awaiting, and the outbox is flushed in `finally`:
    `take_events` acks a batch's events even when the agent is cancelled at shutdown, so whatever they produced must reach the broker before their offsets are committed.
    """
    topics = OutputTopics(
        typed_topic.get_topic_name(), dead_letter_topic.get_topic_name(), compliance_topic.get_topic_name()
    )
    first = True
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_SECONDS):
        if first:
            log.info("normalize: first batch of %d raw message(s) received", len(events))
            first = False
        ingested_at = datetime.now(timezone.utc)
        try:
            for event in events:
                route(event.message, event.value if event.value is not None else b"", ingested_at, topics)
        finally:
            await outbox.flush()


@dataclass(frozen=True)
class OutputTopics:
    typed: str
    dead_letter: str
    compliance: str


def route(message, payload: bytes, ingested_at: datetime, topics: OutputTopics) -> None:
    """Decide one raw message: accepted to the typed topic, rejected to dead letters, deletions
    (counted as filtered, reason "deletion") to the compliance topic, else count."""
    lineage = Lineage(message.topic, message.partition, message.offset)
    cut_from = original_size(message.headers)
    if cut_from is not None:
        outcome = Rejected("too_large", f"{cut_from} bytes, more than {policy.max_payload_bytes}: the producer "
                                        f"published only its first {len(payload)} bytes")
    else:
        outcome = normalize(payload, policy=policy, lineage=lineage, ingested_at=ingested_at)
    counters.read += 1
    if isinstance(outcome, Rejected):
        counters.rejected_by_reason[outcome.reason] += 1
        log.debug("rejected %s@%s:%s: %s", message.topic, message.partition, message.offset, outcome.reason)
        letter, _headers = dead_letter_topic.prepare_value(dead_letter(outcome, payload, lineage), None)
        outbox.add(topics.dead_letter, message.key, letter)
        return
    if isinstance(outcome, Deleted):
        # Not deduplicated: a repeated deletion does no harm, and dedup's table is of tweets seen.
        counters.filtered_by_reason["deletion"] += 1
        deletion = outcome.deletion
        outbox.add(topics.compliance, deletion.id.encode(), orjson.dumps(forgotten_record(deletion, ingested_at)))
        return
    tweet_id = outcome.row["tweet_id"] if isinstance(outcome, Accepted) else outcome.tweet_id
    if seen_tweets.is_duplicate(tweet_id, RawPosition(message.partition, message.offset)):
        counters.duplicates += 1
    elif isinstance(outcome, Filtered):
        counters.filtered_by_reason[outcome.reason] += 1
    else:
        counters.accepted += 1
        # Rows are already in the Tweet record's JSON shape: skip building a Record.
        outbox.add(topics.typed, tweet_id.encode(), orjson.dumps(outcome.row))


@app.timer(interval=60.0)
async def forget_expired_tweet_ids() -> None:
    forgotten = seen_tweets.forget_expired()
    await outbox.flush()
    if forgotten:
        log.info("dedup: forgot %d tweet ids older than the window", forgotten)
