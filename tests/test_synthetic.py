"""The synthetic source: deterministic, realistic in shape and size, with the configured shares of
off-topic, non-English and malformed messages (as normalize() sees them)."""
from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tweets.normalizer import Accepted, FilterPolicy, Filtered, Rejected, normalize
from tweets.topics import TopicMatcher, load_rules
from tweets.payloads import tweet_id_of
from agents.sources.synthetic import SyntheticTweets, rule_id

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
POLICY = FilterPolicy(matcher=TopicMatcher.from_file(), languages=frozenset({"en"}), max_payload_bytes=512_000)
N = 3000


def clock() -> datetime:
    return NOW


def outcomes(source: SyntheticTweets, n: int = N) -> Counter:
    counts: Counter = Counter()
    for message in source.messages(n):
        outcome = normalize(message, policy=POLICY)
        assert isinstance(outcome, (Accepted, Filtered, Rejected))
        counts[(type(outcome).__name__, getattr(outcome, "reason", None))] += 1
    return counts


@pytest.fixture(scope="module")
def messages() -> list[bytes]:
    return list(SyntheticTweets(seed=5, clock=clock).messages(N))


@pytest.fixture(scope="module")
def well_formed(messages) -> list[dict]:
    """The messages that are tweets (the malformed ones are rejected), parsed."""
    return [orjson.loads(m) for m in messages if not isinstance(normalize(m, policy=POLICY), Rejected)]


def test_same_seed_and_clock_same_bytes():
    first = list(SyntheticTweets(seed=9, clock=clock).messages(300))
    assert first == list(SyntheticTweets(seed=9, clock=clock).messages(300))
    assert first != list(SyntheticTweets(seed=10, clock=clock).messages(300))


def test_message_and_messages_draw_from_one_sequence():
    one_by_one = SyntheticTweets(seed=9, clock=clock)
    assert [one_by_one.message() for _ in range(50)] == list(SyntheticTweets(seed=9, clock=clock).messages(50))


def test_sizes_are_those_of_real_stream_messages(well_formed):
    sizes = [len(orjson.dumps(m)) for m in well_formed]
    assert 1000 <= statistics.median(sizes) <= 3000
    assert min(sizes) >= 500 and max(sizes) <= 6000


def test_shares_are_as_configured():
    counts = outcomes(SyntheticTweets(seed=1, clock=clock))
    rejected = sum(n for (kind, _), n in counts.items() if kind == "Rejected")
    language = counts[("Filtered", "language")]
    off_topic = counts[("Filtered", "off_topic")]
    tweets = N - rejected
    assert 0.01 * N <= rejected <= 0.035 * N
    assert 0.07 * tweets <= language <= 0.13 * tweets
    assert 0.21 * (tweets - language) <= off_topic <= 0.29 * (tweets - language)


@pytest.mark.parametrize(
    ("shares", "only"),
    [
        (dict(off_topic_share=0, non_english_share=0, malformed_share=0), ("Accepted", None)),
        (dict(off_topic_share=1, non_english_share=0, malformed_share=0), ("Filtered", "off_topic")),
        (dict(non_english_share=1, malformed_share=0), ("Filtered", "language")),
    ],
)
def test_on_topic_off_topic_and_foreign_text_are_what_the_matcher_says(shares, only):
    assert set(outcomes(SyntheticTweets(seed=2, clock=clock, **shares), 1000)) == {only}


def test_malformed_messages_are_all_rejected_in_every_way():
    counts = outcomes(SyntheticTweets(seed=3, clock=clock, malformed_share=1), 600)
    assert {kind for kind, _ in counts} == {"Rejected"}
    assert {reason for _, reason in counts} == {"not_json", "not_utf8", "not_a_tweet", "missing_field", "bad_field"}


def test_duplicates_are_resent_messages():
    messages = list(SyntheticTweets(seed=4, clock=clock, malformed_share=0, duplicate_share=0.3).messages(1000))
    assert 0.2 <= 1 - len(set(messages)) / len(messages) <= 0.4
    assert len(set(SyntheticTweets(seed=4, clock=clock, malformed_share=0).messages(1000))) == 1000


def test_ids_are_unique_snowflakes_from_the_clock(well_formed):
    ids = [m["data"]["id"] for m in well_formed]
    assert len(set(ids)) == len(ids)
    for tweet_id in ids:
        assert len(tweet_id) == 19 and tweet_id.isdigit()
        made = datetime.fromtimestamp(((int(tweet_id) >> 22) + 1_288_834_974_657) / 1000, timezone.utc)
        assert NOW - timedelta(seconds=5) <= made <= NOW
    for m in well_formed:
        created = datetime.fromisoformat(m["data"]["created_at"])
        assert NOW - timedelta(seconds=5) <= created <= NOW


def test_references_are_in_includes_and_older(well_formed):
    for m in well_formed:
        data, includes = m["data"], m["includes"]
        user_ids = {u["id"] for u in includes["users"]}
        assert data["author_id"] in user_ids
        for reference in data.get("referenced_tweets", []):
            (included,) = [t for t in includes["tweets"] if t["id"] == reference["id"]]
            assert included["author_id"] in user_ids
            assert int(included["id"]) < int(data["id"])


def test_every_shape_occurs(well_formed):
    def share(condition) -> float:
        return sum(1 for m in well_formed if condition(m["data"], m["includes"])) / len(well_formed)

    def kind(data, name):
        return any(r["type"] == name for r in data.get("referenced_tweets", []))

    assert 0.2 < share(lambda d, i: kind(d, "retweeted")) < 0.4
    assert 0.08 < share(lambda d, i: kind(d, "replied_to") and "in_reply_to_user_id" in d) < 0.25
    assert 0.05 < share(lambda d, i: kind(d, "quoted")) < 0.2
    assert share(lambda d, i: "note_tweet" in d and len(d["note_tweet"]["text"]) > 280) > 0.01
    assert share(lambda d, i: "media" in i and d["attachments"]["media_keys"]) > 0.05
    assert share(lambda d, i: len(d["edit_history_tweet_ids"]) == 2) > 0.005
    assert share(lambda d, i: "withheld" in d) > 0
    assert share(lambda d, i: "cashtags" in d.get("entities", {})) > 0
    assert share(lambda d, i: d["lang"] != "en") > 0.05
    assert share(lambda d, i: set(d["public_metrics"]) == {
        "retweet_count", "reply_count", "like_count", "quote_count", "bookmark_count", "impression_count"
    }) == 1  # fmt: skip


def test_entities_point_at_their_text(well_formed):
    for m in well_formed:
        data = m["data"]
        for note in (data, data.get("note_tweet")):
            if note is None:
                continue
            entities = note.get("entities", {})
            for name, field, sign in (("hashtags", "tag", "#"), ("mentions", "username", "@"), ("cashtags", "tag", "$")):
                for item in entities.get(name, []):
                    assert note["text"][item["start"] : item["end"]] == sign + item[field]
            for url in entities.get("urls", []):
                assert note["text"][url["start"] : url["end"]] == url["url"]


def test_matching_rules_come_from_the_rules_file(well_formed):
    tags = {t.tag for t in load_rules().topics}
    for m in well_formed:
        for rule in m["matching_rules"]:
            assert rule["tag"] in tags and rule["id"] == rule_id(rule["tag"]) and len(rule["id"]) == 19


def test_normalized_retweets_carry_the_original_text(messages):
    retweets = 0
    for message in messages:
        outcome = normalize(message, policy=POLICY)
        if isinstance(outcome, Accepted) and outcome.row["is_retweet"]:
            retweets += 1
            assert outcome.row["retweeted_text"] and outcome.row["text"].startswith("RT @")
    assert retweets > 0.15 * len(messages)


@pytest.mark.parametrize(
    "shares", [dict(off_topic_share=-0.1), dict(non_english_share=1.5), dict(malformed_share=0.6, duplicate_share=0.6)]
)
def test_shares_out_of_range_are_refused(shares):
    with pytest.raises(ValueError):
        SyntheticTweets(**shares)


def test_generators_with_different_seeds_never_share_ids_at_the_same_moment():
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = [
        {tweet_id_of(message) for message in SyntheticTweets(seed=seed, malformed_share=0.0, clock=lambda: moment).messages(300)}
        for seed in (21, 22, 23)
    ]
    assert all(len(batch) == 300 for batch in ids)
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
