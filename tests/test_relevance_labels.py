"""The topic and language filter against the hand labels of seed tweets (tests/data/relevance_labels.csv).
Skipped where the seed file is absent, as the labels hold ids only."""
from __future__ import annotations

from pathlib import Path

import pytest

from tweets.normalizer import Accepted, FilterPolicy, normalize
from tweets.payloads import tweet_id_of
from tweets.topics import TopicMatcher
from tests.support.tweets import SEED_FILE

pytestmark = pytest.mark.skipif(not SEED_FILE.is_file(), reason=f"no seed file at {SEED_FILE}")

LABELS = Path(__file__).parent / "data" / "relevance_labels.csv"
FILTERING = FilterPolicy(matcher=TopicMatcher.from_file(), languages=frozenset({"en"}))
# Measured on the 310 labels: 18 of 25 kept are relevant, 18 of 19 relevant are kept (before
# case-sensitive acronyms and "DeepMind": 0.65 / 0.89). The 7 left are semantic: a game's "AI",
# LLM the law degree, topic hashtags stuffed into spam, "data analytics" quoted in passing.
PRECISION_FLOOR = 0.72
RECALL_FLOOR = 0.94


def labels() -> dict[str, bool]:
    rows = (row.split(",") for row in LABELS.read_text().splitlines() if row and not row.startswith(("#", "tweet_id")))
    return {tweet_id: relevant == "1" for tweet_id, relevant in rows}


@pytest.fixture(scope="module")
def kept() -> dict[str, bool]:
    wanted = labels()
    decisions = {}
    for line in SEED_FILE.read_bytes().splitlines():
        if line.strip() and (tweet_id := tweet_id_of(line)) in wanted:
            decisions[tweet_id] = isinstance(normalize(line, policy=FILTERING), Accepted)
    return decisions


def test_labels_are_at_least_300_seed_tweets_with_both_answers(kept):
    relevant = labels()
    assert len(relevant) >= 300
    assert set(kept) == set(relevant), "every labelled id is a seed tweet"
    assert 0 < sum(relevant.values()) < len(relevant)


def test_precision_and_recall_on_the_labels(kept):
    relevant = labels()
    true_positives = sum(kept[t] and relevant[t] for t in relevant)
    precision = true_positives / sum(kept.values())
    recall = true_positives / sum(relevant.values())
    print(f"relevance filter on {len(relevant)} labelled seed tweets: precision {precision:.2f}, recall {recall:.2f}")
    assert precision >= PRECISION_FLOOR
    assert recall >= RECALL_FLOOR
