"""created_at against the time in the tweet's snowflake id: a contradiction goes to the dead
letters, pre-snowflake ids are not checked."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from tweets.normalizer import Accepted, FilterPolicy, Rejected, normalize

KEEP_ALL = FilterPolicy(require_topic=False)
MADE = datetime(2020, 4, 5, 10, 46, 44, 123000, tzinfo=timezone.utc)


def snowflake(moment: datetime, sequence: int = 7) -> str:
    return str(((int(moment.timestamp() * 1000) - 1_288_834_974_657) << 22) | sequence)


def outcome(tweet_id: str, created_at: str):
    message = {"data": {"id": tweet_id, "text": "Notes on machine learning", "created_at": created_at}}
    return normalize(orjson.dumps(message), policy=KEEP_ALL)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_the_year_one_is_rejected_with_both_times():
    result = outcome(snowflake(MADE), "0001-01-01T00:00:00Z")
    assert isinstance(result, Rejected) and result.reason == "created_at_contradicts_id"
    assert "0001-01-01T00:00:00.000Z" in result.message and "2020-04-05T10:46:44.123Z" in result.message


def test_created_at_as_x_writes_it_is_accepted():
    """v1.1 gives whole seconds, so created_at is up to a second behind the id."""
    assert isinstance(outcome(snowflake(MADE), "Sun Apr 05 10:46:44 +0000 2020"), Accepted)
    assert isinstance(outcome(snowflake(MADE), iso(MADE)), Accepted)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(seconds=60), True),
        (timedelta(seconds=-60), True),
        (timedelta(seconds=60, milliseconds=1), False),
        (timedelta(seconds=-60, milliseconds=-1), False),
        (timedelta(minutes=-15), False),  # the smallest time-zone offset
        (timedelta(hours=2), False),
    ],
)
def test_a_minute_either_way_is_tolerated(offset, accepted):
    assert isinstance(outcome(snowflake(MADE), iso(MADE + offset)), Accepted) is accepted


@pytest.mark.parametrize("tweet_id", ["20", "1234567890", "29700859247"])
def test_pre_snowflake_ids_carry_no_time_and_are_not_checked(tweet_id):
    assert isinstance(outcome(tweet_id, "2008-06-01T12:00:00Z"), Accepted)
    assert isinstance(outcome(tweet_id, "0001-01-01T00:00:00Z"), Accepted)


def test_a_future_created_at_is_rejected_too():
    result = outcome(snowflake(MADE), "2999-01-01T00:00:00.000Z")
    assert isinstance(result, Rejected) and result.reason == "created_at_contradicts_id"


def test_ids_beyond_63_bits_are_not_read_as_snowflakes():
    assert isinstance(outcome(str(2**64), "2020-04-05T10:46:44Z"), Accepted)
