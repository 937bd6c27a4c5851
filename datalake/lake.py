"""The lake's Delta tables as Python reads and changes them without a JVM: deltalake (delta-rs)
reads each table through its log, on a local folder or on `hdfs://` (its native HDFS client:
no JVM, no libhdfs), into pyarrow, pandas or DuckDB.

Every reader of the project goes through a table's log, never through its folder: after a MERGE,
DELETE or OPTIMIZE the folder still holds the files the current version no longer uses (until
VACUUM), and a plain parquet read of it sees deleted and doubled rows.
"""
from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from datalake import layout
from datalake.errors import BadInput, LakeError
from datalake.layout import Zone

# Attempts of a change that meets another writer's commit (a Spark job, auto compaction).
ATTEMPTS = 6

Result = TypeVar("Result")


def lake_uri(lake_root: str) -> str:
    """LAKE_ROOT as deltalake opens it: a local folder as an absolute path, `hdfs://` as it is."""
    parsed = urlparse(lake_root)
    if parsed.scheme == "file":
        return str(Path(parsed.path).resolve())
    if parsed.scheme == "":
        return str(Path(lake_root).resolve())
    if parsed.scheme == "hdfs":
        return lake_root.rstrip("/")
    raise BadInput(f"unsupported lake root {lake_root}: use a local path, file:// or hdfs://")


class Lake:
    """A lake root and its tables."""

    def __init__(self, root: str, shown_root: str | None = None, must_exist: bool = True,
                 retention_hours: float = 24.0, log_retention_hours: float = 24.0):
        self.root = lake_uri(root)
        self.shown_root = shown_root or root
        self.retention_hours = retention_hours
        self.log_retention_hours = log_retention_hours
        if must_exist and self.local and not os.path.isdir(self.root):
            raise BadInput(f"lake root {self.shown_root} does not exist")

    @classmethod
    def of(cls, settings, root: str | None = None, must_exist: bool = True) -> "Lake":
        """The lake at `root` (default LAKE_ROOT) with the settings' retention."""
        root = root or settings.lake_root
        return cls(root, shown_root=root, must_exist=must_exist, retention_hours=settings.lake_retention_hours,
                   log_retention_hours=settings.lake_log_retention_hours)

    @property
    def local(self) -> bool:
        return "://" not in self.root

    def uri(self, zone: Zone) -> str:
        return layout.table_uri(self.root, zone)

    def has(self, zone: Zone) -> bool:
        try:
            return DeltaTable.is_deltatable(self.uri(zone))
        except (DeltaError, OSError) as error:
            raise LakeError(f"cannot read {self.uri(zone)}: {plain(error)}") from error

    def table(self, zone: Zone, as_of: int | str | datetime | None = None) -> DeltaTable | None:
        """The zone's table (at version or time `as_of`), None while nobody has created it."""
        try:
            table = DeltaTable(self.uri(zone))
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as error:
            raise LakeError(f"cannot open the Delta table {zone} at {self.uri(zone)}: {plain(error)}") from error
        if as_of is not None:
            try:
                table.load_as_version(as_of)
            except (DeltaError, ValueError, OSError) as error:
                raise BadInput(f"{zone} has no version {as_of}: {plain(error)}") from error
            if isinstance(as_of, datetime) and commit_time_ms(self.uri(zone), table.version()) > as_of.timestamp() * 1000:
                raise BadInput(f"{zone} has no version as old as {as_of.isoformat()}: its oldest is later")
        return table

    def dataset(self, zone: Zone, as_of: int | str | datetime | None = None) -> ds.Dataset | None:
        table = self.table(zone, as_of)
        return None if table is None else table.to_pyarrow_dataset()

    def read(self, zone: Zone, columns: list[str] | None = None, where: ds.Expression | None = None,
             as_of: int | str | datetime | None = None) -> pa.Table | None:
        """The zone's rows (those `where` keeps), through its log; None while it has no table."""
        dataset = self.dataset(zone, as_of)
        if dataset is None:
            return None
        try:
            return dataset.to_table(columns=columns, filter=where)
        except FileNotFoundError as error:
            which = "its current version" if as_of is None else f"version {as_of}"
            raise LakeError(f"{zone}: a file of {which} is gone (VACUUM removes the files older versions use "
                            f"after LAKE_RETENTION_HOURS; or it was deleted by hand): {plain(error)}") from error
        except (pa.ArrowException, OSError) as error:
            raise LakeError(f"{zone}: unreadable: {plain(error)}") from error

    def rows(self, zone: Zone) -> int:
        """Rows of the zone's current version, from the log's statistics (counted in the data for
        files written without them)."""
        files = self.files(zone)
        if files is None:
            return 0
        counts = files.column("num_records")
        if counts.null_count:
            return self.dataset(zone).count_rows()
        return sum(counts.to_pylist())

    def files(self, zone: Zone) -> pa.Table | None:
        """The data files of the current version: path, size_bytes, num_records, partition.*,
        min.*/max.* of the statistics columns."""
        table = self.table(zone)
        return None if table is None else pa.table(table.get_add_actions(flatten=True))

    def append(self, zone: Zone, rows: pa.Table, metadata: dict | None = None) -> None:
        """Append `rows` in one commit, creating the table with the layout's properties if needed."""
        write_deltalake(self.uri(zone), rows, mode="append", partition_by=list(zone.partitions) or None,
                        configuration=self.properties(zone),
                        commit_properties=CommitProperties(custom_metadata=metadata or {}))

    def properties(self, zone: Zone) -> dict[str, str]:
        return layout.table_properties(zone, self.retention_hours, self.log_retention_hours)


def plain(error: BaseException) -> str:
    """An error's message without the terminal colours delta-rs puts in it."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(error))


def commit_time_ms(uri: str, version: int) -> int:
    """When `version` of the table at `uri` was committed (epoch milliseconds)."""
    newest = DeltaTable(uri)
    commits = newest.history(newest.version() - version + 1)
    return next(c.get("timestamp", 0) for c in commits if c.get("version") == version)


def retrying(what: str, change: Callable[[], Result], progress: Callable[[str], None] = lambda _: None) -> Result:
    """`change()` again when another writer committed first (delta-rs tries its own commit a few
    times, then gives up when the other commit touched what this one read)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return change()
        except CommitFailedError as error:
            if attempt == ATTEMPTS:
                raise LakeError(f"{what}: gave up after {ATTEMPTS} commit conflicts: {error}") from error
            progress(f"{what}: another writer committed first; trying again ({error})")
            time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
    raise AssertionError("unreachable")
