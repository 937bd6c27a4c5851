"""Gold's rows from silver's, as Spark expressions: per hour partition (dt, hour) of silver, the
count of posts by topic, hashtag, entity and domain, and of those silver labels relevant
(datalake.layout.GOLD_COLUMNS).

Every count is of distinct posts (edit_root_id), not of rows: silver holds one row per post, so
the two agree, and a read that meets a post twice (a silver batch between its moves and its
deletes) still counts it once.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from datalake.layout import (
    GOLD_COLUMNS, GOLD_DOMAINS_HOURLY, GOLD_ENTITIES_HOURLY, GOLD_HASHTAGS_HOURLY, GOLD_TOPIC_HOURLY,
    PARTITION_COLUMNS, Zone,
)
from tweets.relevance import RELEVANT

# The silver columns gold reads.
SILVER_READS = ("edit_root_id", "author_id", "is_retweet", "is_quote", "is_reply", "relevance_label", "topics",
                "hashtags", "entities", "domains") + PARTITION_COLUMNS


def posts(condition: Column | None = None) -> Column:
    """Distinct posts (of those meeting `condition`)."""
    post = F.col("edit_root_id") if condition is None else F.when(condition, F.col("edit_root_id"))
    return F.count_distinct(post)


def relevant() -> Column:
    return F.col("relevance_label") == RELEVANT


def original() -> Column:
    flags = [F.coalesce(F.col(name), F.lit(False)) for name in ("is_retweet", "is_quote", "is_reply")]
    return ~(flags[0] | flags[1] | flags[2])


def by_element(silver: DataFrame, array: str, *fields: tuple[str, str]) -> DataFrame:
    """One row per (post, distinct element of its `array` column), with the post's relevance label:
    the element as column `element` (or its struct `fields` as (field, name) pairs)."""
    post = (*PARTITION_COLUMNS, "edit_root_id", "relevance_label")
    exploded = silver.select(*post, F.explode(F.array_distinct(array)).alias("element"))
    if fields:
        return exploded.select(*post, *[F.col(f"element.{field}").alias(name) for field, name in fields])
    return exploded


def topic_hourly(silver: DataFrame) -> DataFrame:
    rows = silver.select(*PARTITION_COLUMNS, "edit_root_id", "author_id", "is_retweet", "is_quote", "is_reply",
                         "relevance_label", F.explode(F.array_distinct("topics")).alias("topic"))
    return rows.groupBy(*PARTITION_COLUMNS, "topic").agg(
        posts().alias("tweets"),
        posts(relevant()).alias("relevant_tweets"),
        posts(original()).alias("originals"),
        posts(F.col("is_retweet")).alias("retweets"),
        posts(F.col("is_quote")).alias("quotes"),
        posts(F.col("is_reply")).alias("replies"),
        F.count_distinct("author_id").alias("authors"),
    )


def element_hourly(silver: DataFrame, array: str, names: tuple[str, ...], fields: tuple[str, ...] = ()) -> DataFrame:
    rows = by_element(silver, array, *zip(fields, names))
    if not fields:
        rows = rows.withColumnRenamed("element", names[0])
    return rows.where(F.col(names[0]).isNotNull()).groupBy(*PARTITION_COLUMNS, *names).agg(
        posts().alias("tweets"), posts(relevant()).alias("relevant_tweets"))


def gold_tables(silver: DataFrame) -> dict[Zone, DataFrame]:
    """Each gold table's rows for the hours `silver` holds, columns in GOLD_COLUMNS order."""
    tables = {
        GOLD_TOPIC_HOURLY: topic_hourly(silver),
        GOLD_HASHTAGS_HOURLY: element_hourly(silver, "hashtags", ("hashtag",)),
        GOLD_ENTITIES_HOURLY: element_hourly(silver, "entities", ("entity", "label"), ("text", "label")),
        GOLD_DOMAINS_HOURLY: element_hourly(silver, "domains", ("domain",)),
    }
    return {table: rows.select(*GOLD_COLUMNS[table][0], *[F.col(c).cast("long") for c in GOLD_COLUMNS[table][1]],
                               *PARTITION_COLUMNS)
            for table, rows in tables.items()}
