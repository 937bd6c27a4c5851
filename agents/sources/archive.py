"""Tweets saved to files (captures of the stream, twarc2 output, X API search or timeline pages)
read back as raw-topic messages: the bytes the live source would have published, keyed by tweet
id, so that a backfill goes through the same filter, dedup and sink as the stream. Pure: files in,
messages out, no Kafka. The formats, and what becomes of other lines: docs/backfill.md.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple

import orjson

from tweets.payloads import as_id, detect_format, id_of, tweet_of

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_GZIP_WBITS = 31  # zlib: gzip header and trailer


class ArchiveError(Exception):
    """A file that cannot be read at all (missing, unreadable, corrupt compression)."""


class RawMessage(NamedTuple):
    """A raw-topic record. key is the tweet id; None marks a message that holds no tweet id, which
    the normalizer will reject (it is published all the same, to be accounted for)."""

    key: bytes | None
    payload: bytes


@dataclass
class ArchiveCounts:
    """What one file held. lines counts every line, blank ones too; tweets and not_tweets count
    the messages made of them (a page gives one message per tweet)."""

    lines: int = 0
    blank: int = 0
    pages: int = 0
    tweets: int = 0
    not_tweets: int = 0
    gzip_cut_short: bool = False

    @property
    def messages(self) -> int:
        return self.tweets + self.not_tweets


class ArchiveFile:
    """One file's raw messages, counted while they are read."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.counts = ArchiveCounts()

    def messages(self) -> Iterator[RawMessage]:
        counts = self.counts
        for line in self._lines():
            counts.lines += 1
            if not line.strip():
                counts.blank += 1
                continue
            for message in self._messages_of(line):
                if message.key is None:
                    counts.not_tweets += 1
                else:
                    counts.tweets += 1
                yield message

    def _messages_of(self, line: bytes) -> list[RawMessage]:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return [RawMessage(None, line)]
        if is_page(obj):
            self.counts.pages += 1
            return split_page(obj) or [RawMessage(None, line)]
        return [RawMessage(tweet_key(obj), line)]

    def _lines(self) -> Iterator[bytes]:
        try:
            with open(self.path, "rb") as raw:
                gzipped = raw.read(2) == GZIP_MAGIC
                raw.seek(0)
                lines = _split_lines(self._gunzip(raw)) if gzipped else raw
                for line in lines:
                    yield line.rstrip(b"\r\n")
        except (OSError, zlib.error) as error:
            raise ArchiveError(f"{self.path}: cannot read it after {self.counts.lines} lines: {error}") from error

    def _gunzip(self, raw: BinaryIO) -> Iterator[bytes]:
        """The decompressed bytes of every gzip member (`cat a.gz b.gz` is one valid file). A file
        cut short (an interrupted capture) yields what it holds, its last line usually truncated."""
        inflater, fed = zlib.decompressobj(_GZIP_WBITS), False
        while chunk := raw.read(_CHUNK):
            while chunk:
                yield inflater.decompress(chunk)
                fed = True
                if not inflater.eof:
                    break
                chunk = inflater.unused_data
                inflater, fed = zlib.decompressobj(_GZIP_WBITS), False
        yield inflater.flush()
        self.counts.gzip_cut_short = fed and not inflater.eof


def _split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        *lines, rest = (rest + chunk).split(b"\n")
        yield from lines
    if rest:
        yield rest


def tweet_key(obj: object) -> bytes | None:
    """The tweet id of a parsed stream message, bare v2 tweet or v1.1 status; None otherwise."""
    payload_format = detect_format(obj)
    if payload_format is None:
        return None
    tweet_id = id_of(tweet_of(obj, payload_format), payload_format)
    return tweet_id.encode() if tweet_id else None


def is_page(obj: object) -> bool:
    """A v2 response page: "data" is a list of tweets (a stream message has one tweet object)."""
    return isinstance(obj, dict) and isinstance(obj.get("data"), list)


def split_page(page: dict) -> list[RawMessage]:
    """One stream-message-shaped payload per tweet of the page, keyed by its id; its includes hold
    only what that tweet refers to, so each message stands alone."""
    includes = _Includes(page.get("includes"))
    messages = []
    for tweet in page["data"]:
        if isinstance(tweet, dict):
            payload = {"data": tweet, "includes": includes.of(tweet)}
            tweet_id = as_id(tweet.get("id"))
        else:
            payload, tweet_id = {"data": tweet}, None
        messages.append(RawMessage(tweet_id.encode() if tweet_id else None, orjson.dumps(payload)))
    return messages


class _Includes:
    """A page's expansions by id, to hand each tweet the ones it refers to: its author, the user
    it replies to, the users it mentions, the tweets it retweets, quotes or replies to and their
    authors, its media, polls and place (the expansions X documents for a tweet)."""

    def __init__(self, includes: object):
        includes = includes if isinstance(includes, dict) else {}
        self.users = _by(includes.get("users"), "id")
        self.usernames = _by(includes.get("users"), "username")
        self.tweets = _by(includes.get("tweets"), "id")
        self.media = _by(includes.get("media"), "media_key")
        self.polls = _by(includes.get("polls"), "id")
        self.places = _by(includes.get("places"), "id")

    def of(self, tweet: dict) -> dict[str, list[dict]]:
        referenced = _pick(self.tweets, [ref.get("id") for ref in _dicts(tweet.get("referenced_tweets"))])
        users = _pick(self.users, [tweet.get("author_id"), tweet.get("in_reply_to_user_id")])
        for mention in _dicts(_dict(tweet.get("entities")).get("mentions")):
            users += _pick(self.users, [mention.get("id")]) or _pick(self.usernames, [mention.get("username")])
        users += _pick(self.users, [original.get("author_id") for original in referenced])
        attachments = _dict(tweet.get("attachments"))
        found = {
            "users": _unique(users),
            "tweets": referenced,
            "media": _pick(self.media, _list(attachments.get("media_keys"))),
            "polls": _pick(self.polls, _list(attachments.get("poll_ids"))),
            "places": _pick(self.places, [_dict(tweet.get("geo")).get("place_id")]),
        }
        return {kind: objects for kind, objects in found.items() if objects}


def _by(objects: object, field: str) -> dict[str, dict]:
    """The first object for each value of `field` (pages may repeat an expansion)."""
    index: dict[str, dict] = {}
    for obj in _dicts(objects):
        value = obj.get(field)
        if isinstance(value, str):
            index.setdefault(value, obj)
    return index


def _pick(index: dict[str, dict], keys: list) -> list[dict]:
    return _unique([index[key] for key in keys if isinstance(key, str) and key in index])


def _unique(objects: list[dict]) -> list[dict]:
    """Each object once, in order of first reference (an author may also be the one replied to)."""
    return list({id(obj): obj for obj in objects}.values())


def _dicts(value: object) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}
