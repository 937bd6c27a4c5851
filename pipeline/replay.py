"""Replay: send quarantined dead letters through the pipeline again (after a normalizer fix, or
with a larger MAX_PAYLOAD_BYTES), so what is accepted now reaches bronze and leaves quarantine.
It runs the backfill's own path on the letters' original bytes; `lake replay` is its command line.
What changes in quarantine, and after an interruption: docs/backfill.md, "Replaying dead letters".
"""
from __future__ import annotations

import base64
import binascii
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

from agents.sources.archive import RawMessage
from config.settings import Settings
from datalake.lake import Lake, retrying
from datalake.layout import QUARANTINE_DEAD_LETTERS
from pipeline.backfill import Outgoing, pipeline_run, run_report
from pipeline.progress import Progress
from tweets.oversize import PREVIEW_BYTES
from tweets.payloads import tweet_id_of

STAGING = "_replays/dead_letter"
LETTER_COLUMNS = ["letter_id", "reason", "raw_base64"]


@dataclass
class Selection:
    """The letters a replay sends (letter_id, reason, raw_base64), and those it leaves."""

    chosen: list[dict] = field(default_factory=list)
    by_reason: Counter = field(default_factory=Counter)
    not_replayable: Counter = field(default_factory=Counter)

    @property
    def letters(self) -> int:
        return len(self.chosen)


def original_bytes(letter: dict, max_payload_bytes: int) -> bytes | None:
    """The letter's raw message, if it can be sent again whole: None when quarantine holds only a
    preview of it or none, or when it is larger than MAX_PAYLOAD_BYTES now (it would fail again
    and its new letter keep only a preview)."""
    try:
        raw = base64.b64decode(letter["raw_base64"] or "", validate=True)
    except (binascii.Error, ValueError):
        return None
    if letter["raw_base64"] is None or len(raw) > max_payload_bytes:
        return None
    if letter["reason"] == "too_large" and len(raw) == PREVIEW_BYTES:
        return None
    return raw


def select(lake: Lake, reason: str | None, dt: str | None, max_payload_bytes: int) -> Selection:
    """The dead letters of `reason` (any if None) in partition dt (all if None) to replay."""
    where = None
    if reason is not None:
        where = ds.field("reason") == reason
    if dt is not None:
        where = (ds.field("dt") == dt) if where is None else where & (ds.field("dt") == dt)
    letters = lake.read(QUARANTINE_DEAD_LETTERS, LETTER_COLUMNS, where)
    selection = Selection()
    for letter in [] if letters is None else letters.to_pylist():
        if original_bytes(letter, max_payload_bytes) is None:
            selection.not_replayable[letter["reason"]] += 1
            continue
        selection.chosen.append(letter)
        selection.by_reason[letter["reason"]] += 1
    return selection


def letter_messages(selection: Selection, max_payload_bytes: int) -> Iterator[Outgoing]:
    """Each chosen letter as the raw message it was: its bytes, keyed by tweet id as a producer keys them."""
    for letter in selection.chosen:
        payload = original_bytes(letter, max_payload_bytes)
        tweet_id = tweet_id_of(payload)
        yield Outgoing(RawMessage(tweet_id.encode() if tweet_id else None, payload), f"letter {letter['letter_id']}")


def recovered_by_reason(selection: Selection, failing_again: pa.Table) -> Counter:
    """Replayed letters that no longer fail, by their old reason: a letter fails again when a new
    dead letter holds its bytes (the worker keeps them whole below MAX_PAYLOAD_BYTES)."""
    failing = Counter(failing_again.column("raw_base64").to_pylist())
    recovered: Counter = Counter()
    for letter in selection.chosen:
        if failing[letter["raw_base64"]]:
            failing[letter["raw_base64"]] -= 1
        else:
            recovered[letter["reason"]] += 1
    return recovered


def land(lake: Lake, selection: Selection, failing_again: pa.Table) -> int:
    """One commit on quarantine/dead_letter: the replayed letters out, the new ones in; how many
    left. Again after another writer's commit (the live sink appends letters meanwhile)."""
    replayed = pa.array(sorted({letter["letter_id"] for letter in selection.chosen}), pa.string())
    schema = pa.schema(lake.table(QUARANTINE_DEAD_LETTERS).schema().to_arrow())
    new = failing_again.select(schema.names).cast(schema).append_column("_replayed", pa.array(
        [False] * failing_again.num_rows, pa.bool_()))
    gone = pa.table({name: pa.nulls(len(replayed), schema.field(name).type) if name != "letter_id" else replayed
                     for name in schema.names}, schema=schema).append_column(
        "_replayed", pa.array([True] * len(replayed), pa.bool_()))
    source = pa.concat_tables([new, gone])

    def commit() -> int:
        metrics = (lake.table(QUARANTINE_DEAD_LETTERS)
                   .merge(source, "t.letter_id = s.letter_id", source_alias="s", target_alias="t")
                   .when_matched_delete(predicate="s._replayed")
                   .when_not_matched_insert_all(predicate="NOT s._replayed", except_cols=["_replayed"])
                   .execute())
        return int(metrics.get("num_target_rows_deleted", 0))

    return retrying("quarantine/dead_letter: replayed letters out, new ones in", commit)


def dry_run(lake: Lake, selection: Selection, progress: Progress) -> dict:
    for reason, count in sorted(selection.by_reason.items()):
        progress.show(f"would replay {count} letter(s) of reason {reason}", permanent=True)
    return {
        "dry_run": True,
        "to_replay": selection.letters,
        "to_replay_by_reason": dict(selection.by_reason),
        "not_replayable": dict(selection.not_replayable),
        "lake_root": lake.shown_root,
    }


def replay(lake: Lake, settings: Settings, reason: str | None, dt: str | None, progress: Progress) -> dict:
    """Replay the selected letters; see `lake replay --help` (pipeline/lake_cli.py)."""
    def note(text: str) -> None:
        progress.show(text, permanent=True)

    selection = select(lake, reason, dt, settings.max_payload_bytes)
    note(f"replaying {selection.letters} dead letter(s): "
         + (", ".join(f"{r} {n}" for r, n in sorted(selection.by_reason.items())) or "none"))
    if not selection.letters:
        nothing = dict.fromkeys(("read", "published", "accepted", "filtered", "duplicates", "rejected",
                                 "bronze_rows", "quarantine_rows", "quarantine_removed"), 0)
        return {"replayed": 0, **nothing, "still_failing": {}, "not_replayable": dict(selection.not_replayable),
                "lake_root": lake.shown_root}
    staging = f"{lake.root}/{STAGING}"
    outgoing = letter_messages(selection, settings.max_payload_bytes)
    with pipeline_run(outgoing, settings, None, progress, kind="replay", dead_letters_to=staging) as run:
        report = {"replayed": run.publication.published, **run_report(run),
                  "replayed_by_reason": dict(selection.by_reason),
                  "still_failing": run.counters["rejected_by_reason"],
                  "not_replayable": dict(selection.not_replayable)}
    if "error" in report:
        report["error"] += "; quarantine was left as it was"
        return report
    failing_again = DeltaTable(staging).to_pyarrow_table()
    report["recovered_by_reason"] = dict(recovered_by_reason(selection, failing_again))
    report["quarantine_removed"] = land(lake, selection, failing_again)
    note(f"replayed {report['replayed']}: {report['accepted']} accepted, {report['filtered']} filtered, "
         f"{report['duplicates']} duplicates, {report['rejected']} still failing; "
         f"{report['quarantine_removed']} letters left quarantine")
    return report
