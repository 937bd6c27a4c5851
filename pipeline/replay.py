"""Replay: send quarantined dead letters through the pipeline again (after a normalizer fix, or
with a larger MAX_PAYLOAD_BYTES), so what is accepted now reaches bronze and leaves quarantine.

It runs the backfill's own path (pipeline/backfill.py: a broker, worker and sink of its own) on the
letters' original bytes, then lands the result and removes the replayed letters from quarantine
in one journaled step (datalake/landing.py); `lake replay` is its command line.
"""
from __future__ import annotations

import base64
import binascii
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from pipeline.backfill import Outgoing, pipeline_run, run_report, staged
from pipeline.progress import Progress
from agents.sources.archive import RawMessage
from app.settings import Settings
from datalake.compact import is_committed, settle_interrupted, zone_lock
from datalake.files import DataFile, Lake, journals
from datalake.landing import finish, finish_interrupted, rewrite_of, write_journal
from datalake.layout import QUARANTINE_DEAD_LETTERS, REPLAY_JOURNALS, final_names
from tweets.oversize import PREVIEW_BYTES
from tweets.payloads import tweet_id_of

@dataclass(frozen=True)
class Chosen:
    """A quarantine file of `rows` rows and the numbers of the rows to replay."""

    file: DataFile
    rows: int
    indices: list[int]


@dataclass
class Selection:
    """The letters a replay sends, and those it leaves."""

    chosen: list[Chosen] = field(default_factory=list)
    by_reason: Counter = field(default_factory=Counter)
    not_replayable: Counter = field(default_factory=Counter)
    uncommitted: int = 0

    @property
    def letters(self) -> int:
        return sum(self.by_reason.values())


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


def select(lake: Lake, reason: str | None, dt: str | None, latest: int | None, max_payload_bytes: int) -> Selection:
    """The dead letters of `reason` (any if None) in partition dt (all if None) to replay."""
    selection = Selection()
    for file in lake.files(QUARANTINE_DEAD_LETTERS, dt):
        if not is_committed(file, latest):
            selection.uncommitted += lake.metadata(file).num_rows
            continue
        letters = lake.read(file, ["reason", "raw_base64"]).to_pylist()
        indices = []
        for index, letter in enumerate(letters):
            if reason is not None and letter["reason"] != reason:
                continue
            if original_bytes(letter, max_payload_bytes) is None:
                selection.not_replayable[letter["reason"]] += 1
                continue
            indices.append(index)
            selection.by_reason[letter["reason"]] += 1
        if indices:
            selection.chosen.append(Chosen(file, len(letters), indices))
    return selection


def letter_messages(lake: Lake, selection: Selection, max_payload_bytes: int) -> Iterator[Outgoing]:
    """Each chosen letter as the raw message it was: its bytes, keyed by tweet id as a producer keys them."""
    for chosen in selection.chosen:
        letters = lake.read(chosen.file, ["reason", "raw_base64"]).to_pylist()
        for index in chosen.indices:
            payload = original_bytes(letters[index], max_payload_bytes)
            tweet_id = tweet_id_of(payload)
            yield Outgoing(RawMessage(tweet_id.encode() if tweet_id else None, payload),
                           f"{chosen.file.relative} row {index}")


def recovered_by_reason(lake: Lake, selection: Selection, stage: Lake) -> Counter:
    """Replayed letters that no longer fail, by their old reason: a letter fails again when a new
    dead letter holds its bytes (the worker keeps them whole below MAX_PAYLOAD_BYTES)."""
    failing = Counter(raw for file in stage.files(QUARANTINE_DEAD_LETTERS)
                      for raw in stage.read(file, ["raw_base64"]).column("raw_base64").to_pylist())
    recovered: Counter = Counter()
    for chosen in selection.chosen:
        letters = lake.read(chosen.file, ["reason", "raw_base64"]).to_pylist()
        for index in chosen.indices:
            raw = letters[index]["raw_base64"]
            if failing[raw]:
                failing[raw] -= 1
            else:
                recovered[letters[index]["reason"]] += 1
    return recovered


def dry_run(lake: Lake, selection: Selection, progress: Progress) -> dict:
    for reason, count in sorted(selection.by_reason.items()):
        progress.show(f"would replay {count} letter(s) of reason {reason}", permanent=True)
    return {
        "dry_run": True,
        "to_replay": selection.letters,
        "to_replay_by_reason": dict(selection.by_reason),
        "files": len(selection.chosen),
        "not_replayable": dict(selection.not_replayable),
        "uncommitted_left": selection.uncommitted,
        "interrupted_replays": len(journals(lake, REPLAY_JOURNALS)),
        "lake_root": lake.shown_root,
    }


def replay(lake: Lake, settings: Settings, reason: str | None, dt: str | None, latest: int | None,
           progress: Progress) -> dict:
    """Replay the selected letters; see `lake replay --help` (datalake/cli.py). `latest` is the newest committed batch of the
    sink's dead-letter query (None: only files outside any batch, as backfills and compaction
    leave them)."""
    def note(text: str) -> None:
        progress.show(text, permanent=True)

    with zone_lock(lake, QUARANTINE_DEAD_LETTERS):
        settle_interrupted(lake, QUARANTINE_DEAD_LETTERS, note)
        interrupted = finish_interrupted(lake, note)
        selection = select(lake, reason, dt, latest, settings.max_payload_bytes)
        note(f"replaying {selection.letters} dead letter(s) from {len(selection.chosen)} file(s): "
             + (", ".join(f"{r} {n}" for r, n in sorted(selection.by_reason.items())) or "none"))
        left = {"not_replayable": dict(selection.not_replayable), "uncommitted_left": selection.uncommitted,
                "finished_interrupted": interrupted}
        if not selection.letters:
            nothing = dict.fromkeys(("read", "published", "accepted", "filtered", "duplicates", "rejected",
                                     "bronze_rows", "quarantine_rows", "quarantine_removed"), 0)
            return {"replayed": 0, **nothing, "still_failing": {}, **left, "lake_root": lake.shown_root}
        outgoing = letter_messages(lake, selection, settings.max_payload_bytes)
        with pipeline_run(outgoing, settings, None, progress, kind="replay") as run:
            names = final_names(run.stamp)
            plan = staged(run.stage, lake, names)
            report = {"replayed": run.publication.published, **run_report(run, plan.landed),
                      "replayed_by_reason": dict(selection.by_reason),
                      "still_failing": run.counters["rejected_by_reason"], **left}
            if "error" in report:
                report["error"] += "; nothing was landed or removed from quarantine"
                return report
            report["recovered_by_reason"] = dict(recovered_by_reason(lake, selection, run.stage))
            rewrites = [rewrite_of(c.file, c.rows, c.indices, names) for c in selection.chosen]
            journal = write_journal(lake, run.name, run.stage.root, plan.moves, rewrites)
            report["quarantine_removed"] = finish(lake, journal)
    note(f"replayed {report['replayed']}: {report['accepted']} accepted, {report['filtered']} filtered, "
         f"{report['duplicates']} duplicates, {report['rejected']} still failing; "
         f"{report['quarantine_removed']} letters left quarantine")
    return report
