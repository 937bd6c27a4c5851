"""The decision on every raw message: a bronze row (Accepted), a tweet the lake does not want
(Filtered), X telling the lake to delete a tweet or a user's tweets (Deleted, for the compliance
topic), or something that is not a usable tweet (Rejected, sent to the dead-letter topic).
How v2 and v1.1 map to the bronze columns, and why a message is rejected: docs/architecture.md,
"Filter, normalize, dedup, dead letters".
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import orjson

from tweets.compliance import Deletion, Ignored, deletion_of
from tweets.language import detect_language as detected_language
from tweets.payloads import PayloadFormat, as_id, detect_format, id_of, tweet_of
from tweets.timestamps import iso_millis
from tweets.topics import TopicMatcher, default_rules_path

# The version of the bronze row this module builds; app.models.Tweet carries it.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FilterPolicy:
    """What the lake keeps. matcher None: no topics at all; require_topic False (FILTER=none):
    topics are still computed but off-topic tweets are kept. languages: lower-case codes to keep
    ("en"), None for any; tweets X could not give a language to are kept either way."""

    matcher: TopicMatcher | None = None
    languages: frozenset[str] | None = None
    max_payload_bytes: int = 512_000
    require_topic: bool = True

    @classmethod
    def configured(cls, filter_mode: str, languages: list[str], max_payload_bytes: int) -> "FilterPolicy":
        """The policy of the FILTER, LANGUAGES and MAX_PAYLOAD_BYTES settings, as the worker keeps
        tweets: topics from the rules file; FILTER=none keeps every valid tweet in any language."""
        filtering = filter_mode != "none"
        return cls(matcher=TopicMatcher.from_file(default_rules_path()), require_topic=filtering,
                   languages=frozenset(languages) if filtering else None, max_payload_bytes=max_payload_bytes)


@dataclass(frozen=True)
class Lineage:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Accepted:
    row: dict


@dataclass(frozen=True)
class Filtered:
    reason: str  # "language" | "off_topic"
    tweet_id: str


@dataclass(frozen=True)
class Deleted:
    """A compliance message that deletes: it goes to the compliance topic, never to the lake."""

    deletion: Deletion


@dataclass(frozen=True)
class Rejected:
    reason: str  # "too_large" | "not_utf8" | "not_json" | "not_a_tweet" | "missing_field" | "bad_field"
    # | "created_at_contradicts_id" | "mapping_error". not_a_tweet also covers compliance messages
    # that delete nothing (the message names the event).
    message: str


Outcome = Accepted | Filtered | Deleted | Rejected

# X's lang values for tweets without language content (undetermined, only media, hashtags,
# mentions, cashtags, very short text, no linguistic content): the topic decides, not the language.
_NO_LANGUAGE = frozenset({"und", "qme", "qht", "qam", "qct", "qst", "zxx"})
_METRICS = ("retweet_count", "reply_count", "like_count", "quote_count", "bookmark_count", "impression_count")
_MAX_COUNT = 2**63  # counts are 64-bit signed in the lake
_MESSAGE_CHARS = 300
_NONE: tuple = ()
_EMPTY: dict = {}

# (list name, field) of hashtags, mentions and cashtags in each format's entities.
_V2_ENTITIES = (("hashtags", "tag"), ("mentions", "username"), ("cashtags", "tag"))
_V1_ENTITIES = (("hashtags", "text"), ("user_mentions", "screen_name"), ("symbols", "text"))
_SIGNS = "#＃@＠$"

_V1_DATE = re.compile(
    r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) (\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}) (\d{4})", re.ASCII
)
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_HTML_TAG = re.compile(r"<[^>]*>")


class _Reject(Exception):
    """Raised by the field readers; normalize() turns it into Rejected."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def normalize(
    payload: bytes,
    *,
    policy: FilterPolicy,
    lineage: Lineage | None = None,
    ingested_at: datetime | None = None,
) -> Outcome:
    """The outcome of one raw message. Pure (bytes in, an outcome out, no I/O), and it never
    raises, whatever the bytes are, so one bad message can never stop the agent."""
    try:
        return _normalize(payload, policy, lineage, ingested_at)
    except _Reject as rejection:
        return Rejected(rejection.reason, rejection.message)
    except Exception as error:  # noqa: BLE001 - the never-raise promise; property tests keep this unused
        return Rejected("mapping_error", f"{type(error).__name__}: {error}"[:_MESSAGE_CHARS])


def _normalize(
    payload: bytes, policy: FilterPolicy, lineage: Lineage | None, ingested_at: datetime | None
) -> Outcome:
    if len(payload) > policy.max_payload_bytes:
        raise _Reject("too_large", f"{len(payload)} bytes, more than {policy.max_payload_bytes}")
    if not payload or payload.isspace():
        raise _Reject("not_a_tweet", "blank message (a stream keep-alive)")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise _undecodable(payload, error) from None
    compliance = deletion_of(obj)
    if isinstance(compliance, Deletion):
        return Deleted(compliance)
    if isinstance(compliance, Ignored):
        raise _Reject("not_a_tweet", f"compliance message that deletes nothing: {compliance.reason}"[:_MESSAGE_CHARS])
    payload_format = detect_format(obj)
    if payload_format is None:
        raise _Reject("not_a_tweet", _describe(obj))
    tweet = tweet_of(obj, payload_format)
    raw = str(payload, "utf-8")  # orjson accepted it, so it is valid UTF-8
    if payload_format == "v1.1":
        row = _from_v1(tweet, raw)
    else:
        row = _from_v2(obj, tweet, payload_format, raw)

    _check_created_at(row["tweet_id"], row["created_at"])

    content = row["retweeted_text"] or row["text"]
    languages = policy.languages
    if languages is not None and not _language_ok(row["lang"] or detected_language(content), languages):
        return Filtered("language", row["tweet_id"])
    matcher = policy.matcher
    if matcher is not None:
        row["topics"] = topics = matcher.match(content, row["hashtags"], row["urls"])
        if policy.require_topic and not topics:
            return Filtered("off_topic", row["tweet_id"])

    if lineage is not None:
        row["kafka_topic"] = lineage.topic
        row["kafka_partition"] = lineage.partition
        row["kafka_offset"] = lineage.offset
    row["ingested_at"] = _ingested_iso(ingested_at) if ingested_at else iso_millis(datetime.now(timezone.utc))
    return Accepted(row)


def _language_ok(lang: str, languages: frozenset[str]) -> bool:
    lang = lang.lower()
    return lang in languages or lang in _NO_LANGUAGE or lang.partition("-")[0] in languages


# X's ids are snowflakes since 2010-11-04: milliseconds since this epoch in bits 22 and up.
_SNOWFLAKE_EPOCH_MS = 1_288_834_974_657
# Older tweets have sequential ids (the last ones about 2.97e10), which hold no time: any id
# below a day's worth of snowflake is one of them and is not checked. Ids are 63-bit.
_FIRST_SNOWFLAKE = 86_400_000 << 22
_LAST_SNOWFLAKE = 2**63 - 1
# X writes created_at from the id, in whole seconds: the seed file's 1,880 tweets are 1-999 ms
# behind their ids. A minute allows for that and for clock skew of other producers; the smallest
# time-zone offset (15 minutes) is still caught.
_CREATED_AT_TOLERANCE_MS = 60_000


def _check_created_at(tweet_id: str, created_at: str) -> None:
    snowflake = int(tweet_id)
    if not _FIRST_SNOWFLAKE <= snowflake <= _LAST_SNOWFLAKE:
        return
    made_ms = (snowflake >> 22) + _SNOWFLAKE_EPOCH_MS
    stated = datetime.fromisoformat(created_at)
    if abs(stated.timestamp() * 1000 - made_ms) > _CREATED_AT_TOLERANCE_MS:
        made = iso_millis(datetime.fromtimestamp(made_ms / 1000, timezone.utc))
        raise _Reject(
            "created_at_contradicts_id",
            f"created_at {created_at}, but id {tweet_id} was made at {made}"
            f" (more than {_CREATED_AT_TOLERANCE_MS // 1000} s apart)",
        )


def _undecodable(payload: bytes, error: orjson.JSONDecodeError) -> _Reject:
    try:
        str(payload, "utf-8")
    except UnicodeDecodeError as bad:
        return _Reject("not_utf8", f"invalid UTF-8 at byte {bad.start}")
    return _Reject("not_json", str(error)[:_MESSAGE_CHARS])


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        errors = obj.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return f"stream error message: {first.get('title')}: {first.get('detail')}"[:_MESSAGE_CHARS]
        return f"JSON object without a tweet (keys: {', '.join(map(str, list(obj)[:10]))})"[:_MESSAGE_CHARS]
    return f"JSON {type(obj).__name__}, not a tweet object"


# --- X API v2 -----------------------------------------------------------------------------------


def _from_v2(obj: dict, tweet: dict, payload_format: PayloadFormat, raw: str) -> dict:
    where = "data." if payload_format == "v2_stream" else ""
    includes = _dict(obj.get("includes")) if payload_format == "v2_stream" else _EMPTY
    tweet_id = _required_id(tweet, payload_format, where)
    text, entities = _v2_content(tweet)
    if text is None:
        raise _missing_or_bad(tweet, "text", where, "a string")

    referenced = _v2_references(tweet)
    retweeted_text = None
    entity_sources = [entities]
    retweeted_id = next((r["id"] for r in referenced if r["type"] == "retweeted"), None)
    if retweeted_id is not None:
        original = _find(includes.get("tweets"), retweeted_id)
        if original is not None:
            retweeted_text, original_entities = _v2_content(original)
            entity_sources.append(original_entities)

    author_id = as_id(tweet.get("author_id"))
    author = _find(includes.get("users"), author_id) if author_id else None
    return _row(
        tweet_id=tweet_id,
        text=text,
        created_at=_created_at(tweet.get("created_at"), where + "created_at"),
        source_format="v2",
        raw=raw,
        retweeted_text=retweeted_text,
        lang=_str(tweet.get("lang")),
        author_id=author_id,
        author_username=_str(author.get("username")) if author else None,
        conversation_id=as_id(tweet.get("conversation_id")),
        in_reply_to_user_id=as_id(tweet.get("in_reply_to_user_id")),
        referenced_tweets=referenced,
        edit_history_tweet_ids=_edit_history(tweet.get("edit_history_tweet_ids"), tweet_id),
        entities=_entities(entity_sources, _V2_ENTITIES),
        public_metrics=_metrics(tweet.get("public_metrics")),
        source=_source(tweet.get("source")),
        matching_rules=_rules(obj.get("matching_rules")) if payload_format == "v2_stream" else [],
    )


def _v2_content(tweet: dict) -> tuple[str | None, dict]:
    """Full text and its entities: a long post's note_tweet (or note_post) has both."""
    note = tweet.get("note_tweet") or tweet.get("note_post")
    if isinstance(note, dict) and isinstance(note.get("text"), str):
        entities = note.get("entities")
        return note["text"], entities if isinstance(entities, dict) else _dict(tweet.get("entities"))
    return _str(tweet.get("text")), _dict(tweet.get("entities"))


def _v2_references(tweet: dict) -> list[dict]:
    references = tweet.get("referenced_tweets")
    if references is None:
        references = tweet.get("referenced_posts")
    result = []
    for reference in _list(references):
        if isinstance(reference, dict):
            kind, ref_id = reference.get("type"), as_id(reference.get("id"))
            if isinstance(kind, str) and ref_id is not None:
                result.append({"type": kind, "id": ref_id})
    return result


def _find(objects: object, object_id: str) -> dict | None:
    """The includes entry (user or tweet) with this id (v2 ids are strings)."""
    for candidate in _list(objects):
        if isinstance(candidate, dict) and candidate.get("id") == object_id:
            return candidate
    return None


# --- X API v1.1 ---------------------------------------------------------------------------------


def _from_v1(tweet: dict, raw: str) -> dict:
    tweet_id = _required_id(tweet, "v1.1", "")
    text, entities = _v1_content(tweet)
    if text is None:
        raise _missing_or_bad(tweet, "text", "", "a string")

    referenced = []
    retweeted_text = None
    entity_sources = [entities]
    retweeted = tweet.get("retweeted_status")
    if isinstance(retweeted, dict):
        retweeted_text, original_entities = _v1_content(retweeted)
        entity_sources.append(original_entities)
        retweeted_id = id_of(retweeted, "v1.1")
        if retweeted_id is not None:
            referenced.append({"type": "retweeted", "id": retweeted_id})
    else:
        quoted_id = _v1_quoted_id(tweet)
        if quoted_id is not None:
            referenced.append({"type": "quoted", "id": quoted_id})
        replied_id = as_id(tweet.get("in_reply_to_status_id_str")) or as_id(tweet.get("in_reply_to_status_id"))
        if replied_id is not None:
            referenced.append({"type": "replied_to", "id": replied_id})

    user = _dict(tweet.get("user"))
    is_reply = any(r["type"] == "replied_to" for r in referenced)
    return _row(
        tweet_id=tweet_id,
        text=text,
        created_at=_created_at(tweet.get("created_at"), "created_at"),
        source_format="v1.1",
        raw=raw,
        retweeted_text=retweeted_text,
        lang=_str(tweet.get("lang")),
        author_id=as_id(user.get("id_str")) or as_id(user.get("id")),
        author_username=_str(user.get("screen_name")),
        conversation_id=None if is_reply else tweet_id,
        in_reply_to_user_id=as_id(tweet.get("in_reply_to_user_id_str")) or as_id(tweet.get("in_reply_to_user_id")),
        referenced_tweets=referenced,
        edit_history_tweet_ids=[],  # v1.1 predates edits
        entities=_entities(entity_sources, _V1_ENTITIES),
        public_metrics=_v1_metrics(tweet),
        source=_source(tweet.get("source")),
        matching_rules=_rules(tweet.get("matching_rules")),  # enterprise (native enriched) streams
    )


def _v1_content(tweet: dict) -> tuple[str | None, dict]:
    """Full text and its entities: extended_tweet for 280-character tweets read in compatibility
    mode, full_text in extended mode, else text."""
    extended = tweet.get("extended_tweet")
    if isinstance(extended, dict) and isinstance(extended.get("full_text"), str):
        entities = extended.get("entities")
        return extended["full_text"], entities if isinstance(entities, dict) else _dict(tweet.get("entities"))
    text = tweet.get("full_text")
    if not isinstance(text, str):
        text = _str(tweet.get("text"))
    return text, _dict(tweet.get("entities"))


def _v1_quoted_id(tweet: dict) -> str | None:
    quoted = tweet.get("quoted_status")
    if tweet.get("is_quote_status") is not True and not isinstance(quoted, dict):
        return None
    return (
        as_id(tweet.get("quoted_status_id_str"))
        or as_id(tweet.get("quoted_status_id"))
        or (id_of(quoted, "v1.1") if isinstance(quoted, dict) else None)
    )


def _v1_metrics(tweet: dict) -> dict | None:
    """v1.1 has the counts at the top level, likes as favorite_count, and no bookmarks or views."""
    if not any(k in tweet for k in ("retweet_count", "reply_count", "favorite_count", "quote_count")):
        return None
    return {
        "retweet_count": _count(tweet.get("retweet_count")),
        "reply_count": _count(tweet.get("reply_count")),
        "like_count": _count(tweet.get("favorite_count")),
        "quote_count": _count(tweet.get("quote_count")),
        "bookmark_count": None,
        "impression_count": None,
    }


# --- shared -------------------------------------------------------------------------------------


def _row(
    *,
    tweet_id: str,
    text: str,
    created_at: str,
    source_format: str,
    raw: str,
    retweeted_text: str | None,
    lang: str | None,
    author_id: str | None,
    author_username: str | None,
    conversation_id: str | None,
    in_reply_to_user_id: str | None,
    referenced_tweets: list[dict],
    edit_history_tweet_ids: list[str],
    entities: tuple[list[str], list[str], list[str], list[str]],
    public_metrics: dict | None,
    source: str | None,
    matching_rules: list[dict],
) -> dict:
    """The row in app.models.Tweet's field order; topics, kafka_* and ingested_at are filled last."""
    kinds = {r["type"] for r in referenced_tweets}
    hashtags, mentions, cashtags, urls = entities
    return {
        "tweet_id": tweet_id,
        "text": text,
        "created_at": created_at,
        "source_format": source_format,
        "raw": raw,
        "schema_version": SCHEMA_VERSION,
        "retweeted_text": retweeted_text,
        "lang": lang,
        "author_id": author_id,
        "author_username": author_username,
        "conversation_id": conversation_id,
        "in_reply_to_user_id": in_reply_to_user_id,
        "referenced_tweets": referenced_tweets,
        "edit_history_tweet_ids": edit_history_tweet_ids,
        "is_retweet": "retweeted" in kinds,
        "is_quote": "quoted" in kinds,
        "is_reply": "replied_to" in kinds,
        "hashtags": hashtags,
        "mentions": mentions,
        "cashtags": cashtags,
        "urls": urls,
        "public_metrics": public_metrics,
        "source": source,
        "matching_rules": matching_rules,
        "topics": [],
        "kafka_topic": None,
        "kafka_partition": None,
        "kafka_offset": None,
        "ingested_at": None,
    }


def _edit_history(value: object, tweet_id: str) -> list[str]:
    """X's edit_history_tweet_ids, oldest first, as ids; [] when absent or not a list of ids
    (silver then keys the post by its own id). A history that leaves out the tweet itself is
    not this tweet's: ignored too."""
    ids = [as_id(item) for item in _list(value)]
    if not ids or None in ids or tweet_id not in ids:
        return []
    return ids


def _required_id(tweet: dict, payload_format: PayloadFormat, where: str) -> str:
    tweet_id = id_of(tweet, payload_format)
    if tweet_id is not None:
        return tweet_id
    names = ("id_str", "id") if payload_format == "v1.1" else ("id",)
    present = [name for name in names if tweet.get(name) is not None]
    if not present:
        raise _Reject("missing_field", f"{where}id is missing")
    raise _missing_or_bad(tweet, present[0], where, "a string of digits")


def _missing_or_bad(tweet: dict, field: str, where: str, expected: str) -> _Reject:
    value = tweet.get(field)
    if value is None:
        return _Reject("missing_field", f"{where}{field} is missing")
    shown = repr(value)[:40] if isinstance(value, (str, int, float)) else type(value).__name__
    return _Reject("bad_field", f"{where}{field}: expected {expected}, got {shown}")


def _entities(sources: list[dict], spec: tuple[tuple[str, str], ...]) -> tuple[list[str], ...]:
    """hashtags, mentions, cashtags and expanded urls of all sources, signs stripped, in order."""
    found: tuple[dict[str, None], ...] = ({}, {}, {}, {})
    for entities in sources:
        for (kind, field), values in zip(spec, found):
            for item in _list(entities.get(kind)):
                if isinstance(item, dict):
                    value = item.get(field)
                    if isinstance(value, str) and value:
                        values[value[1:] if value[0] in _SIGNS else value] = None
        for item in _list(entities.get("urls")):
            if isinstance(item, dict) and "media_key" not in item:
                url = item.get("expanded_url")
                if not isinstance(url, str) or not url:
                    url = item.get("url")
                if isinstance(url, str) and url:
                    found[3][url] = None
    return tuple([value for value in values if value] for values in found)


def _created_at(value: object, where: str) -> str:
    """ISO-8601 UTC with milliseconds, v2's own format: "2020-04-05T10:46:44.000Z"."""
    if value is None:
        raise _Reject("missing_field", f"{where} is missing")
    if isinstance(value, str):
        try:
            if len(value) == 24 and value[10] == "T" and value[19] == "." and value[23] == "Z":
                datetime.fromisoformat(value)  # already canonical: only check it is a real time
                return value
            v1 = _V1_DATE.fullmatch(value)
            if v1 is not None:
                return iso_millis(_v1_datetime(v1))
            return iso_millis(datetime.fromisoformat(value))
        except (ValueError, OverflowError):
            pass
    shown = repr(value)[:40] if isinstance(value, (str, int, float)) else type(value).__name__
    raise _Reject("bad_field", f"{where}: not a date: {shown}")


def _v1_datetime(match: re.Match[str]) -> datetime:
    month, day, hour, minute, second, sign, off_h, off_m, year = match.groups()
    if month not in _MONTHS:
        raise ValueError(f"unknown month {month}")
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    return datetime(
        int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=timezone(offset)
    )


# The agent passes one ingested_at per batch: format it once.
_ingested_iso = lru_cache(maxsize=4)(iso_millis)


def _metrics(value: object) -> dict | None:
    if not isinstance(value, dict):
        return None
    return {name: _count(value.get(name)) for name in _METRICS}


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_COUNT:
        return value
    return None


def _source(value: object) -> str | None:
    """The client's name; v1.1 sends it as a link: <a href="..." rel="nofollow">Name</a>."""
    if not isinstance(value, str):
        return None
    if "<" in value:
        value = _HTML_TAG.sub("", value)
    if "&" in value:
        value = html.unescape(value)
    return value.strip() or None


def _rules(value: object) -> list[dict]:
    return [
        {"id": _label(rule.get("id")), "tag": _label(rule.get("tag"))}
        for rule in _list(value)
        if isinstance(rule, dict)
    ]


def _label(value: object) -> str | None:
    """Rule ids and tags as strings: real payloads also carry them as numbers, or null."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else _EMPTY


def _list(value: object) -> list | tuple:
    return value if isinstance(value, list) else _NONE
