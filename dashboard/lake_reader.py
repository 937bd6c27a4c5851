"""The lake as the dashboard reads it, refresh after refresh: every parquet file parsed once and
kept by (path, size), so a refresh reads only what the jobs wrote since the last one.

Gold is small (one row per topic, hashtag, entity or domain and hour): kept whole. Silver is not
(a million rows is a week of a busy stream): only the relevant tweets of its newest hour
partitions are read, as many as the newest tweets need, and a bounded number of files is kept.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.settings import Settings
from datalake import layout
from datalake.errors import BadInput, LakeError
from datalake.files import DataFile, Lake, by_partition
from datalake.fs import LakeFS, lake_fs_for
from datalake.layout import GOLD_COLUMNS, SILVER, Zone
from tweets.relevance import RELEVANT

TWEET_COLUMNS = ["tweet_id", "created_at", "text", "author_username", "author_id", "topics", "relevance"]
# Silver files whose relevant tweets stay parsed: a day of hour partitions at a few files each.
SILVER_FILES_KEPT = 256
# How many hour partitions the newest tweets of a rare topic are looked for in: a week's.
SILVER_HOURS_SEARCHED = 7 * 24


def open_lake_fs(root: str, settings: Settings) -> tuple[LakeFS, str]:
    """The filesystem and path of a lake root or checkpoint root, as the `lake` command opens it."""
    return lake_fs_for(root, settings.hdfs_namenode_url, settings.hdfs_user, settings.hdfs_http_port)


def gold_schema(zone: Zone) -> pa.Schema:
    groups, counts = GOLD_COLUMNS[zone]
    return pa.schema([(name, pa.string()) for name in groups] + [(name, pa.int64()) for name in counts]
                     + [(name, pa.string()) for name in layout.PARTITION_COLUMNS])


class FileCache:
    """Values derived from files, by (path, size); a file rewritten under its name has a new size
    or a new name (the jobs never rewrite a file in place), so an entry is never stale."""

    def __init__(self, capacity: int | None = None):
        self._entries: OrderedDict[tuple[str, int], object] = OrderedDict()
        self._capacity = capacity

    def get(self, file: DataFile, compute: Callable[[DataFile], object]):
        key = (file.path, file.size)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = compute(file)
        self._entries[key] = value
        if self._capacity is not None and len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return value

    def keep_only(self, files: Iterable[DataFile]) -> None:
        """Forget files no longer listed (compacted away, an hour rewritten by the gold job)."""
        listed = {(file.path, file.size) for file in files}
        for key in [key for key in self._entries if key not in listed]:
            del self._entries[key]


class LakeReader:
    """Zones, footers, gold tables and the newest silver tweets of one lake root."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.lake_root
        self._lake: Lake | None = None
        self._footers = FileCache()
        self._gold = {zone: FileCache() for zone in GOLD_COLUMNS}
        self._silver = FileCache(capacity=SILVER_FILES_KEPT)

    @property
    def lake(self) -> Lake:
        """The lake; BadInput while its root does not exist yet (before the sink's first batch)."""
        if self._lake is None:
            fs, path = open_lake_fs(self.root, self.settings)
            self._lake = Lake(fs, path, shown_root=self.root)
        return self._lake

    def files(self, zone: Zone) -> list[DataFile]:
        try:
            return self.lake.files(zone)
        except BadInput:
            return []

    def footer(self, file: DataFile) -> pq.FileMetaData:
        return self._footers.get(file, self.lake.metadata)

    def footers(self, files: list[DataFile]) -> list[tuple[DataFile, pq.FileMetaData]]:
        """Each file with its footer; a file replaced between listing and reading is left out
        (the next refresh lists its successor)."""
        found = []
        for file in files:
            try:
                found.append((file, self.footer(file)))
            except LakeError:
                continue
        return found

    def forget_missing(self, listed: dict[Zone, list[DataFile]]) -> None:
        self._footers.keep_only(file for files in listed.values() for file in files)

    def gold(self, zone: Zone) -> pa.Table:
        """A whole gold table with its dt and hour partition values as string columns."""
        schema = gold_schema(zone)
        files = self.files(zone)
        cache = self._gold[zone]
        cache.keep_only(files)
        tables = []
        for file in files:
            try:
                tables.append(cache.get(file, lambda f: self._read_gold(f, schema)))
            except LakeError:
                continue
        if not tables:
            return schema.empty_table()
        return pa.concat_tables(tables)

    def _read_gold(self, file: DataFile, schema: pa.Schema) -> pa.Table:
        table = self.lake.read(file, columns=[name for name in schema.names if name not in layout.PARTITION_COLUMNS])
        return with_partition(table, file).select(schema.names).cast(schema)

    def newest_tweets(self, topic: str | None, limit: int,
                      hours: Callable[[str], bool] | None = None) -> tuple[list[dict], int]:
        """The `limit` newest relevant silver tweets (of `topic`, if given), newest first, and how
        many hour partitions were read for them; only the partitions (dt=…/hour=…) `hours` accepts."""
        partitions = by_partition(self.files(SILVER))
        newest_first = sorted((key for key in partitions if hours is None or hours(key)), reverse=True)
        newest_first = newest_first[:SILVER_HOURS_SEARCHED]
        found: list[pa.Table] = []
        count = 0
        read = 0
        for key in newest_first:
            read += 1
            for file in partitions[key]:
                try:
                    relevant = self._silver.get(file, self._read_relevant)
                except LakeError:
                    continue
                matching = relevant if topic is None else relevant.filter(has_topic(relevant["topics"], topic))
                found.append(matching)
                count += matching.num_rows
            if count >= limit:
                break
        if not found:
            return [], read
        tweets = pa.concat_tables(found).sort_by([("created_at", "descending"), ("tweet_id", "descending")])
        return tweets.slice(0, limit).to_pylist(), read

    def _read_relevant(self, file: DataFile) -> pa.Table:
        table = self.lake.read(file, columns=TWEET_COLUMNS + ["relevance_label"])
        return table.filter(pc.equal(table["relevance_label"], RELEVANT)).select(TWEET_COLUMNS)


def with_partition(table: pa.Table, file: DataFile) -> pa.Table:
    """The file's rows with its hive partition values (strings, as the folder names spell them)."""
    for name, value in file.partition:
        table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
    return table


def has_topic(topics: pa.ChunkedArray, topic: str) -> pa.Array:
    """Rows whose list of topics holds `topic`."""
    topics = topics.combine_chunks()
    flat = pc.list_flatten(topics)
    parents = pc.list_parent_indices(topics)
    hits = pc.unique(pc.filter(parents, pc.equal(flat, topic)))
    return pc.is_in(pa.array(range(len(topics)), pa.int64()), value_set=hits.cast(pa.int64()))
