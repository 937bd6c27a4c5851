"""Forgetting in one table without a JVM: the rows the forgotten log's rule names
(datalake.forgotten_log) are found by reading the table's id columns through its log, then leave it
in one Delta DELETE by their key (delta-rs), restricted to the partitions they are in.

The DELETE rewrites the files that held them (deletion vectors are off); the old files, with the
deleted text, stay until VACUUM removes them after LAKE_RETENTION_HOURS (datalake/purge.py).
A writer that read the log before it changed and commits afterwards deletes the new ids itself
(spark_sink/forgotten_filter.py), so nothing forgotten comes back whatever the order of commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from datalake.forgotten_log import ZONE_COLUMNS, Forgotten, forgotten_rows
from datalake.lake import Lake, retrying
from datalake.layout import Zone

Progress = Callable[[str], None]


@dataclass
class Removed:
    """What one DELETE did to a table."""

    zone: Zone
    rows: int = 0
    files_rewritten: int = 0
    version: int | None = None  # the table's version after the DELETE (None: nothing deleted)


def doomed_keys(lake: Lake, zone: Zone, forgotten: Forgotten) -> pa.Table:
    """The key and partition values of every row of `zone` the rule forgets."""
    columns = list(dict.fromkeys(ZONE_COLUMNS[zone] + [zone.key, *zone.partitions]))
    table = lake.read(zone, columns)
    if table is None or not forgotten:
        return pa.table({column: pa.array([], pa.string()) for column in [zone.key, *zone.partitions]})
    return table.filter(forgotten_rows(forgotten, zone, table)).select([zone.key, *zone.partitions])


def delete_forgotten(lake: Lake, zone: Zone, forgotten: Forgotten, progress: Progress) -> Removed:
    """Remove the rows of `zone` the rule forgets, in one commit (again after a conflict)."""

    def attempt() -> Removed:
        doomed = doomed_keys(lake, zone, forgotten)
        if doomed.num_rows == 0:
            return Removed(zone)
        table = lake.table(zone)
        metrics = table.delete(key_predicate(zone, doomed))
        return Removed(zone, int(metrics.get("num_deleted_rows", 0)), int(metrics.get("num_removed_files", 0)),
                       table.version())

    removed = retrying(f"{zone}: DELETE of forgotten rows", attempt, progress)
    if removed.rows:
        progress(f"{zone}: {removed.rows} forgotten row(s) deleted, {removed.files_rewritten} file(s) rewritten "
                 f"(version {removed.version})")
    return removed


def key_predicate(zone: Zone, rows: pa.Table) -> str:
    """`key IN (...)` within the partitions those rows are in: a SQL predicate for delta-rs."""
    keys = sorted(set(rows.column(zone.key).to_pylist()) - {None})
    condition = f"{zone.key} IN ({', '.join(quoted(key) for key in keys)})"
    if not zone.partitions:
        return condition
    places = sorted({tuple(row[column] for column in zone.partitions) for row in rows.to_pylist()})
    where = " OR ".join("(" + " AND ".join(f"{column} = {quoted(value)}" for column, value in zip(zone.partitions, place))
                        + ")" for place in places)
    return f"({where}) AND {condition}"


def quoted(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def count_forgotten(lake: Lake, zone: Zone, forgotten: Forgotten) -> int:
    """Rows of `zone` the rule says are forgotten (`lake verify`, and forget's before and after)."""
    if not forgotten:
        return 0
    table = lake.read(zone, ZONE_COLUMNS[zone])
    return 0 if table is None else pc.sum(forgotten_rows(forgotten, zone, table)).as_py() or 0
