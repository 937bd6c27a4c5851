"""The lake as the sink lays it out, read through a LakeFS: zones, hive partitions, data files
and their parquet footers. Shared by every `lake` subcommand, so they agree on what a data file is.
"""
from __future__ import annotations

import posixpath
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from spark_sink.job import BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE
from spark_sink.lake_fs import LakeFS

ZONES = (BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE)
QUARANTINE_ZONES = (QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE)
# The streaming query (checkpoint folder) whose batch ids name each zone's files (spark_sink/job.py).
ZONE_QUERIES = {BRONZE: "bronze", QUARANTINE_UNREADABLE: "bronze", QUARANTINE_DEAD_LETTERS: "dead_letters"}
# spark_sink.publish.published_name(batch_id, index); tests check the two agree.
PUBLISHED_NAME = re.compile(r"part-(\d{12})-\d{5}\.parquet")
# Journals of `lake replay` (spark_sink/lake_landing.py): a pending one names quarantine files.
REPLAY_JOURNALS = "_replays"


class LakeError(Exception):
    """A problem found in the lake or while changing it: exit code 1."""

    exit_code = 1


class BadInput(LakeError):
    """The command cannot apply to what was asked (missing path, unknown zone...): exit code 2."""

    exit_code = 2


class UnreadableFile(LakeError):
    def __init__(self, relative: str, reason: object):
        super().__init__(f"unreadable parquet file {relative}: {reason}")
        self.relative = relative


@dataclass(frozen=True)
class DataFile:
    """A parquet file of a zone with the hive partition values of its folder."""

    path: str
    relative: str
    size: int
    partition: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def partition_key(self) -> str:
        return "/".join(f"{key}={value}" for key, value in self.partition)

    @property
    def batch_id(self) -> int | None:
        """The sink batch that published this file; None for a compacted file."""
        match = PUBLISHED_NAME.fullmatch(self.name)
        return int(match.group(1)) if match else None


def hidden(name: str) -> bool:
    """Names every reader skips (pyarrow, Spark, Hive): temporary files, checksums, metadata."""
    return name.startswith(("_", "."))


def hidden_temporary(path: str) -> str:
    """Where a file is written before it is renamed to `path`: beside it, under a name readers skip."""
    return posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.tmp")


class Lake:
    """A lake root on a filesystem."""

    def __init__(self, fs: LakeFS, root: str, shown_root: str | None = None):
        self.fs = fs
        self.root = root
        self.shown_root = shown_root or root
        if not fs.exists(root):
            raise BadInput(f"lake root {self.shown_root} does not exist")

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def zone_path(self, zone: str) -> str:
        if zone not in ZONES:
            raise BadInput(f"unknown zone {zone!r}: the zones are {', '.join(ZONES)}")
        return self.path(zone)

    def files(self, zone: str, dt: str | None = None) -> list[DataFile]:
        """Every data file of `zone` (only partition dt=`dt` if given), sorted by path."""
        top = self.zone_path(zone)
        if not self.fs.exists(top):
            return []
        if dt is None:
            return self._walk(top, ())
        folder = posixpath.join(top, f"dt={dt}")
        return self._walk(folder, (("dt", dt),)) if self.fs.exists(folder) else []

    def _walk(self, folder: str, partition: tuple[tuple[str, str], ...]) -> list[DataFile]:
        found = []
        for entry in self.fs.list(folder):
            if hidden(entry.name):
                continue
            if entry.is_dir and "=" in entry.name:
                key, value = entry.name.split("=", 1)
                found += self._walk(entry.path, partition + ((key, value),))
            elif not entry.is_dir and entry.name.endswith(".parquet"):
                found.append(DataFile(entry.path, self.relative(entry.path), entry.size, partition))
        return found

    def rows_per_batch(self, zone: str) -> dict[int, int]:
        """Rows of each sink batch still published as its own files (from the footers)."""
        rows: dict[int, int] = {}
        for file in self.files(zone):
            if file.batch_id is not None:
                rows[file.batch_id] = rows.get(file.batch_id, 0) + self.metadata(file).num_rows
        return rows

    def relative(self, path: str) -> str:
        return posixpath.relpath(path, self.root)

    def metadata(self, file: DataFile) -> pq.FileMetaData:
        """The footer alone: row count, schema and column statistics without reading the data."""
        with reading(file), self.fs.open(file.path) as stream:
            return pq.ParquetFile(stream).metadata

    def read(self, file: DataFile, columns: list[str] | None = None) -> pa.Table:
        with reading(file), self.fs.open(file.path) as stream:
            return pq.ParquetFile(stream).read(columns=columns)


@contextmanager
def reading(file: DataFile) -> Iterator[None]:
    """A file that is gone was listed a moment before: the sink or a compaction replaced it, which
    is not damage; anything else that stops pyarrow is."""
    try:
        yield
    except FileNotFoundError as error:
        raise LakeError(f"{file.relative} disappeared while being read (a compaction or a replayed sink "
                        "batch replaced it): run the command again") from error
    except (pa.ArrowException, OSError) as error:
        raise UnreadableFile(file.relative, error) from error


def journals(lake: Lake, folder: str) -> list[str]:
    """The journals (`*.json`) of unfinished jobs in `folder`, a lake-relative path."""
    path = lake.path(folder)
    if not lake.fs.exists(path):
        return []
    return [e.path for e in lake.fs.list(path) if e.name.endswith(".json") and not e.is_dir]


def by_partition(files: list[DataFile]) -> dict[str, list[DataFile]]:
    partitions: dict[str, list[DataFile]] = {}
    for file in files:
        partitions.setdefault(file.partition_key, []).append(file)
    return partitions


def column_range(metadata: pq.FileMetaData, column: str) -> tuple[datetime, datetime] | None:
    """Min and max of `column` from the footer's row-group statistics (None if any are missing)."""
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    if column not in names:
        return None
    index = names.index(column)
    lows, highs = [], []
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        if row_group.num_rows == 0:
            continue
        statistics = row_group.column(index).statistics
        if statistics is None or not statistics.has_min_max:
            return None
        lows.append(statistics.min)
        highs.append(statistics.max)
    return (min(lows), max(highs)) if lows else None


def iso_utc(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a `Z`; naive timestamps are UTC already (the sink writes UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
