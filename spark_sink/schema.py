"""Spark schemas derived from the plain records of tweets/records.py, the form the worker's
faust.Record classes come from too, so the sink parses exactly what the agent sends (without
importing Faust)."""
from __future__ import annotations

import dataclasses
import typing
from datetime import datetime

from pyspark.sql import types as T

from tweets.records import DeadLetter, Tweet
from datalake.layout import PARTITION_COLUMNS

_PRIMITIVES: dict[type, T.DataType] = {
    str: T.StringType(),
    int: T.LongType(),
    float: T.DoubleType(),
    bool: T.BooleanType(),
    datetime: T.TimestampType(),
}


def spark_type(annotation: typing.Any) -> T.DataType:
    """Map a record field annotation (Optional, List, nested Record, primitive) to a Spark type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        (inner,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return spark_type(inner)
    if origin in (list, typing.List):
        (item,) = typing.get_args(annotation)
        return T.ArrayType(spark_type(item), containsNull=True)
    if dataclasses.is_dataclass(annotation):
        return record_schema(annotation)
    try:
        return _PRIMITIVES[annotation]
    except KeyError:
        raise TypeError(f"no Spark type for record field type {annotation!r}") from None


def record_fields(record: type) -> dict[str, typing.Any]:
    """A record's fields and their types, in order."""
    hints = typing.get_type_hints(record)
    return {field.name: hints[field.name] for field in dataclasses.fields(record)}


def record_schema(record: type) -> T.StructType:
    return T.StructType(
        [T.StructField(name, spark_type(annotation), nullable=True) for name, annotation in record_fields(record).items()]
    )


def tweet_schema() -> T.StructType:
    """The typed topic's value: the `Tweet` record's fields, in the record's order."""
    return record_schema(Tweet)


def dead_letter_schema() -> T.StructType:
    return record_schema(DeadLetter)


def bronze_schema() -> T.StructType:
    """The bronze table: every Tweet field plus the partition columns."""
    return T.StructType(
        tweet_schema().fields + [T.StructField(column, T.StringType()) for column in PARTITION_COLUMNS]
    )


# Silver's columns besides the enrichment (tweets.enrich), in this order; the types of those taken
# from bronze are bronze's.
SILVER_FROM_BRONZE = (
    "tweet_id", "created_at", "text", "author_id", "author_username", "conversation_id", "in_reply_to_user_id",
    "is_retweet", "is_quote", "is_reply", "mentions", "urls", "public_metrics", "source_format",
    "edit_history_tweet_ids", "ingested_at",
)


def silver_schema() -> T.StructType:
    """The silver table: one row per post (edit_root_id), its newest version's bronze columns,
    the enrichment, where it came from (source_tweet_ids) and the partition columns."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from tweets.enrich import ENRICHMENT_ARROW_SCHEMA

    bronze = {field.name: field for field in tweet_schema().fields}
    return T.StructType(
        [T.StructField("edit_root_id", T.StringType())]
        + [bronze[name] for name in SILVER_FROM_BRONZE[:3]]
        + list(from_arrow_schema(ENRICHMENT_ARROW_SCHEMA).fields)
        + [bronze[name] for name in SILVER_FROM_BRONZE[3:]]
        + [
            T.StructField("original_tweet_id", T.StringType()),
            T.StructField("source_tweet_ids", T.ArrayType(T.StringType())),
            T.StructField("refined_at", T.TimestampType()),
            T.StructField("schema_version", T.IntegerType()),
        ]
        + [T.StructField(column, T.StringType()) for column in PARTITION_COLUMNS]
    )


def silver_arrow_schema():
    """Silver's columns in Arrow, dt and hour included (what deltalake writes and reads)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(silver_schema(), timezone="UTC")


def dead_letter_table_schema() -> T.StructType:
    """quarantine/dead_letter: the worker's letters, their letter_id (a hash of the letter, by
    which `lake forget` and `lake replay` delete one) and the day they failed."""
    return T.StructType(dead_letter_schema().fields + [T.StructField("letter_id", T.StringType()),
                                                       T.StructField("dt", T.StringType())])


def unreadable_schema() -> T.StructType:
    """quarantine/typed_unreadable: typed records the Tweet schema could not read, as text."""
    return T.StructType([
        T.StructField("reason", T.StringType()),
        T.StructField("value", T.StringType()),
        T.StructField("kafka_topic", T.StringType()),
        T.StructField("kafka_partition", T.IntegerType()),
        T.StructField("kafka_offset", T.LongType()),
        T.StructField("letter_id", T.StringType()),
        T.StructField("dt", T.StringType()),
    ])


def gold_schema(table) -> T.StructType:
    """A gold table (datalake.layout.GOLD_COLUMNS): its group columns, its counts, dt and hour."""
    from datalake.layout import GOLD_COLUMNS

    groups, counts = GOLD_COLUMNS[table]
    return T.StructType([T.StructField(name, T.StringType()) for name in groups]
                        + [T.StructField(name, T.LongType()) for name in counts]
                        + [T.StructField(column, T.StringType()) for column in PARTITION_COLUMNS])


def forgotten_log_schema() -> T.StructType:
    """The forgotten log's columns (datalake.forgotten_log.LOG_SCHEMA, the one definition)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from datalake.forgotten_log import LOG_SCHEMA

    return from_arrow_schema(LOG_SCHEMA)
