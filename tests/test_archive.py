"""Archive files read back as raw-topic messages: every format, pages split with exactly their own
expansions, gzip by magic bytes, and every line that holds no tweet passed on, never dropped."""
from __future__ import annotations

import gzip

import orjson
import pytest

from tweets.normalizer import Accepted, FilterPolicy, Rejected, normalize
from agents.sources.archive import ArchiveError, ArchiveFile, RawMessage, split_page
from agents.sources.synthetic import SyntheticTweets
from tests.support.tweets import page_of

KEEP_ALL = FilterPolicy(require_topic=False)
CREATED = "2024-03-01T10:00:00.000Z"


def user(user_id: str, username: str) -> dict:
    return {"id": user_id, "username": username, "name": username.title()}


def v2_tweet(tweet_id: str, author_id: str, text: str = "Notes on machine learning", **fields) -> dict:
    return {"id": tweet_id, "author_id": author_id, "text": text, "created_at": CREATED, "lang": "en", **fields}


V1_STATUS = {
    "created_at": "Sun Apr 05 10:46:44 +0000 2020", "id": 1246751115047862314, "id_str": "1246751115047862314",
    "text": "Deep learning, explained", "user": {"id": 900000001, "id_str": "900000001", "screen_name": "ada"},
    "entities": {"hashtags": [], "user_mentions": [], "urls": [], "symbols": []}, "lang": "en",
}
STREAM_MESSAGE = {
    "data": v2_tweet("1763504450565046273", "11"),
    "includes": {"users": [user("11", "ada")]},
    "matching_rules": [{"id": "1", "tag": "machine-learning"}],
}
FLATTENED = v2_tweet("1763504450565046274", "12", author=user("12", "bob"),
                     referenced_tweets=[{"type": "quoted", "id": "1763504450565046273",
                                         "author": user("11", "ada"), "text": "quoted text"}])

USERS = [user("1", "ada"), user("2", "bob"), user("3", "cy"), user("4", "dee"), user("5", "eve")]
PAGE = {
    "data": [
        # a retweet by ada of bob's tweet 100
        v2_tweet("201", "1", "RT @bob: Data pipelines", referenced_tweets=[{"type": "retweeted", "id": "100"}]),
        # cy quotes ada's tweet 101, mentions dee, with a photo and a place
        v2_tweet("202", "3", "Look @dee", referenced_tweets=[{"type": "quoted", "id": "101"}],
                 entities={"mentions": [{"start": 5, "end": 9, "username": "dee"}]},
                 attachments={"media_keys": ["3_1"]}, geo={"place_id": "p1"}),
        # ada replies to eve's tweet 102, which is not in the page's includes
        v2_tweet("203", "1", "@eve agreed", in_reply_to_user_id="5",
                 referenced_tweets=[{"type": "replied_to", "id": "102"}]),
    ],
    "includes": {
        "users": USERS,
        "tweets": [v2_tweet("100", "2", "Data pipelines"), v2_tweet("101", "1", "Feature stores")],
        "media": [{"media_key": "3_1", "type": "photo"}, {"media_key": "3_2", "type": "photo"}],
        "places": [{"id": "p1", "full_name": "Lyon, France"}, {"id": "p2", "full_name": "Paris, France"}],
    },
    "meta": {"result_count": 3, "newest_id": "203", "oldest_id": "201"},
    "__twarc": {"url": "https://api.twitter.com/2/tweets/search/recent", "version": "2.14.0"},
}


def write(path, lines: list[bytes], *, gzipped: bool = False):
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def read(path) -> tuple[list[RawMessage], ArchiveFile]:
    archive = ArchiveFile(path)
    return list(archive.messages()), archive


@pytest.mark.parametrize("document", [STREAM_MESSAGE, FLATTENED, V1_STATUS], ids=["v2-stream", "v2-flattened", "v1.1"])
def test_a_tweet_per_line_is_passed_on_unchanged_keyed_by_its_id(tmp_path, document):
    line = orjson.dumps(document)
    messages, archive = read(write(tmp_path / "tweets.jsonl", [line]))
    outcome = normalize(line, policy=KEEP_ALL)
    assert isinstance(outcome, Accepted)
    assert messages == [RawMessage(outcome.row["tweet_id"].encode(), line)]
    assert (archive.counts.lines, archive.counts.tweets, archive.counts.pages) == (1, 1, 0)


def test_a_page_is_split_into_one_message_per_tweet_with_exactly_its_own_expansions(tmp_path):
    messages, archive = read(write(tmp_path / "search.jsonl", [orjson.dumps(PAGE)]))
    assert [m.key for m in messages] == [b"201", b"202", b"203"]
    retweet, quote, reply = (orjson.loads(m.payload) for m in messages)
    users = {u["id"]: u for u in USERS}
    tweets = {t["id"]: t for t in PAGE["includes"]["tweets"]}

    assert retweet == {"data": PAGE["data"][0], "includes": {"users": [users["1"], users["2"]], "tweets": [tweets["100"]]}}
    assert quote == {"data": PAGE["data"][1], "includes": {
        "users": [users["3"], users["4"], users["1"]],  # author, mentioned, quoted tweet's author
        "tweets": [tweets["101"]],
        "media": [{"media_key": "3_1", "type": "photo"}],
        "places": [{"id": "p1", "full_name": "Lyon, France"}],
    }}
    assert reply == {"data": PAGE["data"][2], "includes": {"users": [users["1"], users["5"]]}}
    assert (archive.counts.lines, archive.counts.pages, archive.counts.tweets, archive.counts.not_tweets) == (1, 1, 3, 0)


def test_split_messages_normalize_like_stream_messages(tmp_path):
    messages, _ = read(write(tmp_path / "search.jsonl", [orjson.dumps(PAGE)]))
    rows = [normalize(m.payload, policy=KEEP_ALL).row for m in messages]
    assert [row["author_username"] for row in rows] == ["ada", "cy", "ada"]
    assert rows[0]["is_retweet"] and rows[0]["retweeted_text"] == "Data pipelines"
    assert rows[1]["is_quote"] and rows[2]["is_reply"]


def test_generated_stream_messages_paged_and_split_again_give_the_same_rows():
    originals = list(SyntheticTweets(seed=3, malformed_share=0.0).messages(200))
    split = split_page(page_of([orjson.loads(m) for m in originals]))
    assert [m.key for m in split] == [orjson.loads(m)["data"]["id"].encode() for m in originals]
    for original, message in zip(originals, split):
        want, got = normalize(original, policy=KEEP_ALL), normalize(message.payload, policy=KEEP_ALL)
        assert isinstance(want, Accepted) and isinstance(got, Accepted)
        for row in (want.row, got.row):
            del row["raw"], row["matching_rules"], row["ingested_at"]  # pages carry no matching rules
        assert got.row == want.row


def test_page_entries_without_a_tweet_are_passed_on_without_a_key(tmp_path):
    page = {"data": [v2_tweet("301", "1"), "not a tweet", {"text": "no id"}], "includes": {"users": USERS[:1]}}
    messages, archive = read(write(tmp_path / "odd.jsonl", [orjson.dumps(page)]))
    assert [m.key for m in messages] == [b"301", None, None]
    assert all(isinstance(normalize(m.payload, policy=KEEP_ALL), Rejected) for m in messages[1:])
    assert (archive.counts.tweets, archive.counts.not_tweets) == (1, 2)


def test_gzip_is_recognised_by_its_magic_bytes_whatever_the_name(tmp_path):
    lines = [orjson.dumps(STREAM_MESSAGE), orjson.dumps(V1_STATUS)]
    packed, _ = read(write(tmp_path / "capture.jsonl", lines, gzipped=True))
    plain, _ = read(write(tmp_path / "capture.jsonl.gz", lines))
    assert [m.payload for m in packed] == [m.payload for m in plain] == lines


def test_concatenated_gzip_members_are_one_file(tmp_path):
    first, second = orjson.dumps(STREAM_MESSAGE), orjson.dumps(V1_STATUS)
    path = tmp_path / "joined.gz"
    path.write_bytes(gzip.compress(first + b"\n") + gzip.compress(second + b"\n"))
    messages, archive = read(path)
    assert [m.payload for m in messages] == [first, second]
    assert not archive.counts.gzip_cut_short


def test_a_truncated_last_line_is_passed_on_for_the_dead_letters(tmp_path):
    whole, cut = orjson.dumps(STREAM_MESSAGE), orjson.dumps(V1_STATUS)[:150]
    path = tmp_path / "interrupted.jsonl"
    path.write_bytes(whole + b"\n" + cut)  # no final newline: the writer was stopped
    messages, archive = read(path)
    assert messages[1] == RawMessage(None, cut)
    assert normalize(cut, policy=KEEP_ALL).reason == "not_json"
    assert (archive.counts.lines, archive.counts.tweets, archive.counts.not_tweets) == (2, 1, 1)


def test_a_gzip_file_cut_short_yields_what_it_holds(tmp_path):
    lines = [orjson.dumps(dict(V1_STATUS, id_str=str(10**18 + n), id=10**18 + n)) for n in range(200)]
    packed = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "capture.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    messages, archive = read(path)
    assert archive.counts.gzip_cut_short
    assert 0 < len(messages) < len(lines)
    assert [m.payload for m in messages[:-1]] == lines[: len(messages) - 1]
    assert lines[len(messages) - 1].startswith(messages[-1].payload)


def test_lines_without_a_tweet_are_passed_on_and_blank_lines_skipped(tmp_path):
    not_json = b"<html><body>503 Service Unavailable</body></html>"
    stream_error = orjson.dumps({"errors": [{"title": "operational-disconnect", "detail": "reconnect"}]})
    empty_page = orjson.dumps({"meta": {"result_count": 0}})
    array = b"[1, 2, 3]"
    not_utf8 = orjson.dumps(V1_STATUS)[:40] + b"\xff" + orjson.dumps(V1_STATUS)[40:]
    tweet = orjson.dumps(V1_STATUS)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\r\n".join([not_json, b"", stream_error, b"   ", empty_page, array, not_utf8, tweet]) + b"\r\n")

    messages, archive = read(path)
    assert [m.payload for m in messages] == [not_json, stream_error, empty_page, array, not_utf8, tweet]
    assert [m.key for m in messages[:-1]] == [None] * 5
    reasons = [normalize(m.payload, policy=KEEP_ALL).reason for m in messages[:-1]]
    assert reasons == ["not_json", "not_a_tweet", "not_a_tweet", "not_a_tweet", "not_utf8"]
    counts = archive.counts
    assert (counts.lines, counts.blank, counts.tweets, counts.not_tweets, counts.messages) == (8, 2, 1, 5, 6)


def test_a_missing_file_is_an_archive_error(tmp_path):
    with pytest.raises(ArchiveError, match="missing.jsonl"):
        read(tmp_path / "missing.jsonl")


def test_corrupt_gzip_is_an_archive_error(tmp_path):
    path = tmp_path / "corrupt.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 64)
    with pytest.raises(ArchiveError, match="corrupt.gz"):
        read(path)
