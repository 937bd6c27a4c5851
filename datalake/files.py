"""The lake as the sink lays it out, read through a LakeFS: zones, hive partitions, data files
and their parquet footers. Shared by every `lake` subcommand, so they agree on what a data file is.
"""
from __future__ import annotations

import posixpath
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from datalake import layout
from datalake.errors import BadInput, LakeError, UnreadableFile
from datalake.fs import LakeFS
from datalake.layout import Zone


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
        return layout.partition_path(self.partition)

    @property
    def batch_id(self) -> int | None:
        """The sink batch that published this file; None for a compacted file."""
        return layout.batch_of(self.name)


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

    def zone_path(self, zone: Zone | str) -> str:
        return self.path(as_zone(zone).path)

    def files(self, zone: Zone | str, dt: str | None = None) -> list[DataFile]:
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
            if layout.hidden(entry.name):
                continue
            if entry.is_dir and "=" in entry.name:
                key, value = entry.name.split("=", 1)
                found += self._walk(entry.path, partition + ((key, value),))
            elif not entry.is_dir and entry.name.endswith(".parquet"):
                found.append(DataFile(entry.path, self.relative(entry.path), entry.size, partition))
        return found

    def rows_per_batch(self, zone: Zone | str) -> dict[int, int]:
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


def as_zone(zone: Zone | str) -> Zone:
    """A zone given by its path (a command's argument) as the Zone; BadInput if there is none."""
    if isinstance(zone, Zone):
        return zone
    try:
        return layout.zone(zone)
    except KeyError as error:
        raise BadInput(error.args[0]) from None


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
