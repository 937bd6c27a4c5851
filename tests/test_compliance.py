"""Compliance messages: X's three forms of "delete this" (batch compliance results, v1.1 stream
delete notices, v2 compliance events) read into deletions, the events that delete nothing told
apart, bad lines reported with their line numbers, and tweets never taken for deletions."""
from __future__ import annotations

import gzip
from datetime import datetime, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tweets.compliance import (
    BadLine,
    ComplianceFileError,
    Deletion,
    Ignored,
    deletion_of,
    forgotten_record,
    parse_line,
    read_compliance_file,
)
from agents.sources.synthetic import SyntheticTweets
from app.models import Deletion as DeletionRecord

BATCH_DELETE = {"id": "1500000000000000001", "action": "delete", "created_at": "2022-03-05T10:00:00.000Z",
                "redacted_at": "2023-01-02T08:00:00.000Z", "reason": "deactivated"}
V1_DELETE = {"delete": {"status": {"id": 1234, "id_str": "1234", "user_id": 3, "user_id_str": "3"},
                        "timestamp_ms": "1412020426423"}}
V2_DELETE = {"data": {"delete": {"tweet": {"id": "1234", "author_id": "5678"}, "event_at": "2021-07-06T18:22:42.991Z"}}}
V1_STATUS = {
    "created_at": "Sun Apr 05 10:46:44 +0000 2020", "id": 1246751115047862314, "id_str": "1246751115047862314",
    "text": "Deep learning, explained", "user": {"id": 900000001, "id_str": "900000001", "screen_name": "ada"},
    "entities": {"hashtags": [], "user_mentions": [], "urls": [], "symbols": []}, "lang": "en",
}


def v2_event(event: str, target: str, target_id: str = "99", **fields) -> dict:
    return {"data": {event: {target: {"id": target_id}, "event_at": "2021-07-06T18:22:42.991Z", **fields}}}


def line(obj: object) -> bytes:
    return orjson.dumps(obj)


# --- the three forms ------------------------------------------------------------------------------


def test_batch_compliance_result_deletes_a_tweet_by_default():
    assert parse_line(line(BATCH_DELETE)) == Deletion(
        id="1500000000000000001", kind="tweet", reason="deactivated", source="batch_compliance",
        requested_at="2023-01-02T08:00:00.000Z",
    )


def test_a_users_job_result_deletes_the_user():
    deletion = parse_line(line(BATCH_DELETE), batch_kind="user")
    assert (deletion.id, deletion.kind) == ("1500000000000000001", "user")


def test_batch_result_without_a_reason_or_time_is_still_a_deletion():
    deletion = deletion_of({"id": "7", "action": "delete", "redacted_at": "not a time"})
    assert deletion == Deletion("7", "tweet", "delete", "batch_compliance", None)


def test_batch_results_other_than_delete_delete_nothing():
    assert parse_line(line({**BATCH_DELETE, "action": "scrub_geo"})) == Ignored("scrub_geo")


def test_v1_delete_notice():
    assert parse_line(line(V1_DELETE)) == Deletion(
        id="1234", kind="tweet", reason="deleted", source="v1.1_delete", requested_at="2014-09-29T19:53:46.423Z",
    )


def test_v1_delete_notice_takes_id_str_then_id():
    numeric = {"delete": {"status": {"id": 1246751115047862314}, "timestamp_ms": 1412020426423}}
    assert deletion_of(numeric) == Deletion("1246751115047862314", "tweet", "deleted", "v1.1_delete",
                                            "2014-09-29T19:53:46.423Z")
    both = {"delete": {"status": {"id": 1, "id_str": "2"}}}
    assert deletion_of(both).id == "2"
    assert deletion_of(both).requested_at is None


@pytest.mark.parametrize("notice", ["scrub_geo", "status_withheld", "user_withheld"])
def test_other_v1_notices_delete_nothing(notice):
    assert deletion_of({notice: {"user_id": 3}}) == Ignored(notice)


def test_v2_tweet_delete_event():
    assert parse_line(line(V2_DELETE)) == Deletion(
        id="1234", kind="tweet", reason="delete", source="v2_compliance", requested_at="2021-07-06T18:22:42.991Z",
    )


@pytest.mark.parametrize("event", ["user_delete", "user_protect", "user_suspend"])
def test_v2_user_events_that_delete_the_user(event):
    assert deletion_of(v2_event(event, "user")) == Deletion("99", "user", event, "v2_compliance",
                                                           "2021-07-06T18:22:42.991Z")


@pytest.mark.parametrize("event, target", [
    ("withheld", "tweet"), ("drop", "tweet"), ("undrop", "tweet"), ("scrub_geo", "tweet"), ("tweet_edit", "tweet"),
    ("user_unprotect", "user"), ("user_undelete", "user"), ("user_unsuspend", "user"), ("user_withheld", "user"),
    ("user_scrub_geo", "user"), ("user_profile_modification", "user"),
])
def test_v2_events_that_delete_nothing(event, target):
    assert parse_line(line(v2_event(event, target, withheld_in_countries=["DE"]))) == Ignored(event)


def test_event_times_become_utc_with_milliseconds():
    event = v2_event("user_delete", "user")
    event["data"]["user_delete"]["event_at"] = "2021-07-06T20:22:42.5+02:00"
    assert deletion_of(event).requested_at == "2021-07-06T18:22:42.500Z"
    event["data"]["user_delete"]["event_at"] = 1625595762
    assert deletion_of(event).requested_at is None


# --- bad lines --------------------------------------------------------------------------------------


def test_not_json():
    assert parse_line(b'{"id": "1", "action": "del').reason == "not_json"


@pytest.mark.parametrize("obj, message", [
    ({**BATCH_DELETE, "id": "15e17"}, "id: not an X id: '15e17'"),
    ({**BATCH_DELETE, "id": None}, "id is missing"),
    ({"delete": {"status": {"id_str": "-1"}}}, "delete.status.id_str: not an X id: '-1'"),
    ({"delete": {"timestamp_ms": "1412020426423"}}, "delete.status.id_str is missing"),
    (v2_event("delete", "tweet", "abc"), "data.delete.tweet.id: not an X id: 'abc'"),
    ({"data": {"user_delete": {"user": {"id": ["99"]}}}}, "data.user_delete.user.id: not an X id: list"),
    ({"data": {"user_suspend": "99"}}, "data.user_suspend.user.id is missing"),
])
def test_a_deletion_without_an_x_id_is_a_bad_line(obj, message):
    assert parse_line(line(obj)) == BadLine("bad_id", message)
    assert deletion_of(obj) is None


@pytest.mark.parametrize("obj", [
    {"errors": [{"title": "operational-disconnect"}]},
    {"data": {"unknown_event": {"tweet": {"id": "1"}}}},
    {"delete": {"status": {"id_str": "1"}}, "extra": 1},
    {"action": "delete"},
    [BATCH_DELETE],
    "delete",
    None,
])
def test_json_that_is_no_compliance_message(obj):
    outcome = parse_line(line(obj))
    assert isinstance(outcome, BadLine) and outcome.reason == "not_compliance", outcome
    assert deletion_of(obj) is None


def test_tweets_are_not_taken_for_deletions():
    tweets = [orjson.loads(m) for m in SyntheticTweets(seed=3, malformed_share=0).messages(200)]
    tweets += [V1_STATUS, {"data": {"id": "1", "text": "scrub_geo", "withheld": {"country_codes": ["DE"]}}},
               {"data": {"id": "1234"}}, {"id": "1234", "text": "delete"}]
    for tweet in tweets:
        assert deletion_of(tweet) is None, tweet
        assert parse_line(line(tweet)).reason == "not_compliance"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["data", "delete", "status", "id", "id_str", "action", "reason", "redacted_at",
                         "timestamp_ms", "event_at", "tweet", "user", "user_delete", "scrub_geo"]),
        children, max_size=4,
    ),
    max_leaves=15,
)


@st.composite
def a_message_with_one_field_replaced(draw) -> dict:
    message = orjson.loads(orjson.dumps(draw(st.sampled_from([BATCH_DELETE, V1_DELETE, V2_DELETE,
                                                                v2_event("user_delete", "user")]))))
    parent = message
    while isinstance(parent, dict) and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(parent)))
        if not isinstance(parent[key], dict):
            break
        parent = parent[key]
    parent[draw(st.sampled_from(sorted(parent)))] = draw(json_values)
    return message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | (json_values | a_message_with_one_field_replaced()).map(orjson.dumps))
def test_any_line_gives_an_outcome_and_a_deletion_always_has_an_x_id(payload):
    outcome = parse_line(payload)
    assert isinstance(outcome, (Deletion, Ignored, BadLine))
    if isinstance(outcome, Deletion):
        assert outcome.id.isdigit() and outcome.kind in ("tweet", "user")
        assert outcome.requested_at is None or datetime.fromisoformat(outcome.requested_at).tzinfo is not None


# --- files ------------------------------------------------------------------------------------------


FILE_LINES = [line(BATCH_DELETE), b"", b"not json", b"   ", line({**BATCH_DELETE, "id": "2", "action": "other"}),
              line(V2_DELETE) + b"\r", line({**BATCH_DELETE, "id": "x"})]


def expected_file_outcomes(kind: str) -> list:
    return [
        (1, Deletion("1500000000000000001", kind, "deactivated", "batch_compliance", "2023-01-02T08:00:00.000Z")),
        (3, "not_json"),
        (5, Ignored("other")),
        (6, Deletion("1234", "tweet", "delete", "v2_compliance", "2021-07-06T18:22:42.991Z")),
        (7, "bad_id"),
    ]


def simplified(outcomes) -> list:
    return [(number, o.reason if isinstance(o, BadLine) else o) for number, o in outcomes]


@pytest.mark.parametrize("kind", ["tweet", "user"])
def test_a_file_gives_each_line_its_number_and_skips_blank_ones(tmp_path, kind):
    path = tmp_path / "results.json"
    path.write_bytes(b"\n".join(FILE_LINES) + b"\n")
    assert simplified(read_compliance_file(path, batch_kind=kind)) == expected_file_outcomes(kind)


def test_gzip_is_told_by_its_magic_bytes_whatever_the_name(tmp_path):
    path = tmp_path / "results.json"
    path.write_bytes(gzip.compress(b"\n".join(FILE_LINES)))
    assert simplified(read_compliance_file(path)) == expected_file_outcomes("tweet")


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ComplianceFileError, match="missing.json: cannot read it: .*No such file"):
        list(read_compliance_file(tmp_path / "missing.json"))


def test_a_gzip_cut_short_yields_its_lines_then_says_where_it_stopped(tmp_path):
    path = tmp_path / "results.json.gz"
    whole = gzip.compress(b"\n".join([line(BATCH_DELETE)] * 2000))
    path.write_bytes(whole[: len(whole) // 2])
    outcomes = []
    with pytest.raises(ComplianceFileError, match=r"results.json.gz: cannot read it after line \d+"):
        for outcome in read_compliance_file(path):
            outcomes.append(outcome)
    assert outcomes and outcomes[0] == (1, parse_line(line(BATCH_DELETE)))


def test_an_unknown_batch_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="batch_kind"):
        read_compliance_file(tmp_path / "results.json", batch_kind="tweets")


# --- the compliance topic's record --------------------------------------------------------------------


def test_the_forgotten_record_is_the_compliance_topics_deletion_record():
    forgotten_at = datetime(2024, 5, 13, 16, 5, 15, 123456, tzinfo=timezone.utc)
    record = forgotten_record(deletion_of(V1_DELETE), forgotten_at)
    assert record == {"id": "1234", "kind": "tweet", "reason": "deleted", "source": "v1.1_delete",
                      "requested_at": "2014-09-29T19:53:46.423Z", "forgotten_at": "2024-05-13T16:05:15.123456Z"}
    assert set(record) == set(DeletionRecord._options.fields)
    typed = DeletionRecord.from_data(orjson.loads(orjson.dumps(record)))
    assert typed.forgotten_at == forgotten_at
    # To the second only: Faust's own ISO parser (without ciso8601) reads ".423" as 423 µs.
    assert typed.requested_at.replace(microsecond=0) == datetime(2014, 9, 29, 19, 53, 46, tzinfo=timezone.utc)
    no_time = forgotten_record(deletion_of({"data": {"user_delete": {"user": {"id": "9"}}}}), forgotten_at)
    assert no_time["requested_at"] is None and DeletionRecord.from_data(no_time).requested_at is None
