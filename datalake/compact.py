"""Compaction: rewrite a partition's many small files into a few files of about a target size
while the sink keeps writing, without losing a row or doubling one for good.

Which files. Only files of batches the sink has committed (batch id <= the newest entry of the
query's `commits/` folder in its checkpoint), and outputs of earlier compactions. A later batch
may still be replayed after a crash, and a replay deletes the files its manifest lists before
publishing again: had those files been compacted away, the replay would add its rows a second time.

How, for each group of input files:
  1. a journal `_compactions/<zone>/<output>.json` records the output, its temporary name and the inputs;
  2. the output is written as `.<output>.tmp` in the partition folder (readers skip dot names) and
     its footer row count is checked against the inputs' footers;
  3. it is renamed to `part-c<UTC time>-<n>.parquet`, a name no manifest lists, so no replay
     ever deletes it;
  4. the inputs are deleted, then the journal.

What a concurrent reader sees. Before step 3 only the inputs; after step 4 only the output. From
the rename until the last input of the group is deleted it sees the group's rows twice: that
window is one delete per input file (milliseconds locally, one namenode call each on HDFS).
Renaming before deleting trades that short doubling for never missing a row (a doubled row shows
by its tweet_id, a missing one does not show at all). A reader that listed the folder before step 4
and opens an input after it gets FileNotFoundError and must list again.

Errors and crashes. An unreadable input stops everything before anything is written. Any other
error before the rename deletes the temporary file and the journal and leaves the inputs alone.
A crash leaves the journal behind: the next `lake compact` of the zone first settles it (output in
place: delete the inputs still there; not in place: delete the temporary file). Until then readers
see that group twice, and `lake verify` names the duplicates and the journal. One compaction per
zone at a time: a second one finds `_compactions/<zone>/_lock` and stops; the lock of a run that
was killed is taken over by the next run on the same host. `lake replay` takes the same lock, and
quarantine/dead_letter is not compacted while a replay's journal is pending (it names files there).
"""
from __future__ import annotations

import json
import posixpath
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from datalake.errors import BadInput, LakeError
from datalake.files import DataFile, Lake, as_zone, by_partition, human_size, journals, plural, reading
from datalake.fs import LakeFS
from datalake.locks import abandoned, holder_record
from datalake.layout import (
    COMPACTION_JOURNALS, FINAL_NAME, QUARANTINE_DEAD_LETTERS, REPLAY_JOURNALS, SILVER, GOLD_TABLES, Zone, final_names,
    hidden_temporary,
)

ROW_GROUP_BYTES = 64 << 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Input:
    file: DataFile
    rows: int
    schema: pa.Schema


@dataclass(frozen=True)
class Outcome:
    partition: str
    inputs: int
    outputs: int
    bytes_in: int
    bytes_out: int
    uncommitted: int

    def summary(self) -> str:
        if not self.inputs:
            text = f"{self.partition}: nothing to merge"
        else:
            text = (f"{self.partition}: {plural(self.inputs, 'file')} ({human_size(self.bytes_in)}) -> "
                    f"{plural(self.outputs, 'file')} ({human_size(self.bytes_out)})")
        if self.uncommitted:
            text += f"; {self.uncommitted} file(s) of uncommitted batches left alone"
        return text


def latest_committed_batch(fs: LakeFS, checkpoint: str) -> int | None:
    """The newest batch id in the query's commit log; None if no batch has committed yet."""
    if not fs.exists(checkpoint):
        raise BadInput(
            f"no sink checkpoint at {checkpoint}: compaction needs the sink's commit log to know which "
            "batches are final (set CHECKPOINT_ROOT or pass --checkpoints)"
        )
    return _newest_entry(fs, posixpath.join(checkpoint, "commits"))


def latest_started_batch(fs: LakeFS, checkpoint: str) -> int | None:
    """The newest batch id in the query's offsets log: the batch in flight when it is newer than
    the newest commit. None without a checkpoint or a batch."""
    return _newest_entry(fs, posixpath.join(checkpoint, "offsets"))


def _newest_entry(fs: LakeFS, folder: str) -> int | None:
    if not fs.exists(folder):
        return None
    return max((int(e.name) for e in fs.list(folder) if e.name.isdigit() and not e.is_dir), default=None)


def is_committed(file: DataFile, latest: int | None) -> bool:
    if FINAL_NAME.fullmatch(file.name):
        return True
    return file.batch_id is not None and latest is not None and file.batch_id <= latest


def compact(lake: Lake, zone: Zone | str, dt: str, hour: str | None, latest: int | None,
            target_bytes: int, progress: Progress) -> list[Outcome]:
    """Compact every partition of `zone` under dt (and hour); see the module docstring."""
    zone = as_zone(zone)
    if zone == SILVER or zone in GOLD_TABLES:
        raise BadInput(f"{zone} is not compacted: its job rewrites its own files as posts change")
    partitions_to_compact(lake, zone, dt, hour)  # bad input fails before the lock is taken
    with zone_lock(lake, zone):
        if zone == QUARANTINE_DEAD_LETTERS and journals(lake, REPLAY_JOURNALS):
            raise LakeError(f"an interrupted `lake replay` still has letters to remove from {zone} "
                            f"({REPLAY_JOURNALS}/): run `lake replay` to finish it, then compact")
        settle_interrupted(lake, zone, progress)
        partitions = partitions_to_compact(lake, zone, dt, hour)
        inputs = {key: [read_input(lake, f) for f in files if is_committed(f, latest)]
                  for key, files in partitions.items()}
        names = final_names()
        return [
            compact_partition(lake, zone, key, inputs[key], len(files) - len(inputs[key]), target_bytes, names, progress)
            for key, files in partitions.items()
        ]


def partitions_to_compact(lake: Lake, zone: str, dt: str, hour: str | None) -> dict[str, list[DataFile]]:
    files = lake.files(zone, dt)
    if hour is not None:
        if any("hour" not in dict(f.partition) for f in files):
            raise BadInput(f"{zone} is not partitioned by hour: leave out --hour")
        files = [f for f in files if dict(f.partition)["hour"] == hour]
    if not files:
        where = f"dt={dt}" + (f"/hour={hour}" if hour is not None else "")
        raise BadInput(f"no data files in {zone}/{where}")
    return by_partition(files)


def read_input(lake: Lake, file: DataFile) -> Input:
    metadata = lake.metadata(file)
    return Input(file, metadata.num_rows, metadata.schema.to_arrow_schema())


def groups_of(inputs: list[Input], target_bytes: int) -> list[list[Input]]:
    """Consecutive files of one schema, up to about `target_bytes` a group; lone files stay as they are."""
    groups: list[list[Input]] = []
    current: list[Input] = []
    for item in inputs:
        size = sum(i.file.size for i in current)
        if current and (size + item.file.size > target_bytes or not item.schema.equals(current[0].schema)):
            groups.append(current)
            current = []
        current.append(item)
    groups.append(current)
    return [group for group in groups if len(group) > 1]


def compact_partition(lake: Lake, zone: str, key: str, inputs: list[Input], uncommitted: int,
                      target_bytes: int, names: Iterator[str], progress: Progress) -> Outcome:
    groups = groups_of(inputs, target_bytes)
    bytes_out = 0
    for number, group in enumerate(groups, 1):
        folder = posixpath.dirname(group[0].file.path)
        output = posixpath.join(folder, next(names))
        progress(f"{zone}/{key}: group {number}/{len(groups)}: {len(group)} files "
                 f"({human_size(sum(i.file.size for i in group))}) -> {posixpath.basename(output)}")
        bytes_out += merge(lake, zone, group, output)
    merged = [i for group in groups for i in group]
    return Outcome(key, len(merged), len(groups), sum(i.file.size for i in merged), bytes_out, uncommitted)


def merge(lake: Lake, zone: str, group: list[Input], output: str) -> int:
    """Steps 1-4 of the module docstring for one group; returns the output's size."""
    temporary = hidden_temporary(output)
    journal = lake.path(f"{COMPACTION_JOURNALS}/{zone}/{posixpath.basename(output)}.json")
    write_json(lake.fs, journal, {
        "output": lake.relative(output),
        "temporary": lake.relative(temporary),
        "inputs": [lake.relative(i.file.path) for i in group],
    })
    try:
        expected = sum(i.rows for i in group)
        written, size = write_merged(lake, group, temporary)
        in_footer = lake.metadata(DataFile(temporary, lake.relative(temporary), size, ())).num_rows
        if not written == in_footer == expected:
            raise LakeError(f"compacted file {lake.relative(temporary)} has {in_footer} rows ({written} written), "
                            f"its inputs {expected}")
        lake.fs.rename(temporary, output)
    finally:
        settle(lake, journal)
    return size


def write_merged(lake: Lake, group: list[Input], temporary: str) -> tuple[int, int]:
    """Stream the inputs' rows into one new file, in row groups of about ROW_GROUP_BYTES;
    returns its rows and bytes."""
    schema = group[0].schema
    rows = 0
    with lake.fs.create(temporary) as sink:
        with pq.ParquetWriter(sink, schema, compression="snappy") as writer:
            buffered: list[pa.RecordBatch] = []
            for batch in input_batches(lake, group):
                buffered.append(batch)
                rows += batch.num_rows
                if sum(b.nbytes for b in buffered) >= ROW_GROUP_BYTES:
                    writer.write_table(pa.Table.from_batches(buffered, schema))
                    buffered.clear()
            if buffered:
                writer.write_table(pa.Table.from_batches(buffered, schema))
        return rows, sink.tell()


def input_batches(lake: Lake, group: list[Input]) -> Iterator[pa.RecordBatch]:
    """The group's rows, file after file; a read error names its file (a write error does not)."""
    for item in group:
        with reading(item.file), lake.fs.open(item.file.path) as source:
            yield from pq.ParquetFile(source).iter_batches(batch_size=16_384)


def settle(lake: Lake, journal: str) -> None:
    """Finish or undo the compaction a journal describes: if its output is in place it holds every
    input row, so the inputs go; if not, the temporary file goes and the inputs stay."""
    with lake.fs.open(journal) as stream:
        try:
            entry = json.loads(stream.read())
        except ValueError as error:
            raise LakeError(f"compaction journal {lake.relative(journal)} is not valid JSON: {error}") from error
    # A forget that leaves no row of a file has no output: its journal says to delete the input.
    if entry["output"] is None or lake.fs.exists(lake.path(entry["output"])):
        for relative in entry["inputs"]:
            lake.fs.delete(lake.path(relative))
    else:
        lake.fs.delete(lake.path(entry["temporary"]))
    lake.fs.delete(journal)


def pending_journals(lake: Lake, zone: str) -> list[str]:
    return journals(lake, f"{COMPACTION_JOURNALS}/{zone}")


def settle_interrupted(lake: Lake, zone: str, progress: Progress) -> None:
    for journal in pending_journals(lake, zone):
        progress(f"settling the interrupted compaction {lake.relative(journal)}")
        settle(lake, journal)
    for entry in lake.fs.list(lake.path(f"{COMPACTION_JOURNALS}/{zone}")):
        if entry.name.endswith(".json.tmp"):  # killed while writing a journal: nothing else was done yet
            lake.fs.delete(entry.path)


@contextmanager
def zone_lock(lake: Lake, zone: str, wait_seconds: float = 0.0) -> Iterator[None]:
    """`_compactions/<zone>/_lock` for the block: one rewrite of a zone's files at a time
    (compaction, forget, replay). A lock whose holder no longer runs on this host is taken over;
    one that is held is waited for up to `wait_seconds`, then LakeBusy."""
    folder = lake.path(f"{COMPACTION_JOURNALS}/{zone}")
    lake.fs.mkdirs(folder)
    lock = posixpath.join(folder, "_lock")
    deadline = time.monotonic() + wait_seconds
    while not _create_lock(lake, lock):
        held_by = _lock_holder(lake, lock)
        if held_by is not None and abandoned(held_by):
            lake.fs.delete(lock)
            continue
        if time.monotonic() >= deadline:
            raise LakeBusy(
                f"another rewrite of {zone} (`lake compact`, `lake forget`, `lake replay` or the sink's forget "
                f"sweep) holds {lake.relative(lock)} ({held_by}); if none is running, delete that file and run again"
            )
        time.sleep(0.5)
    try:
        yield
    finally:
        lake.fs.delete(lock)


class LakeBusy(LakeError):
    """Another process is rewriting the zone."""


def _create_lock(lake: Lake, lock: str) -> bool:
    try:
        with lake.fs.create(lock) as stream:
            stream.write(json.dumps(holder_record()).encode())
    except FileExistsError:
        return False
    return True


def _lock_holder(lake: Lake, lock: str) -> dict | None:
    try:
        with lake.fs.open(lock) as stream:
            return json.loads(stream.read().decode(errors="replace"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {}


def write_json(fs: LakeFS, path: str, value: dict) -> None:
    """Written under a temporary name and renamed, so a reader never sees half of it."""
    temporary = f"{path}.tmp"
    fs.delete(temporary)
    with fs.create(temporary) as stream:
        stream.write(json.dumps(value).encode())
    fs.rename(temporary, path)
