"""What the dashboard shows, as JSON-ready dicts: the page renders these and the /api/ endpoints
return them, so the numbers on the page are the endpoints' numbers.

Time ranges end at the newest hour in gold/topic_hourly, as trends do (dashboard/trending.py): a
backfilled archive shows its own last day, not an empty one. Topics and trends count every post, or
with `relevant` only those silver labels relevant (gold's relevant_tweets).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc

from config.settings import Settings
from datalake.display import iso_utc
from datalake.layout import GOLD_COLUMNS, GOLD_DOMAINS_HOURLY, GOLD_ENTITIES_HOURLY, GOLD_HASHTAGS_HOURLY, GOLD_TOPIC_HOURLY
from dashboard.trending import WINDOW_HOURS, hour_starts, newest_hour, trending
from dashboard import health
from dashboard.lake_reader import LakeReader
from tweets.topics import load_rules

# Hours of each range, counted back from the newest hour in gold (None: every hour there is).
RANGES = {"hour": 1, "day": 24, "week": 7 * 24, "all": None}
TOPIC_COUNTS = ("tweets", "originals", "retweets", "quotes", "replies")  # authors do not add up over hours
RELEVANT_COUNT = "relevant_tweets"  # gold's count of the posts silver labels relevant
TREND_TABLES = {"hashtags": GOLD_HASHTAGS_HOURLY, "entities": GOLD_ENTITIES_HOURLY, "domains": GOLD_DOMAINS_HOURLY}
ALL_TOPICS = "all"


class UnknownRange(ValueError):
    def __init__(self, name: str):
        super().__init__(f"unknown range {name!r}: use one of {', '.join(RANGES)}")


class Views:
    """The dashboard's views of one lake and pipeline; safe to call from the server's threads."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.reader = LakeReader(settings)
        self.topic_names = {topic.tag: topic.name for topic in load_rules(settings.x_rules_path).topics}
        # The reader's caches are not thread-safe; the probes have their own timeouts and need no lock.
        self._lake = threading.Lock()

    def topics(self, range_name: str = "day", relevant: bool = False) -> dict:
        """Tweets per topic and hour over a range, zero where gold has no row, and each topic's totals.
        `relevant`: relevant tweets only; gold does not break those down, so originals, retweets,
        quotes and replies are null."""
        if range_name not in RANGES:
            raise UnknownRange(range_name)
        with self._lake:
            gold = self.reader.gold(GOLD_TOPIC_HOURLY)
        last = newest_hour(gold)
        result = {"range": range_name, "relevant": relevant, "newest_hour": iso_utc(last), "first_hour": None,
                  "hour_starts": [], "topics": []}
        if last is None:
            return result
        starts = hour_starts(gold)
        hours = RANGES[range_name]
        first = last - timedelta(hours=hours - 1) if hours else pc.min(starts).as_py().astimezone(timezone.utc)
        rows = gold.append_column("hour_start", starts).filter(
            pc.greater_equal(starts, pa.scalar(first, type=starts.type)))
        hour_list = [first + timedelta(hours=n) for n in range(int((last - first) / timedelta(hours=1)) + 1)]
        index = {moment: n for n, moment in enumerate(hour_list)}
        sources = {"tweets": RELEVANT_COUNT} if relevant else {count: count for count in TOPIC_COUNTS}
        per_topic: dict[str, dict] = {}
        for row in rows.group_by(["topic", "hour_start"]).aggregate([(c, "sum") for c in sources.values()]).to_pylist():
            topic = per_topic.setdefault(row["topic"], {
                "topic": row["topic"], "name": self.topic_names.get(row["topic"], row["topic"]),
                **{count: 0 if count in sources else None for count in TOPIC_COUNTS},
                "tweets_per_hour": [0] * len(hour_list)})
            for count, column in sources.items():
                topic[count] += row[f"{column}_sum"]
            hour = index[row["hour_start"].astimezone(timezone.utc)]
            topic["tweets_per_hour"][hour] += row[f"{sources['tweets']}_sum"]
        result.update(first_hour=iso_utc(first), hour_starts=[iso_utc(moment) for moment in hour_list],
                      topics=sorted(per_topic.values(), key=lambda t: (-t["tweets"], t["topic"])))
        return result

    def trending(self, limit: int = 10, relevant: bool = False) -> dict:
        """The top trends of hashtags, entities (of the labels TREND_ENTITY_LABELS names) and domains
        in the newest hour of gold; `relevant`: of relevant tweets only."""
        with self._lake:
            last = newest_hour(self.reader.gold(GOLD_TOPIC_HOURLY))
            tables = {name: self.reader.gold(zone) for name, zone in TREND_TABLES.items()}
        tables["entities"] = of_labels(tables["entities"], self.settings.trend_entity_label_list)
        count = RELEVANT_COUNT if relevant else "tweets"
        return {
            "last_hour": iso_utc(last),
            "window_hours": WINDOW_HOURS,
            "relevant": relevant,
            **{name: [trend.as_dict() for trend in
                      trending(table, GOLD_COLUMNS[TREND_TABLES[name]][0], last, limit=limit, count=count)]
               for name, table in tables.items()},
        }

    def tweets(self, topic: str | None = None, limit: int = 20) -> dict:
        """The newest relevant silver tweets, of one topic (a tag) or of all."""
        topic = None if topic in (None, "", ALL_TOPICS) else topic
        with self._lake:
            rows, partitions_read = self.reader.newest_tweets(topic, limit, self._hours_of(topic))
        return {
            "topic": topic or ALL_TOPICS,
            "limit": limit,
            "hour_partitions_read": partitions_read,
            "tweets": [tweet_view(row) for row in rows],
        }

    def _hours_of(self, topic: str | None) -> Callable[[str], bool] | None:
        """Which silver hours (dt=…/hour=…) can hold tweets of `topic`: those gold counts it in, and
        every hour from gold's newest on (the gold job follows silver by a trigger or two). A rare
        topic then reads a few partitions, not a week of them. None (every hour) for all topics."""
        if topic is None:
            return None
        gold = self.reader.gold(GOLD_TOPIC_HOURLY)
        if gold.num_rows == 0:
            return None
        keys = pc.binary_join_element_wise("dt=", gold["dt"], "/hour=", gold["hour"], "")
        newest = pc.max(keys).as_py()
        hours = set(keys.filter(pc.and_(pc.equal(gold["topic"], topic), pc.greater(gold["tweets"], 0))).to_pylist())
        return lambda key: key in hours or key >= newest

    def topic_tags(self) -> list[str]:
        """The topics of the rules, then any other topic gold has (rules change; gold keeps history)."""
        with self._lake:
            in_gold = set(self.reader.gold(GOLD_TOPIC_HOURLY)["topic"].to_pylist())
        return list(self.topic_names) + sorted(in_gold - set(self.topic_names) - {None})

    def health(self) -> dict:
        """Worker counters, rows and newest data per zone, quarantine, consumer lag, processes."""
        with self._lake:
            lake = health.zones(self.reader)
        return {
            "checked_at": iso_utc(datetime.now(timezone.utc).replace(microsecond=0)),
            "lake_root": self.settings.lake_root,
            "worker": health.worker_counters(self.settings.faust_web_port),
            **lake,
            "consumer_lag": health.consumer_lag(self.settings),
            "supervised": health.processes(self.settings),
        }


def of_labels(entities: pa.Table, labels: list[str]) -> pa.Table:
    """The rows of gold/entities_hourly whose label is one of `labels`: a number, a date or a time
    (CARDINAL, DATE, TIME...) trends every hour and says nothing about the field."""
    return entities.filter(pc.is_in(entities["label"], value_set=pa.array(labels, pa.string())))


def tweet_view(row: dict) -> dict:
    author = row["author_username"]
    return {
        "tweet_id": row["tweet_id"],
        "created_at": iso_utc(row["created_at"]),
        "text": row["text"],
        "author_username": author,
        "author_id": row["author_id"],
        "topics": row["topics"] or [],
        "relevance": None if row["relevance"] is None else round(row["relevance"], 3),
        "url": f"https://x.com/{author or 'i/web'}/status/{row['tweet_id']}",
    }
