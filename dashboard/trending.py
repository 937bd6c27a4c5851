"""Trending hashtags, entities and domains: how much more a term was tweeted in the newest hour of
gold than in an average hour of the 24 before it, from the gold hourly tables alone (pyarrow, no
Spark). Growth, new terms and the ranking: docs/architecture.md, "Dashboard", Trending.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc

WINDOW_HOURS = 24


@dataclass(frozen=True)
class Trend:
    """One term's last hour against the hourly mean of the hours before it."""

    term: dict[str, str | None]  # the gold table's group columns, e.g. {"hashtag": "AI"}
    tweets: int
    prior_hourly_mean: float
    growth: float | None

    @property
    def new(self) -> bool:
        return self.growth is None

    def as_dict(self) -> dict:
        return {**self.term, "tweets": self.tweets, "prior_hourly_mean": round(self.prior_hourly_mean, 3),
                "growth": None if self.growth is None else round(self.growth, 3), "new": self.new}


def hour_starts(table: pa.Table) -> pa.Array:
    """The UTC start of each row's hour partition, from its dt and hour (strings) columns."""
    text = pc.binary_join_element_wise(table["dt"], table["hour"], " ")
    return pc.assume_timezone(pc.strptime(text, format="%Y-%m-%d %H", unit="s"), "UTC")


def newest_hour(topic_hourly: pa.Table) -> datetime | None:
    """The newest hour in gold/topic_hourly: what "the last hour" means for trends and ranges."""
    if topic_hourly.num_rows == 0:
        return None
    return pc.max(hour_starts(topic_hourly)).as_py().astimezone(timezone.utc)


def trending(hourly: pa.Table, group_columns: Sequence[str], last_hour: datetime | None,
             window_hours: int = WINDOW_HOURS, limit: int | None = None, count: str = "tweets") -> list[Trend]:
    """The terms of a gold hourly table (dt, hour, the group columns, its `count` column) that were
    tweeted in `last_hour`, ranked as docs/architecture.md ("Dashboard", Trending) says; the top
    `limit` of them if given."""
    if last_hour is None or hourly.num_rows == 0:
        return []
    starts = hour_starts(hourly)
    last = pa.scalar(last_hour.astimezone(timezone.utc), type=starts.type)
    first = pa.scalar(last_hour.astimezone(timezone.utc) - timedelta(hours=window_hours), type=starts.type)
    in_window = pc.and_(pc.greater_equal(starts, first), pc.less_equal(starts, last))
    is_last = pc.equal(starts, last)
    tweets = hourly[count].cast(pa.int64())
    zero = pa.scalar(0, pa.int64())
    counted = pa.table(
        {name: hourly[name] for name in group_columns}
        | {"last": pc.if_else(is_last, tweets, zero), "prior": pc.if_else(is_last, zero, tweets)}
    ).filter(in_window)
    totals = counted.group_by(list(group_columns)).aggregate([("last", "sum"), ("prior", "sum")])
    trends = []
    for row in totals.to_pylist():
        if not row["last_sum"]:
            continue
        mean = row["prior_sum"] / window_hours
        growth = row["last_sum"] / mean if mean else None
        trends.append(Trend({name: row[name] for name in group_columns}, row["last_sum"], mean, growth))
    trends.sort(key=_rank)
    return trends[:limit] if limit is not None else trends


def _rank(trend: Trend) -> tuple:
    growth = float("inf") if trend.growth is None else trend.growth
    return (-growth, -trend.tweets, tuple(str(value) for value in trend.term.values()))
