"""The sink's Spark schema and the Tweet record cannot drift apart."""
from __future__ import annotations

import typing

from pyspark.sql import types as T

from app.models import Tweet
from spark_sink.schema import bronze_schema, spark_type, tweet_schema


def test_every_record_field_is_a_spark_column_of_the_matching_type():
    schema = tweet_schema()
    assert schema.fieldNames() == list(Tweet._options.fields)
    for name, annotation in Tweet._options.fields.items():
        assert schema[name].dataType == spark_type(annotation)


def test_spark_types_follow_the_annotations():
    assert spark_type(typing.Optional[str]) == T.StringType()
    assert spark_type(typing.List[str]) == T.ArrayType(T.StringType())
    assert tweet_schema()["created_at"].dataType == T.TimestampType()
    assert tweet_schema()["referenced_tweets"].dataType == T.ArrayType(
        T.StructType([T.StructField("type", T.StringType()), T.StructField("id", T.StringType())])
    )
    assert tweet_schema()["public_metrics"].dataType["like_count"].dataType == T.LongType()


def test_bronze_adds_the_partition_columns():
    assert bronze_schema().fieldNames()[-2:] == ["dt", "hour"]


def test_the_compliance_record_is_what_the_forgotten_log_holds():
    """The worker sends app.models.Deletion; the sink reads it with the log's schema (datalake.forgotten_log)."""
    from app.models import Deletion
    from spark_sink.schema import forgotten_log_schema, record_schema

    log_fields = {field.name: field.dataType for field in forgotten_log_schema().fields}
    record_fields = {field.name: field.dataType for field in record_schema(Deletion).fields}
    assert record_fields == log_fields
