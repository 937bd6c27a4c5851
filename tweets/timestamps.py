"""Times as the lake's records write them: ISO-8601 in UTC with a Z, written here once for the
normalizer (X's own format, milliseconds) and the compliance records (microseconds, as the
forgotten log keeps them)."""
from __future__ import annotations

from datetime import datetime, timezone


def iso_millis(moment: datetime) -> str:
    """X's own format, "2020-04-05T10:46:44.123Z" (a naive moment is taken as UTC)."""
    moment = _utc(moment)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


def iso_micros(moment: datetime) -> str:
    """Every digit a datetime has, "2020-04-05T10:46:44.123456Z" (a naive moment is taken as UTC)."""
    moment = _utc(moment)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
