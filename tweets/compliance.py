"""What X tells a data holder to delete, in the three forms it says it: batch compliance job
results, v1.1 stream delete notices and v2 compliance stream events, each read as a Deletion,
Ignored (a compliance message that deletes nothing) or, in a file, a BadLine. Pure but for
read_compliance_file. Why and what the lake does with them: docs/compliance.md.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Literal

import orjson

from tweets.payloads import as_id
from tweets.timestamps import iso_micros, iso_millis

DeletionKind = Literal["tweet", "user"]
DELETION_KINDS: tuple[DeletionKind, ...] = ("tweet", "user")

_GZIP_MAGIC = b"\x1f\x8b"
_MESSAGE_CHARS = 300
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_V1_IGNORED = frozenset({"scrub_geo", "status_withheld", "user_withheld"})
# v2 events that delete: what they delete ("tweet" or "user", also the key of the object holding its id).
_V2_DELETIONS: dict[str, DeletionKind] = {
    "delete": "tweet", "user_delete": "user", "user_protect": "user", "user_suspend": "user",
}
_V2_IGNORED = frozenset({
    "withheld", "drop", "undrop", "scrub_geo", "tweet_edit", "user_unprotect", "user_undelete",
    "user_unsuspend", "user_withheld", "user_scrub_geo", "user_profile_modification",
})


class ComplianceFileError(Exception):
    """A compliance file that cannot be read at all (missing, unreadable, corrupt or cut-short gzip)."""


@dataclass(frozen=True)
class Deletion:
    """An id X wants deleted: a tweet's, or a user's (all that user's tweets go)."""

    id: str
    kind: DeletionKind
    reason: str  # the record's reason ("deactivated"), else its event name ("user_protect")
    source: str  # "batch_compliance" | "v1.1_delete" | "v2_compliance"
    requested_at: str | None  # when X made the request, ISO-8601 UTC in milliseconds


@dataclass(frozen=True)
class Ignored:
    """A valid compliance message that deletes nothing; reason is its action or event name."""

    reason: str


@dataclass(frozen=True)
class BadLine:
    reason: str  # "not_json" | "not_compliance" | "bad_id"
    message: str


def deletion_of(obj: object, batch_kind: DeletionKind = "tweet") -> Deletion | Ignored | None:
    """The compliance outcome of a parsed message; None when it is not one with an X id to act on."""
    outcome = _read(obj, batch_kind)
    return None if isinstance(outcome, BadLine) else outcome


def parse_line(line: bytes, batch_kind: DeletionKind = "tweet") -> Deletion | Ignored | BadLine:
    """One line of a compliance file. A batch result does not say whether its job checked tweets
    or users: `batch_kind` does (a user id deletes all that user's tweets). BadLine "not_compliance"
    for a line that is not a compliance message (a tweet), "bad_id" for one whose id is not an X id."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return BadLine("not_json", str(error)[:_MESSAGE_CHARS])
    outcome = _read(obj, batch_kind)
    return BadLine("not_compliance", _describe(obj)) if outcome is None else outcome


def read_compliance_file(
    path: Path, batch_kind: DeletionKind = "tweet"
) -> Iterator[tuple[int, Deletion | Ignored | BadLine]]:
    """(line number from 1, outcome) of each line that is not blank, gzip told by its magic bytes.

    A bad line is an outcome, not an error: the file goes on. ComplianceFileError, raised while
    iterating, means the file itself cannot be read; the lines before it were yielded.
    """
    if batch_kind not in DELETION_KINDS:
        raise ValueError(f"batch_kind must be one of {', '.join(DELETION_KINDS)}, not {batch_kind!r}")
    return _outcomes(Path(path), batch_kind)


def forgotten_record(deletion: Deletion, forgotten_at: datetime) -> dict:
    """The compliance topic's value (app.models.Deletion), from which the sink writes the
    forgotten log; forgotten_at is when the worker took the deletion in."""
    return {
        "id": deletion.id,
        "kind": deletion.kind,
        "reason": deletion.reason,
        "source": deletion.source,
        "requested_at": deletion.requested_at,
        "forgotten_at": iso_micros(forgotten_at),
    }


def _outcomes(path: Path, batch_kind: DeletionKind) -> Iterator[tuple[int, Deletion | Ignored | BadLine]]:
    number = 0
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            for number, line in enumerate(gzip.GzipFile(fileobj=raw) if gzipped else raw, 1):
                if line.strip():
                    yield number, parse_line(line, batch_kind)
    except (OSError, EOFError, zlib.error) as error:
        where = f" after line {number}" if number else ""
        raise ComplianceFileError(f"{path}: cannot read it{where}: {error}") from error


def _read(obj: object, batch_kind: DeletionKind) -> Deletion | Ignored | BadLine | None:
    """The outcome of any message; BadLine only for a compliance message without a valid id. The
    form is told per message: a stream message by its single event key (a v2 tweet's "data" has
    "id" and "text" instead), a batch result by its "action" and "id"."""
    if not isinstance(obj, dict):
        return None
    if "data" in obj:
        return _v2_event(obj["data"])
    if len(obj) == 1:
        ((notice, body),) = obj.items()
        if notice == "delete":
            return _v1_delete(_dict(body))
        if notice in _V1_IGNORED:
            return Ignored(notice)
    if isinstance(obj.get("action"), str) and "id" in obj:
        return _batch_result(obj, batch_kind)
    return None


def _batch_result(record: dict, batch_kind: DeletionKind) -> Deletion | Ignored | BadLine:
    action = record["action"]
    if action != "delete":
        return Ignored(action)
    deleted_id = _id(record, ("id",), "")
    if isinstance(deleted_id, BadLine):
        return deleted_id
    reason = record.get("reason")
    return Deletion(
        deleted_id, batch_kind, reason if isinstance(reason, str) and reason else action, "batch_compliance",
        _iso_time(record.get("redacted_at")),
    )


def _v1_delete(notice: dict) -> Deletion | BadLine:
    deleted_id = _id(_dict(notice.get("status")), ("id_str", "id"), "delete.status.")
    if isinstance(deleted_id, BadLine):
        return deleted_id
    return Deletion(deleted_id, "tweet", "deleted", "v1.1_delete", _epoch_millis_time(notice.get("timestamp_ms")))


def _v2_event(data: object) -> Deletion | Ignored | BadLine | None:
    """A v2 compliance event's "data": {"<event>": {"tweet" or "user": {"id": ...}, "event_at": ...}}."""
    if not isinstance(data, dict) or len(data) != 1:
        return None
    ((event, body),) = data.items()
    if event in _V2_IGNORED:
        return Ignored(event)
    kind = _V2_DELETIONS.get(event)
    if kind is None:
        return None
    body = _dict(body)
    deleted_id = _id(_dict(body.get(kind)), ("id",), f"data.{event}.{kind}.")
    if isinstance(deleted_id, BadLine):
        return deleted_id
    return Deletion(deleted_id, kind, event, "v2_compliance", _iso_time(body.get("event_at")))


def _id(fields: dict, names: tuple[str, ...], where: str) -> str | BadLine:
    """The first of `names` that holds an X id (v1.1: id_str before id)."""
    for name in names:
        found = as_id(fields.get(name))
        if found is not None:
            return found
    present = [name for name in names if fields.get(name) is not None]
    if not present:
        return BadLine("bad_id", f"{where}{names[0]} is missing")
    value = fields[present[0]]
    shown = repr(value)[:40] if isinstance(value, (str, int, float)) else type(value).__name__
    return BadLine("bad_id", f"{where}{present[0]}: not an X id: {shown}")


def _iso_time(value: object) -> str | None:
    """redacted_at or event_at, ISO-8601 ("2021-07-06T18:22:42.991Z"; no zone means UTC)."""
    if not isinstance(value, str):
        return None
    try:
        return iso_millis(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        return None


def _epoch_millis_time(value: object) -> str | None:
    """v1.1's timestamp_ms: milliseconds since 1970, sent as a string of digits."""
    is_digits = isinstance(value, str) and value.isdigit() and value.isascii()
    if not is_digits and (not isinstance(value, int) or isinstance(value, bool)):
        return None
    try:
        return iso_millis(_EPOCH + timedelta(milliseconds=int(value)))
    except (ValueError, OverflowError):  # more digits than int() takes, or past year 9999
        return None


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        keys = ", ".join(map(str, list(obj)[:10]))
        return f"JSON object that is not a compliance message (keys: {keys})"[:_MESSAGE_CHARS]
    return f"JSON {type(obj).__name__}, not a compliance message"


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}
