"""The lake's layout, written once: its zones, their partitions, how data files and batch
manifests are named, and where staging, journals and checkpoints live.

Every writer (the Spark jobs, the backfill, `lake compact`, `lake replay`) and every reader (the
`lake` command, the tests) takes these rules from here; this module imports nothing but the
standard library, so the `lake` command starts without a JVM.
"""
from __future__ import annotations

import itertools
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

PARTITION_COLUMNS = ("dt", "hour")


@dataclass(frozen=True)
class Zone:
    """A folder of parquet data under the lake root, partitioned hive-style by `partitions`.
    `query` is the streaming query (a checkpoint folder) whose batch ids name its files; `key`
    the column `lake verify` requires unique across the zone (None: none is)."""

    path: str
    partitions: tuple[str, ...]
    query: str
    key: str | None = None

    def __str__(self) -> str:
        return self.path


BRONZE = Zone("bronze", PARTITION_COLUMNS, query="bronze", key="tweet_id")
SILVER = Zone("silver", PARTITION_COLUMNS, query="silver", key="edit_root_id")
QUARANTINE_DEAD_LETTERS = Zone("quarantine/dead_letter", ("dt",), query="dead_letters")
QUARANTINE_UNREADABLE = Zone("quarantine/typed_unreadable", ("dt",), query="bronze")
# Gold: hourly aggregates of silver, one table per folder under gold/, each hour partition
# rewritten whole by the gold job (spark_sink/gold.py) when silver changes in that hour.
GOLD = Zone("gold", PARTITION_COLUMNS, query="gold")
GOLD_TOPIC_HOURLY = Zone("gold/topic_hourly", PARTITION_COLUMNS, query="gold")
GOLD_HASHTAGS_HOURLY = Zone("gold/hashtags_hourly", PARTITION_COLUMNS, query="gold")
GOLD_ENTITIES_HOURLY = Zone("gold/entities_hourly", PARTITION_COLUMNS, query="gold")
GOLD_DOMAINS_HOURLY = Zone("gold/domains_hourly", PARTITION_COLUMNS, query="gold")
GOLD_TABLES = (GOLD_TOPIC_HOURLY, GOLD_HASHTAGS_HOURLY, GOLD_ENTITIES_HOURLY, GOLD_DOMAINS_HOURLY)
# Each gold table's columns besides dt and hour: its group columns, then its counts.
GOLD_COLUMNS = {
    GOLD_TOPIC_HOURLY: (("topic",), ("tweets", "originals", "retweets", "quotes", "replies", "authors")),
    GOLD_HASHTAGS_HOURLY: (("hashtag",), ("tweets",)),
    GOLD_ENTITIES_HOURLY: (("entity", "label"), ("tweets",)),
    GOLD_DOMAINS_HOURLY: (("domain",), ("tweets",)),
}

# The forgotten log (datalake/forgotten.py): ids X asked the lake to delete. Not a zone of tweets:
# its name starts with "_", so readers of the lake skip it. The sink's compliance query publishes into it.
FORGOTTEN = Zone("_forgotten", (), query="compliance")

ZONES = (BRONZE, SILVER, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE) + GOLD_TABLES
QUARANTINE_ZONES = (QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE)
# The zones of the bronze sink: what a run of the whole path (a backfill, a replay) lands, and
# what `lake forget` rewrites file by file (silver is the silver job's, and gold follows silver).
SINK_ZONES = (BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE)

# Folders of the lake that are not zones. Names starting with "_" are skipped by every reader.
STAGING = "_staging"  # a batch's files as Spark wrote them, before they move into the zone
MANIFESTS = "_manifests"  # per zone and batch: the files a batch published, for its replay
CHECKPOINTS = "_checkpoints"  # the streaming queries' checkpoints, unless CHECKPOINT_ROOT
RUN_STAGING = "_backfill"  # a backfill's or replay's sink output, before it lands in the zones
REPLAY_JOURNALS = "_replays"  # `lake replay`: a pending journal names quarantine files
COMPACTION_JOURNALS = "_compactions"  # `lake compact`, `lake forget`: per zone, its lock and pending rewrites
JOB_LOCKS = "_locks"  # a job that must run once per lake (silver, gold) holds <name>.json here

# A file a batch published: part-<batch id>-<n>, and -r<attempt> when a replay of the batch wrote
# it (a replay deletes the earlier attempt's files). A new name per attempt lets a reader that
# follows the zone by file names (silver's stream of bronze) see the replayed files as new.
PUBLISHED_NAME = re.compile(r"part-(\d{12})-\d{5}(?:-r\d+)?\.parquet")
# A file no manifest lists (compaction outputs, landed backfills): part-c<UTC time>-<n>.
FINAL_NAME = re.compile(r"part-c[0-9TZ]+-\d{5}\.parquet")


def zone(path: str) -> Zone:
    """The zone at `path` (e.g. "bronze"); KeyError naming the zones otherwise."""
    for known in ZONES:
        if known.path == path:
            return known
    raise KeyError(f"unknown zone {path!r}: the zones are {', '.join(z.path for z in ZONES)}")


def published_name(batch_id: int, index: int, attempt: int = 0) -> str:
    retry = f"-r{attempt}" if attempt else ""
    return f"part-{batch_id:012d}-{index:05d}{retry}.parquet"


def batch_of(name: str) -> int | None:
    """The batch that published a file of this name; None for a final name."""
    match = PUBLISHED_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def utc_stamp(moment: datetime | None = None) -> str:
    """A sortable UTC time for names: 20240501T070000123456Z."""
    return (moment or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")


def final_name(stamp: str, index: int) -> str:
    return f"part-c{stamp}-{index:05d}.parquet"


def final_names(stamp: str | None = None) -> Iterator[str]:
    """final_name(stamp, 0), final_name(stamp, 1), ...: one run's files, in the order it writes them."""
    stamp = stamp or utc_stamp()
    return (final_name(stamp, n) for n in itertools.count())


def hidden(name: str) -> bool:
    """Names every reader skips (pyarrow, Spark, Hive): temporary files, checksums, metadata."""
    return name.startswith(("_", "."))


def hidden_temporary(path: str) -> str:
    """Where a file is written before it is renamed to `path`: beside it, under a name readers skip."""
    return posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.tmp")


def partition_path(values: dict[str, str] | tuple[tuple[str, str], ...]) -> str:
    """dt=2024-05-01/hour=07 for those partition values, in the order given."""
    items = values.items() if isinstance(values, dict) else values
    return "/".join(f"{key}={value}" for key, value in items)


def checkpoints(lake_root: str, checkpoint_root: str | None = None) -> str:
    """The root of the streaming queries' checkpoints: CHECKPOINT_ROOT, else LAKE_ROOT/_checkpoints."""
    return (checkpoint_root or f"{lake_root.rstrip('/')}/{CHECKPOINTS}").rstrip("/")


@dataclass(frozen=True)
class ZoneLayout:
    """Where a zone's data, a batch's staging files and the batch manifests live under a lake root
    (a URI for Spark's Hadoop client, or a path)."""

    lake_root: str
    zone: Zone

    @property
    def data(self) -> str:
        return f"{self.lake_root}/{self.zone.path}"

    def staging(self, batch_id: int) -> str:
        return f"{self.lake_root}/{STAGING}/{self.zone.path}/batch={batch_id}"

    @property
    def manifests(self) -> str:
        return f"{self.lake_root}/{MANIFESTS}/{self.zone.path}"

    def manifest(self, batch_id: int) -> str:
        return f"{self.manifests}/{batch_id:012d}.json"
