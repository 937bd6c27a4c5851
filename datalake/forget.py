"""Forgetting in the zones of the sink: rewrite the files of bronze and quarantine that hold rows of
forgotten tweets (datalake.forgotten), file by file, safely while the sink writes.

A sweep of a zone reads only the id columns of each file and rewrites each file that holds
forgotten rows, with compaction's journal (datalake/compact.py):
  1. a journal `_compactions/<zone>/<output>.json` names the file, the output and its temporary
     name (no output when no row stays);
  2. the rows that stay are written as `.<output>.tmp` and counted again in its footer;
  3. it is renamed to a final name (part-c<time>-<n>.parquet), 4. the file is deleted, then the journal.
A crash anywhere leaves the journal, which the next rewrite of the zone (a sweep, `lake compact`)
settles first; until then a reader may see that file's other rows twice, never not at all, and
no forgotten row comes back.

Files of sink batches not yet committed are left alone and reported as pending: Spark replays such
a batch after a crash by deleting its files and writing them again, which would double the rows
kept here. The sink reads the forgotten log before each batch and leaves those rows out, so a
replayed batch comes back without them, and its running sweep (FORGET_SWEEP_SECONDS) rewrites a
batch that committed with rows forgotten while it was in flight.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.settings import Settings
from datalake import layout
from datalake.compact import (
    is_committed, latest_committed_batch, latest_started_batch, settle, settle_interrupted, write_json, zone_lock,
)
from datalake.errors import LakeError
from datalake.files import DataFile, Lake, journals
from datalake.forgotten import ZONE_COLUMNS, Forgotten, forgotten_rows, log_files, read_log
from datalake.fs import LakeFS, lake_fs_for
from datalake.layout import (
    BRONZE, COMPACTION_JOURNALS, QUARANTINE_DEAD_LETTERS, REPLAY_JOURNALS, SINK_ZONES, Zone, batch_of, final_names,
    hidden_temporary,
)

Progress = Callable[[str], None]


@dataclass
class ZoneSweep:
    """What a sweep did to one zone; `pending` are files (lake-relative) of uncommitted batches
    that hold forgotten rows."""

    zone: Zone
    rows_removed: int = 0
    files_rewritten: int = 0
    pending: list[str] = field(default_factory=list)


# Which rows of a file of a zone go (a mask over a table of at least ZONE_COLUMNS[zone]).
Doomed = Callable[[Zone, pa.Table], pa.Array]


def rule(forgotten: Forgotten) -> Doomed:
    """The forgotten log's rule as a Doomed."""
    return lambda zone, table: forgotten_rows(forgotten, zone, table)


def sweep(lake: Lake, zone: Zone, doomed: Doomed, latest: int | None, names: Iterator[str],
          progress: Progress, wait_seconds: float = 0.0) -> ZoneSweep:
    """Remove the doomed rows from every file of `zone` of a committed batch (the newest
    committed batch of the zone's query is `latest`); see the module docstring."""
    done = ZoneSweep(zone)
    if not lake.fs.exists(lake.zone_path(zone)):
        return done
    with zone_lock(lake, zone.path, wait_seconds):
        settle_interrupted(lake, zone.path, progress)
        if zone == QUARANTINE_DEAD_LETTERS and journals(lake, REPLAY_JOURNALS):
            progress(f"{zone}: an interrupted `lake replay` names files here: left for it to finish first")
            done.pending.append(REPLAY_JOURNALS)
            return done
        for file in lake.files(zone):
            hits = pc.sum(doomed(zone, lake.read(file, ZONE_COLUMNS[zone]))).as_py() or 0
            if not hits:
                continue
            if not is_committed(file, latest):
                done.pending.append(file.relative)
                continue
            output = posixpath.join(posixpath.dirname(file.path), next(names))
            done.rows_removed += rewrite_without(lake, zone, file, doomed, output)
            done.files_rewritten += 1
    if done.rows_removed:
        progress(f"{zone}: {done.rows_removed} forgotten row(s) removed, {done.files_rewritten} file(s) rewritten")
    return done


def rewrite_without(lake: Lake, zone: Zone, file: DataFile, doomed: Doomed, output: str) -> int:
    """Steps 1-4 for one file; the rows removed."""
    table = lake.read(file)
    keep = pc.invert(doomed(zone, table))
    kept = table.filter(keep)
    temporary = hidden_temporary(output)
    journal = lake.path(f"{COMPACTION_JOURNALS}/{zone.path}/{posixpath.basename(output)}.json")
    write_json(lake.fs, journal, {
        "kind": "forget",
        "output": lake.relative(output) if kept.num_rows else None,
        "temporary": lake.relative(temporary),
        "inputs": [file.relative],
    })
    try:
        if kept.num_rows:
            with lake.fs.create(temporary) as sink:
                pq.write_table(kept, sink, compression="snappy")
            in_footer = lake.metadata(DataFile(temporary, lake.relative(temporary), 0, ())).num_rows
            if in_footer != kept.num_rows:
                raise LakeError(f"rewritten file {lake.relative(temporary)} has {in_footer} rows, "
                                f"{kept.num_rows} were written")
            lake.fs.rename(temporary, output)
    finally:
        settle(lake, journal)
    return table.num_rows - kept.num_rows


@dataclass(frozen=True)
class Checkpoints:
    """The sink's query checkpoints (CHECKPOINT_ROOT, else LAKE/_checkpoints): which of its
    batches are committed, and which one is in flight."""

    fs: LakeFS
    root: str

    def committed(self, query: str) -> int | None:
        checkpoint = posixpath.join(self.root, query)
        return latest_committed_batch(self.fs, checkpoint) if self.fs.exists(checkpoint) else None

    def in_flight(self, query: str) -> int | None:
        started = latest_started_batch(self.fs, posixpath.join(self.root, query))
        committed = self.committed(query)
        return started if started is not None and (committed is None or started > committed) else None


class Sweeper:
    """Keeps the sink's zones free of what the forgotten log names: each tick() sweeps them when
    the log has changed, or when a sink batch it waits for has committed. It waits for (a) the
    bronze batch in flight when the log changed (it may have read the log before the change) and
    (b) the batches of pending files. `settled`: nothing left to wait for."""

    def __init__(self, lake: Lake, checkpoints: Checkpoints, progress: Progress):
        self.lake = lake
        self.checkpoints = checkpoints
        self.progress = progress
        self.applied: list[str] | None = None
        self.awaiting: dict[str, int] = {}  # query -> the batch to see committed before sweeping again
        self.blocked = False  # a pending replay journal: sweep again next tick
        self.totals = {zone: ZoneSweep(zone) for zone in SINK_ZONES}

    @property
    def settled(self) -> bool:
        return self.applied is not None and not self.awaiting and not self.blocked

    def due(self, files: list[str]) -> bool:
        if files != self.applied or self.blocked:
            return True
        return any((self.checkpoints.committed(q) or -1) >= batch for q, batch in self.awaiting.items())

    def tick(self, wait_seconds: float = 0.0) -> bool:
        """One sweep if due (True if it ran)."""
        files = log_files(self.lake)
        if not self.due(files):
            return False
        changed = files != self.applied
        in_flight = self.checkpoints.in_flight(BRONZE.query) if changed else None
        forgotten = read_log(self.lake, files)
        if not forgotten:
            self.applied, self.awaiting = files, {}
            return True
        names = final_names()
        awaiting: dict[str, int] = {} if in_flight is None else {BRONZE.query: in_flight}
        self.blocked = False
        for zone in SINK_ZONES:
            done = sweep(self.lake, zone, rule(forgotten), self.checkpoints.committed(zone.query), names,
                         self.progress, wait_seconds)
            total = self.totals[zone]
            total.rows_removed += done.rows_removed
            total.files_rewritten += done.files_rewritten
            total.pending = done.pending
            for relative in done.pending:
                batch = batch_of(posixpath.basename(relative))
                if batch is None:
                    self.blocked = True
                else:
                    awaiting[zone.query] = max(batch, awaiting.get(zone.query, batch))
        self.applied = files
        self.awaiting = awaiting
        return True

    def waiting_for(self) -> str:
        """What keeps it from being settled, for a message."""
        parts = [f"batch {batch} of the sink's {query} query to commit" for query, batch in self.awaiting.items()]
        if self.blocked:
            parts.append("an interrupted `lake replay` to finish")
        return ", ".join(parts) or "nothing"


def count_forgotten(lake: Lake, zone: Zone, forgotten: Forgotten) -> int:
    """Rows of `zone` the rule says are forgotten (`lake verify`, and forget's before/after)."""
    if not forgotten:
        return 0
    return sum(pc.sum(forgotten_rows(forgotten, zone, lake.read(f, ZONE_COLUMNS[zone]))).as_py() or 0
               for f in lake.files(zone))


def checkpoints_of(settings: Settings, lake_root: str | None = None) -> Checkpoints:
    """The sink's checkpoints of the lake at `lake_root` (default LAKE_ROOT): CHECKPOINT_ROOT, else
    LAKE/_checkpoints."""
    root = layout.checkpoints(lake_root or settings.lake_root, settings.checkpoint_root)
    fs, path = lake_fs_for(root, settings.hdfs_namenode_url, settings.hdfs_user, settings.hdfs_http_port)
    return Checkpoints(fs, path)
