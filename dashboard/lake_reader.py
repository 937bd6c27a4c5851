"""The lake as the dashboard reads it, refresh after refresh, through each Delta table's log
(deltalake): a table is read again only when its version changed, and silver's hour partitions
only when their files did.

Gold is small (one row per topic, hashtag, entity or domain and hour): kept whole. Silver is not
(a million rows is a week of a busy stream): only the relevant tweets of its newest hour
partitions are read, as many as the newest tweets need, and a bounded number of partitions is kept.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from config.settings import Settings
from datalake import layout
from datalake.errors import LakeError
from datalake.lake import Lake
from datalake.layout import GOLD_COLUMNS, SILVER, Zone
from tweets.relevance import RELEVANT

TWEET_COLUMNS = ["tweet_id", "created_at", "text", "author_username", "author_id", "topics", "relevance"]
# Silver hour partitions whose relevant tweets stay parsed: a day of them.
SILVER_PARTITIONS_KEPT = 48
# How many hour partitions the newest tweets of a rare topic are looked for in: a week's.
SILVER_HOURS_SEARCHED = 7 * 24


def gold_schema(zone: Zone) -> pa.Schema:
    groups, counts = GOLD_COLUMNS[zone]
    return pa.schema([(name, pa.string()) for name in groups] + [(name, pa.int64()) for name in counts]
                     + [(name, pa.string()) for name in layout.PARTITION_COLUMNS])


class LakeReader:
    """Tables, gold and the newest silver tweets of one lake root."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.lake = Lake.of(settings, must_exist=False)
        self._gold: dict[Zone, tuple[int, pa.Table]] = {}
        self._silver: OrderedDict[tuple, pa.Table] = OrderedDict()

    def gold(self, zone: Zone) -> pa.Table:
        """A whole gold table, read again only when its version changed."""
        schema = gold_schema(zone)
        table = self.lake.table(zone)
        if table is None:
            return schema.empty_table()
        version = table.version()
        cached = self._gold.get(zone)
        if cached is None or cached[0] != version:
            self._gold[zone] = cached = (version, gold_rows(table.to_pyarrow_dataset(), schema))
        return cached[1]

    def newest_tweets(self, topic: str | None, limit: int,
                      hours: Callable[[str], bool] | None = None) -> tuple[list[dict], int]:
        """The `limit` newest relevant silver tweets (of `topic`, if given), newest first, and how
        many hour partitions were read for them; only the partitions (dt=…/hour=…) `hours` accepts."""
        table = self.lake.table(SILVER)
        if table is None:
            return [], 0
        partitions = files_by_partition(SILVER, pa.table(table.get_add_actions(flatten=True)))
        newest_first = sorted((key for key in partitions if hours is None or hours(key)), reverse=True)
        dataset = table.to_pyarrow_dataset()
        found: list[pa.Table] = []
        count = read = 0
        for key in newest_first[:SILVER_HOURS_SEARCHED]:
            read += 1
            relevant = self._relevant(dataset, key, partitions[key])
            matching = relevant if topic is None else relevant.filter(has_topic(relevant["topics"], topic))
            found.append(matching)
            count += matching.num_rows
            if count >= limit:
                break
        if not found:
            return [], read
        tweets = pa.concat_tables(found).sort_by([("created_at", "descending"), ("tweet_id", "descending")])
        return tweets.slice(0, limit).to_pylist(), read

    def _relevant(self, dataset: ds.Dataset, key: str, files: tuple[str, ...]) -> pa.Table:
        """The relevant tweets of one hour partition, kept while its files stay the same."""
        cache_key = (key, files)
        if cache_key in self._silver:
            self._silver.move_to_end(cache_key)
            return self._silver[cache_key]
        dt, hour = (part.split("=", 1)[1] for part in key.split("/"))
        try:
            rows = dataset.to_table(columns=TWEET_COLUMNS + ["relevance_label"],
                                    filter=(ds.field("dt") == dt) & (ds.field("hour") == hour))
        except (pa.ArrowException, OSError) as error:
            raise LakeError(f"silver {key}: unreadable: {error}") from error
        relevant = rows.filter(pc.equal(rows["relevance_label"], RELEVANT)).select(TWEET_COLUMNS)
        self._silver[cache_key] = relevant
        while len(self._silver) > SILVER_PARTITIONS_KEPT:
            self._silver.popitem(last=False)
        return relevant


def gold_rows(dataset: ds.Dataset, schema: pa.Schema) -> pa.Table:
    """A gold table's rows in `schema`. A count the table predates (relevant_tweets in a lake written
    before it) reads 0, in the table or in the hours the gold job has not recomputed since it came."""
    rows = dataset.to_table(columns=[name for name in schema.names if name in dataset.schema.names])
    columns = [rows[field.name].cast(field.type) if field.name in rows.column_names
               else pa.nulls(rows.num_rows, field.type) for field in schema]
    return pa.table([pc.fill_null(column, 0) if pa.types.is_integer(column.type) else column for column in columns],
                    schema=schema)


def files_by_partition(zone: Zone, files: pa.Table) -> dict[str, tuple[str, ...]]:
    """The data files of each partition (dt=…/hour=…) of a table's current version."""
    found: dict[str, list[str]] = {}
    for row in files.select(["path", *[f"partition.{c}" for c in zone.partitions]]).to_pylist():
        key = layout.partition_path([(column, row[f"partition.{column}"]) for column in zone.partitions])
        found.setdefault(key, []).append(row["path"])
    return {key: tuple(sorted(paths)) for key, paths in found.items()}


def has_topic(topics: pa.ChunkedArray, topic: str) -> pa.Array:
    """Rows whose list of topics holds `topic`."""
    topics = topics.combine_chunks()
    flat = pc.list_flatten(topics)
    parents = pc.list_parent_indices(topics)
    hits = pc.unique(pc.filter(parents, pc.equal(flat, topic)))
    return pc.is_in(pa.array(range(len(topics)), pa.int64()), value_set=hits.cast(pa.int64()))
