"""The worker's routing of delete messages, without Kafka: counted as filtered ("deletion"), sent
to the compliance topic keyed by the deleted id, never through dedup."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import orjson
import pytest

import agents.normalize_agent
from agents.counters import OutcomeCounters
from agents.normalize_agent import OutputTopics, route

TOPICS = OutputTopics("typed", "dead-letter", "compliance")
INGESTED_AT = datetime(2024, 5, 13, 16, 5, 15, 123456, tzinfo=timezone.utc)


class QueuedRecords:
    """Stands in for the outbox: what route queued, per topic."""

    def __init__(self):
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def add(self, topic, key, value, partition=None):
        self.records.append((topic, key, value))


def raw_message(offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="tweets.raw", partition=0, offset=offset, key=None, headers=[])


def no_dedup(*_args):
    raise AssertionError("a deletion went through dedup")


@pytest.fixture
def worker(monkeypatch) -> tuple[OutcomeCounters, QueuedRecords]:
    """Fresh counters and outbox for route, and a dedup that must not be asked."""
    counters, queued = OutcomeCounters(), QueuedRecords()
    monkeypatch.setattr(agents.normalize_agent, "counters", counters)
    monkeypatch.setattr(agents.normalize_agent, "outbox", queued)
    monkeypatch.setattr(agents.normalize_agent.seen_tweets, "is_duplicate", no_dedup)
    return counters, queued


def test_deletions_go_to_the_compliance_topic_and_count_as_filtered(worker):
    counters, queued = worker
    v1_delete = {"delete": {"status": {"id": 1234, "id_str": "1234"}, "timestamp_ms": "1412020426423"}}
    user_delete = {"data": {"user_delete": {"user": {"id": "99"}, "event_at": "2021-07-06T18:22:42.991Z"}}}
    for offset, message in enumerate([v1_delete, v1_delete, user_delete]):
        route(raw_message(offset), orjson.dumps(message), INGESTED_AT, TOPICS)

    assert counters.as_dict() == {"read": 3, "accepted": 0, "filtered": 3, "duplicates": 0, "rejected": 0,
                                  "filtered_by_reason": {"deletion": 3}, "rejected_by_reason": {}}
    tweet = {"id": "1234", "kind": "tweet", "reason": "deleted", "source": "v1.1_delete",
             "requested_at": "2014-09-29T19:53:46.423Z", "forgotten_at": "2024-05-13T16:05:15.123456Z"}
    user = {"id": "99", "kind": "user", "reason": "user_delete", "source": "v2_compliance",
            "requested_at": "2021-07-06T18:22:42.991Z", "forgotten_at": "2024-05-13T16:05:15.123456Z"}
    assert [(topic, key, orjson.loads(value)) for topic, key, value in queued.records] == [
        ("compliance", b"1234", tweet), ("compliance", b"1234", tweet), ("compliance", b"99", user),
    ]


def test_a_compliance_event_that_deletes_nothing_is_a_dead_letter(worker):
    counters, queued = worker
    scrub_geo = {"data": {"scrub_geo": {"tweet": {"id": "1"}, "event_at": "2021-07-06T18:22:42.991Z"}}}
    route(raw_message(0), orjson.dumps(scrub_geo), INGESTED_AT, TOPICS)
    assert counters.rejected_by_reason == {"not_a_tweet": 1} and counters.read == 1
    assert [topic for topic, _key, _value in queued.records] == ["dead-letter"]
