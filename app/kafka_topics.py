"""Topic declarations: the raw topic (bytes as received), the typed topic, the dead-letter topic,
the compliance topic (what X told the lake to delete)."""
from __future__ import annotations

from datetime import timedelta

from app.faust_app import app
from app.models import DeadLetter, Deletion, Tweet
from config.settings import get_settings

_settings = get_settings()
_retention = timedelta(milliseconds=_settings.topic_retention_ms)

raw_topic = app.topic(
    _settings.topic_raw,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=_settings.topic_partitions,
    retention=_retention,
)

typed_topic = app.topic(
    _settings.topic_typed,
    key_type=bytes,
    value_type=Tweet,
    key_serializer="raw",
    partitions=_settings.topic_partitions,
    retention=_retention,
)

dead_letter_topic = app.topic(
    _settings.topic_dead_letter,
    key_type=bytes,
    value_type=DeadLetter,
    key_serializer="raw",
    partitions=_settings.topic_partitions,
    retention=_retention,
)

compliance_topic = app.topic(
    _settings.topic_compliance,
    key_type=bytes,
    value_type=Deletion,
    key_serializer="raw",
    partitions=_settings.topic_partitions,
    retention=_retention,
)
