"""Landing a run of the pipeline in the lake from outside the sink: a backfill's staged files, and
a replay's, whose dead letters must leave quarantine in the same stroke.

A replay ends with (1) its sink's files staged under `_backfill/<run>/`; then
  2. a journal `_replays/<run>.json` lists the staged files with the lake paths they move to, and
     each quarantine file that held replayed letters with the row numbers to drop;
  3. the staged files move into the zones (under final names, datalake.layout.final_name);
  4. each such quarantine file is written again without those rows, as a hidden `.<name>.tmp`,
     renamed to a new final name, and deleted (a file with no rows left is only deleted);
  5. the staging folder goes, then the journal.
Every step checks first whether it is done (target in place, old file gone), so finishing a
journal twice is finishing it once: after a crash anywhere, the next `lake replay` finishes the
journal before doing anything else, and every row is then in the lake exactly once. Until then
readers may see replayed letters both in quarantine and in their new place, never neither.
The caller holds the dead-letter zone's compaction lock throughout, and `lake compact` of that
zone refuses while a journal is pending: it would merge away the files the journal names.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datalake.compact import write_json
from datalake.errors import LakeError
from datalake.files import DataFile, Lake, journals
from datalake.fs import LakeFS
from datalake.forget import count_forgotten, sweep
from datalake.forgotten import forgotten_rows, log_files, log_path, read_log
from datalake.layout import (
    BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, REPLAY_JOURNALS, SINK_ZONES, hidden_temporary,
)

Progress = Callable[[str], None]


def move_files(fs: LakeFS, moves: list[tuple[str, str]]) -> None:
    """Rename each staged file to its lake path; a move already done (source gone, target there)
    is skipped, so a journal's moves can run again."""
    for source, target in moves:
        if not fs.exists(source):
            if fs.exists(target):
                continue
            raise FileNotFoundError(f"staged file {source} is missing and {target} is not in the lake")
        fs.mkdirs(posixpath.dirname(target))
        fs.rename(source, target)


@dataclass(frozen=True)
class Rewrite:
    """A quarantine file (lake-relative) of `rows` rows, to be written again without the rows
    numbered in `drop`, as `output` (None when no row is left)."""

    file: str
    rows: int
    drop: list[int]
    output: str | None


def rewrite_of(file: DataFile, rows: int, drop: list[int], names: Iterator[str]) -> Rewrite:
    output = None if len(drop) == rows else posixpath.join(posixpath.dirname(file.relative), next(names))
    return Rewrite(file.relative, rows, drop, output)


def write_journal(lake: Lake, run_name: str, stage: str, moves: list[tuple[str, str]],
                  rewrites: list[Rewrite]) -> str:
    """Step 2; returns the journal's path."""
    journal = lake.path(f"{REPLAY_JOURNALS}/{run_name}.json")
    lake.fs.mkdirs(posixpath.dirname(journal))
    write_json(lake.fs, journal, {
        "run": run_name,
        "stage": lake.relative(stage),
        "moves": [[lake.relative(source), lake.relative(target)] for source, target in moves],
        "rewrites": [asdict(rewrite) for rewrite in rewrites],
    })
    return journal


def finish(lake: Lake, journal: str) -> int:
    """Steps 3-5 of what `journal` describes, skipping what is done; returns the rows it removes
    from quarantine in all (also those an interrupted attempt removed already)."""
    with lake.fs.open(journal) as stream:
        try:
            entry = json.loads(stream.read())
        except ValueError as error:
            raise LakeError(f"replay journal {lake.relative(journal)} is not valid JSON: {error}") from error
    move_files(lake.fs, [(lake.path(source), lake.path(target)) for source, target in entry["moves"]])
    rewrites = [Rewrite(**rewrite) for rewrite in entry["rewrites"]]
    for rewrite in rewrites:
        remove_rows(lake, rewrite)
    lake.fs.delete(lake.path(entry["stage"]), recursive=True)
    lake.fs.delete(journal)
    return sum(len(rewrite.drop) for rewrite in rewrites)


def remove_rows(lake: Lake, rewrite: Rewrite) -> None:
    """Step 4 for one file. The old file is deleted only once its remaining rows are in place."""
    old = lake.path(rewrite.file)
    if not lake.fs.exists(old):
        return
    if rewrite.output is not None and not lake.fs.exists(lake.path(rewrite.output)):
        write_remaining(lake, rewrite)
    lake.fs.delete(old)


def write_remaining(lake: Lake, rewrite: Rewrite) -> None:
    table = lake.read(DataFile(lake.path(rewrite.file), rewrite.file, 0, ()))
    if table.num_rows != rewrite.rows:
        raise LakeError(f"{rewrite.file} has {table.num_rows} rows, the replay journal expected {rewrite.rows}: "
                        "it changed since the replay began; nothing is removed from it")
    keep = pc.invert(pc.is_in(pa.array(range(table.num_rows), pa.int64()), value_set=pa.array(rewrite.drop, pa.int64())))
    remaining = table.filter(keep)
    output = lake.path(rewrite.output)
    temporary = hidden_temporary(output)
    lake.fs.delete(temporary)
    with lake.fs.create(temporary) as sink:
        pq.write_table(remaining, sink, compression="snappy")
        size = sink.tell()
    written = lake.metadata(DataFile(temporary, lake.relative(temporary), size, ())).num_rows
    if written != remaining.num_rows:
        lake.fs.delete(temporary)
        raise LakeError(f"rewritten {rewrite.file} has {written} rows, expected {remaining.num_rows}; nothing removed")
    lake.fs.rename(temporary, output)


def finish_interrupted(lake: Lake, progress: Progress) -> list[dict]:
    """Finish every journal an interrupted replay left; what each removed from quarantine."""
    finished = []
    for journal in journals(lake, REPLAY_JOURNALS):
        progress(f"finishing the interrupted replay {lake.relative(journal)}")
        finished.append({"journal": lake.relative(journal), "quarantine_removed": finish(lake, journal)})
    folder = lake.path(REPLAY_JOURNALS)
    for entry in lake.fs.list(folder) if lake.fs.exists(folder) else []:
        if entry.name.endswith(".json.tmp"):  # killed while writing its journal: the lake is untouched
            lake.fs.delete(entry.path)
    return finished


# --- what a run must not bring into the lake ----------------------------------------------------


@dataclass(frozen=True)
class LeftOut:
    """Rows of a run left out before landing: `forgotten_tweets` (bronze, typed_unreadable) and
    `forgotten_letters` (dead letters) by the lake's forgotten log, `already_in_lake` bronze rows
    of tweet ids bronze holds already (a second backfill of an archive). `logged`: deletions the
    run itself met, now in the lake's log."""

    forgotten_tweets: int = 0
    forgotten_letters: int = 0
    already_in_lake: int = 0
    logged: int = 0


def leave_out_known(stage: Lake, lake: Lake, names: Iterator[str], progress: Progress) -> LeftOut:
    """Before a run's files land: its deletions join the lake's forgotten log, then its staged
    files lose the rows of forgotten tweets (in every zone) and bronze's rows of tweet ids the
    lake's bronze has. The run's sink has finished, so every staged file is final."""
    logged = 0
    for path in log_files(stage):
        with stage.fs.open(path) as stream:
            logged += pq.ParquetFile(stream).metadata.num_rows
        target = posixpath.join(log_path(lake), next(names))
        lake.fs.mkdirs(posixpath.dirname(target))
        lake.fs.rename(path, target)
    forgotten = read_log(lake)
    known = bronze_tweet_ids(lake)
    by_log = count_forgotten(stage, BRONZE, forgotten)

    def doomed(zone, table: pa.Table) -> pa.Array:
        rows = forgotten_rows(forgotten, zone, table)
        if zone == BRONZE and len(known):
            rows = pc.or_(rows, pc.fill_null(pc.is_in(table.column("tweet_id"), value_set=known), False))
        return rows

    removed = {zone: sweep(stage, zone, doomed, ALL_COMMITTED, names, progress).rows_removed for zone in SINK_ZONES}
    left_out = LeftOut(forgotten_tweets=by_log + removed[QUARANTINE_UNREADABLE],
                       forgotten_letters=removed[QUARANTINE_DEAD_LETTERS],
                       already_in_lake=removed[BRONZE] - by_log, logged=logged)
    if removed[BRONZE] or left_out.forgotten_letters:
        progress(f"left out of this run: {left_out.forgotten_tweets + left_out.forgotten_letters} row(s) of "
                 f"forgotten tweets, "
                 f"{left_out.already_in_lake} bronze row(s) of tweet ids the lake has already")
    return left_out


# The newest committed batch to claim for a finished run's staged files: every one of them.
ALL_COMMITTED = 2**62


def bronze_tweet_ids(lake: Lake) -> pa.Array:
    """Every tweet id of the lake's bronze, once (an Arrow array: a million ids are ~20 MB)."""
    ids = [lake.read(file, ["tweet_id"]).column("tweet_id").combine_chunks() for file in lake.files(BRONZE)]
    return pc.unique(pa.concat_arrays(ids)) if ids else pa.array([], pa.string())
