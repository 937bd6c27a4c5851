"""normalize() never raises: any bytes, any JSON, and tweet-shaped or delete-shaped JSON with
fields of any type give one of the four outcomes, and the guard for unforeseen errors
("mapping_error") stays unused."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tweets.normalizer import Accepted, Deleted, FilterPolicy, Filtered, Lineage, Rejected, normalize
from tweets.topics import TopicMatcher
from agents.sources.synthetic import SyntheticTweets
from app.models import Tweet

MATCHER = TopicMatcher.from_file()
POLICIES = (
    FilterPolicy(matcher=MATCHER, languages=frozenset({"en"}), max_payload_bytes=512_000),
    FilterPolicy(matcher=MATCHER, languages=None, max_payload_bytes=512_000, require_topic=False),
)
FIELDS = set(Tweet._options.fields)
EXAMPLES = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
ids = st.from_regex(r"\A[0-9]{1,19}\Z") | json_values
texts = st.text(max_size=300) | st.sampled_from(["#AI and #MachineLearning", "big data", "RT @a: deep learning…"])
dates = (
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.isoformat())
    | st.datetimes().map(lambda d: d.strftime("%a %b %d %H:%M:%S +0000 %Y"))
    | st.just("2024-05-13T16:05:12.000Z")
    | json_values
)


def objects(required=(), **fields):
    """Dicts that may have (or, if `required`, have) these fields, each of its strategy or of any
    JSON type."""
    fields = {name: strategy | json_values for name, strategy in fields.items()}
    return st.fixed_dictionaries(
        {name: fields.pop(name) for name in required}, optional=fields
    )


entity = st.dictionaries(
    st.sampled_from(["tag", "text", "username", "screen_name", "expanded_url", "url", "media_key", "start"]),
    json_values,
    max_size=4,
)
entities = st.dictionaries(
    st.sampled_from(["hashtags", "mentions", "cashtags", "urls", "user_mentions", "symbols", "media"]),
    st.lists(entity, max_size=3) | json_values,
    max_size=5,
)
references = st.lists(objects(type=st.sampled_from(["retweeted", "quoted", "replied_to"]), id=ids), max_size=3)
metrics = st.dictionaries(
    st.sampled_from(["retweet_count", "reply_count", "like_count", "quote_count", "bookmark_count", "impression_count"]),
    json_values,
)
v2_posts = objects(
    ("id", "text", "created_at"),
    id=ids,
    text=texts,
    created_at=dates,
    author_id=ids,
    lang=st.sampled_from(["en", "fr", "und"]),
    conversation_id=ids,
    in_reply_to_user_id=ids,
    referenced_tweets=references,
    referenced_posts=references,
    note_tweet=objects(text=texts, entities=entities),
    note_post=objects(text=texts, entities=entities),
    entities=entities,
    public_metrics=metrics,
    source=st.text(max_size=30),
    edit_history_tweet_ids=st.lists(ids, max_size=2),
    withheld=objects(copyright=st.booleans(), country_codes=st.lists(st.text(max_size=2))),
)
v2_messages = objects(
    ("data",),
    data=v2_posts,
    includes=objects(users=st.lists(objects(id=ids, username=st.text(max_size=15)), max_size=3), tweets=st.lists(v2_posts, max_size=2)),
    matching_rules=st.lists(objects(id=ids, tag=st.text(max_size=15)), max_size=3),
    errors=json_values,
)
v1_fields = dict(
    id_str=ids,
    id=ids,
    text=texts,
    full_text=texts,
    created_at=dates,
    lang=st.sampled_from(["en", "es"]),
    user=objects(id_str=ids, id=ids, screen_name=st.text(max_size=15)),
    entities=entities,
    extended_tweet=objects(full_text=texts, entities=entities),
    is_quote_status=st.booleans(),
    quoted_status_id_str=ids,
    in_reply_to_status_id_str=ids,
    in_reply_to_user_id_str=ids,
    favorite_count=json_values,
    source=st.just('<a href="https://x.example" rel="nofollow">App &amp; Co</a>'),
    matching_rules=st.lists(objects(id=ids, tag=json_values), max_size=2),
)
v1_statuses = objects(
    ("id_str", "text", "created_at"),
    **v1_fields,
    retweeted_status=objects(**v1_fields),
    quoted_status=objects(**v1_fields),
)


def check(payload: bytes) -> None:
    for policy in POLICIES:
        outcome = normalize(payload, policy=policy, lineage=Lineage("tweets.raw", 0, 7), ingested_at=datetime.now(timezone.utc))
        assert isinstance(outcome, (Accepted, Filtered, Deleted, Rejected))
        event(f"{type(outcome).__name__} {getattr(outcome, 'reason', '')}")  # --hypothesis-show-statistics
        if isinstance(outcome, Rejected):
            assert outcome.reason != "mapping_error", outcome.message
        elif isinstance(outcome, Filtered):
            assert outcome.reason in ("language", "off_topic") and outcome.tweet_id.isdigit()
        elif isinstance(outcome, Deleted):
            deletion = outcome.deletion
            assert deletion.id.isdigit() and deletion.kind in ("tweet", "user") and isinstance(deletion.reason, str)
        else:
            row = outcome.row
            assert set(row) == FIELDS
            assert row["raw"] == payload.decode()
            assert orjson.loads(orjson.dumps(row)) == row
            Tweet.from_data(row)


@EXAMPLES
@given(st.binary(max_size=2000))
def test_any_bytes(payload):
    check(payload)


@EXAMPLES
@given(json_values)
def test_any_json(value):
    check(orjson.dumps(value))


@EXAMPLES
@given(v2_messages | v2_posts)
def test_v2_shaped_json_with_fields_of_any_type(message):
    check(orjson.dumps(message))


@EXAMPLES
@given(v1_statuses)
def test_v1_shaped_json_with_fields_of_any_type(status):
    check(orjson.dumps(status))


v2_events = st.fixed_dictionaries({
    "data": st.dictionaries(
        st.sampled_from(["delete", "user_delete", "user_protect", "scrub_geo", "withheld", "tweet_edit"]),
        objects(tweet=objects(id=ids, author_id=ids), user=objects(id=ids), event_at=dates),
        min_size=1, max_size=2,
    ) | json_values,
})
v1_deletes = st.fixed_dictionaries({
    "delete": objects(status=objects(id_str=ids, id=ids, user_id=ids), timestamp_ms=ids) | json_values,
})
batch_results = objects(("id", "action"), id=ids, action=st.sampled_from(["delete", "scrub_geo"]),
                        redacted_at=dates, reason=st.sampled_from(["deleted", "suspended"]))


@EXAMPLES
@given(v2_events | v1_deletes | batch_results)
def test_delete_shaped_json_with_fields_of_any_type(message):
    check(orjson.dumps(message))


SYNTHETIC = [orjson.loads(m) for m in SyntheticTweets(seed=11, malformed_share=0).messages(40)]


def paths(value, prefix=()):
    """Every key path into a JSON value."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield prefix + (key,)
        yield from paths(child, prefix + (key,))


@st.composite
def synthetic_with_one_field_replaced(draw):
    message = draw(st.sampled_from(SYNTHETIC))
    path = draw(st.sampled_from(list(paths(message))))
    copy = orjson.loads(orjson.dumps(message))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = draw(json_values)
    return copy


@EXAMPLES
@given(synthetic_with_one_field_replaced())
def test_realistic_messages_with_one_field_of_any_type(message):
    check(orjson.dumps(message))


@EXAMPLES
@given(st.sampled_from([orjson.dumps(m) for m in SYNTHETIC]), st.integers(min_value=0), st.binary(max_size=3))
def test_realistic_messages_cut_or_corrupted(payload, at, junk):
    at %= len(payload)
    check(payload[:at])
    check(payload[:at] + junk + payload[at:])
