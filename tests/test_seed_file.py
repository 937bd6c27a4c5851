"""normalize() over real X API v1.1 statuses: the development seed file (1,000 tweets, outside the
repository). Skipped where the file is absent; TWEETLAKE_SEED_FILE points elsewhere."""
from __future__ import annotations

from collections import Counter

import orjson
import pytest

from tweets.normalizer import Accepted, FilterPolicy, Filtered, Rejected, normalize
from tweets.payloads import detect_format, tweet_id_of
from tweets.topics import TopicMatcher
from app.models import Tweet
from tests.support.tweets import SEED_FILE

pytestmark = pytest.mark.skipif(not SEED_FILE.is_file(), reason=f"no seed file at {SEED_FILE}")

MATCHER = TopicMatcher.from_file()
FILTERING = FilterPolicy(matcher=MATCHER, languages=frozenset({"en"}), max_payload_bytes=512_000)
KEEP_ALL = FilterPolicy(matcher=MATCHER, languages=None, max_payload_bytes=512_000, require_topic=False)


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return [line for line in SEED_FILE.read_bytes().splitlines() if line.strip()]


def test_every_line_is_a_v1_status(lines):
    for line in lines:
        assert detect_format(orjson.loads(line)) == "v1.1"


def test_every_line_maps_to_a_complete_row(lines):
    fields = set(Tweet._options.fields)
    for line in lines:
        outcome = normalize(line, policy=KEEP_ALL)
        assert isinstance(outcome, Accepted), outcome
        row = outcome.row
        status = orjson.loads(line)
        assert set(row) == fields
        assert row["tweet_id"] == status["id_str"] == tweet_id_of(line)
        assert row["source_format"] == "v1.1" and row["raw"] == line.decode()
        assert row["author_username"] == status["user"]["screen_name"]
        assert row["source"] and "<" not in row["source"]
        if "retweeted_status" in status:
            # "RT @user: <the start of the original>…": the full original continues it.
            assert row["is_retweet"] and row["retweeted_text"]
            assert row["retweeted_text"].startswith(row["text"].split(": ", 1)[1].rstrip("…"))
        else:
            assert row["retweeted_text"] is None
            assert row["is_quote"] == ("quoted_status" in status)
        Tweet.from_data(row)


def test_outcomes_with_the_topic_and_language_filter(lines, capsys):
    counts = Counter()
    for line in lines:
        outcome = normalize(line, policy=FILTERING)
        assert isinstance(outcome, (Accepted, Filtered, Rejected))
        counts[f"{type(outcome).__name__.lower()} {getattr(outcome, 'reason', '')}".strip()] += 1
    with capsys.disabled():
        print(f"\nseed file, {len(lines)} tweets: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    assert sum(counts.values()) == len(lines)
    assert not any(k.startswith("rejected") for k in counts)
    assert counts["accepted"] > 0 and counts["filtered off_topic"] > counts["accepted"]  # broad keywords
