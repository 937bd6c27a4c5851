"""The worker's faust.Record classes, derived from the plain records of tweets/records.py (the
Spark jobs derive their schemas from the same ones): the typed, dead-letter and compliance topics'
values. JSON, with datetimes as ISO strings."""
from __future__ import annotations

import dataclasses
import types
import typing

import faust

from tweets import records
from tweets.normalizer import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "ReferencedTweet", "MatchingRule", "PublicMetrics", "Tweet", "DeadLetter", "Deletion"]


def faust_record(plain: type, derived: dict[type, type]) -> type[faust.Record]:
    """A faust.Record with the dataclass's fields, annotations and defaults, nested records
    replaced by their derived Record classes."""

    def as_record(annotation: typing.Any) -> typing.Any:
        if annotation in derived:
            return derived[annotation]
        args = typing.get_args(annotation)
        return annotation.copy_with(tuple(as_record(arg) for arg in args)) if args else annotation

    hints = typing.get_type_hints(plain)
    namespace: dict[str, typing.Any] = {"__annotations__": {}, "__module__": __name__, "__doc__": plain.__doc__}
    for field in dataclasses.fields(plain):
        namespace["__annotations__"][field.name] = as_record(hints[field.name])
        if field.default is not dataclasses.MISSING:
            namespace[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            namespace[field.name] = field.default_factory()
    options = {"serializer": "json", "isodates": True}
    return types.new_class(plain.__name__, (faust.Record,), options, lambda body: body.update(namespace))


_derived: dict[type, type] = {}
for _plain in (records.ReferencedTweet, records.MatchingRule, records.PublicMetrics, records.Tweet,
               records.DeadLetter, records.Deletion):
    _derived[_plain] = faust_record(_plain, _derived)

ReferencedTweet, MatchingRule, PublicMetrics, Tweet, DeadLetter, Deletion = _derived.values()
