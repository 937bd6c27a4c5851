"""dashboard.trending: growth of the last hour against the hourly mean of the 24 hours before it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from dashboard.trending import hour_starts, newest_hour, trending

LAST = datetime(2024, 5, 1, 7, tzinfo=timezone.utc)


def hourly(rows: list[tuple[datetime, str, int]], column: str = "hashtag") -> pa.Table:
    return pa.table({
        "dt": [moment.strftime("%Y-%m-%d") for moment, _, _ in rows],
        "hour": [moment.strftime("%H") for moment, _, _ in rows],
        column: [term for _, term, _ in rows],
        "tweets": pa.array([count for _, _, count in rows], pa.int64()),
    })


def ago(hours: int) -> datetime:
    return LAST - timedelta(hours=hours)


def by_term(trends) -> dict:
    return {trend.term["hashtag"]: trend for trend in trends}


def test_growth_is_the_last_hour_over_the_mean_of_the_24_before_with_missing_hours_as_zero():
    table = hourly([(ago(0), "AI", 12), (ago(1), "AI", 24), (ago(23), "AI", 24), (ago(0), "ML", 3),
                    (ago(5), "ML", 72)])
    trends = by_term(trending(table, ["hashtag"], LAST))
    assert trends["AI"].tweets == 12
    assert trends["AI"].prior_hourly_mean == pytest.approx(2.0)
    assert trends["AI"].growth == pytest.approx(6.0)
    assert trends["ML"].growth == pytest.approx(1.0)


def test_hours_outside_the_window_do_not_count():
    table = hourly([(ago(0), "AI", 6), (ago(24), "AI", 24), (ago(25), "AI", 1000), (LAST + timedelta(hours=1), "AI", 99)])
    (trend,) = trending(table, ["hashtag"], LAST)
    assert (trend.tweets, trend.prior_hourly_mean, trend.growth) == (6, 1.0, 6.0)


def test_a_term_without_prior_tweets_is_new_and_new_terms_rank_first_by_count():
    table = hourly([(ago(0), "AI", 50), (ago(3), "AI", 24), (ago(0), "fresh", 2), (ago(0), "newer", 5)])
    trends = trending(table, ["hashtag"], LAST)
    assert [t.term["hashtag"] for t in trends] == ["newer", "fresh", "AI"]
    assert [t.new for t in trends] == [True, True, False]
    assert trends[0].growth is None and trends[0].as_dict()["growth"] is None


def test_only_terms_tweeted_in_the_last_hour_trend_and_limit_keeps_the_top():
    table = hourly([(ago(0), "a", 10), (ago(1), "a", 24), (ago(0), "b", 10), (ago(1), "b", 48),
                    (ago(2), "gone", 100)])
    trends = trending(table, ["hashtag"], LAST, limit=1)
    assert [t.term["hashtag"] for t in trends] == ["a"]
    assert "gone" not in by_term(trending(table, ["hashtag"], LAST))


def test_rows_of_one_term_and_hour_add_up_and_group_columns_may_be_several():
    table = pa.table({"dt": ["2024-05-01"] * 3, "hour": ["07"] * 3, "entity": ["Spark", "Spark", "Spark"],
                      "label": ["PRODUCT", "PRODUCT", "ORG"], "tweets": pa.array([1, 2, 4], pa.int64())})
    trends = trending(table, ["entity", "label"], LAST)
    assert {(t.term["entity"], t.term["label"]): t.tweets for t in trends} == {("Spark", "PRODUCT"): 3, ("Spark", "ORG"): 4}


def test_the_last_hour_is_the_newest_hour_in_gold_not_the_clock():
    topic_hourly = pa.table({"dt": ["2019-12-31", "2020-01-01"], "hour": ["23", "00"], "topic": ["ai", "ai"],
                             "tweets": pa.array([1, 1], pa.int64())})
    assert newest_hour(topic_hourly) == datetime(2020, 1, 1, 0, tzinfo=timezone.utc)
    assert hour_starts(topic_hourly).to_pylist()[0] == datetime(2019, 12, 31, 23, tzinfo=timezone.utc)


def test_an_empty_gold_has_no_trends():
    empty = hourly([])
    assert newest_hour(empty) is None
    assert trending(empty, ["hashtag"], None) == []
    assert trending(empty, ["hashtag"], LAST) == []


def test_trends_of_another_count_rank_by_that_count():
    table = hourly([(ago(0), "AI", 12), (ago(1), "AI", 24), (ago(0), "ML", 6), (ago(1), "ML", 48), (ago(0), "spam", 9)])
    table = table.append_column("relevant_tweets", pa.array([6, 24, 6, 12, 0], pa.int64()))
    trends = trending(table, ["hashtag"], LAST, count="relevant_tweets")
    assert [(t.term["hashtag"], t.tweets, t.growth) for t in trends] == [("ML", 6, 12.0), ("AI", 6, 6.0)]
