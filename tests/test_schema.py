"""The sink's Spark schema, the worker's faust.Record and the plain record both come from cannot
drift apart."""
from __future__ import annotations

import dataclasses
import typing

from pyspark.sql import types as T

from app import models
from spark_sink.schema import bronze_schema, record_fields, spark_type, tweet_schema
from tweets import records


def test_every_record_field_is_a_spark_column_and_a_faust_field_of_the_matching_type():
    schema = tweet_schema()
    plain = record_fields(records.Tweet)
    assert schema.fieldNames() == list(plain) == list(models.Tweet._options.fields)
    for name, annotation in plain.items():
        assert schema[name].dataType == spark_type(annotation)
    for name in ("DeadLetter", "Deletion", "PublicMetrics"):
        record = getattr(models, name)
        assert list(record._options.fields) == list(record_fields(getattr(records, name)))
        assert record._options.defaults == {f.name: f.default for f in dataclasses.fields(getattr(records, name))
                                            if f.default is not dataclasses.MISSING}
    assert models.Tweet._options.fields["referenced_tweets"] == typing.List[models.ReferencedTweet]


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
    from spark_sink.schema import forgotten_log_schema, record_schema
    from tweets.records import Deletion

    log_fields = {field.name: field.dataType for field in forgotten_log_schema().fields}
    record_fields = {field.name: field.dataType for field in record_schema(Deletion).fields}
    assert record_fields == log_fields
