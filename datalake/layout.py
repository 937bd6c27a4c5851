"""The lake's layout, written once: its tables (every zone is a Delta table), their partitions,
keys and table properties, and where the streaming checkpoints live.

Every writer (the Spark jobs, `lake forget`, `lake compact`, `lake replay`) and every reader (the
`lake` command, the dashboard, the tests) takes these rules from here; this module imports nothing
but the standard library, so the `lake` command starts without a JVM.
"""
from __future__ import annotations

from dataclasses import dataclass

PARTITION_COLUMNS = ("dt", "hour")


@dataclass(frozen=True)
class Zone:
    """A Delta table under the lake root, partitioned by `partitions`. `query` is the streaming
    query that writes it (its checkpoint folder and metrics name); `key` the column unique across
    the table (None: none is); `stats` the columns Delta keeps min/max statistics of in its log
    (ids and times only: a tweet's text must not survive its DELETE in the log's statistics);
    `change_feed`: Delta records the table's row changes (gold follows silver's)."""

    path: str
    partitions: tuple[str, ...]
    query: str
    key: str | None = None
    stats: tuple[str, ...] = ()
    change_feed: bool = False

    def __str__(self) -> str:
        return self.path


BRONZE = Zone("bronze", PARTITION_COLUMNS, query="bronze", key="tweet_id",
              stats=("tweet_id", "created_at", "author_id", "ingested_at"))
SILVER = Zone("silver", PARTITION_COLUMNS, query="silver", key="edit_root_id",
              stats=("edit_root_id", "tweet_id", "created_at", "author_id"), change_feed=True)
# Quarantine rows are addressed by letter_id (a hash of the whole letter): `lake forget` and
# `lake replay` delete exactly the letters they mean.
QUARANTINE_DEAD_LETTERS = Zone("quarantine/dead_letter", ("dt",), query="dead_letters", key="letter_id",
                               stats=("letter_id", "failed_at"))
QUARANTINE_UNREADABLE = Zone("quarantine/typed_unreadable", ("dt",), query="bronze", key="letter_id",
                             stats=("letter_id",))
# Gold: hourly aggregates of silver, each hour recomputed whole by the gold job (spark_sink/gold.py)
# when silver's change feed shows a change in it. Each table's columns besides dt and hour: its
# group columns, then its counts (relevant_tweets: the posts silver labels relevant).
GOLD_GROUPS = {
    "gold/topic_hourly": (("topic",), ("tweets", "relevant_tweets", "originals", "retweets", "quotes", "replies",
                                       "authors")),
    "gold/hashtags_hourly": (("hashtag",), ("tweets", "relevant_tweets")),
    "gold/entities_hourly": (("entity", "label"), ("tweets", "relevant_tweets")),
    "gold/domains_hourly": (("domain",), ("tweets", "relevant_tweets")),
}
GOLD_TOPIC_HOURLY, GOLD_HASHTAGS_HOURLY, GOLD_ENTITIES_HOURLY, GOLD_DOMAINS_HOURLY = GOLD_TABLES = tuple(
    Zone(path, PARTITION_COLUMNS, query="gold", stats=groups) for path, (groups, _) in GOLD_GROUPS.items()
)
GOLD_COLUMNS = {table: GOLD_GROUPS[table.path] for table in GOLD_TABLES}

# The forgotten log (datalake/forgotten_log.py): ids X asked the lake to delete, ids only. Not a zone
# of tweets; the sink's compliance query and `lake forget` append to it.
FORGOTTEN = Zone("_forgotten", (), query="compliance", stats=("id", "kind"))

ZONES = (BRONZE, SILVER, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE) + GOLD_TABLES
TABLES = ZONES + (FORGOTTEN,)
QUARANTINE_ZONES = (QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE)

CHECKPOINTS = "_checkpoints"  # the streaming queries' checkpoints, unless CHECKPOINT_ROOT
JOB_LOCKS = "_locks"  # a job that runs once per checkpoint (silver, gold) holds <name>.json here
# The exit code of a job that runs once per lake (silver, gold) when another one holds the lake.
LAKE_BUSY = 3

# Commits between two checkpoints of a table's log: a reader replays at most this many JSON
# commits on top of the newest checkpoint (a 5 s trigger commits ~700 times an hour).
CHECKPOINT_INTERVAL = 50


def zone(path: str) -> Zone:
    """The zone at `path` (e.g. "bronze"); KeyError naming the zones otherwise."""
    for known in TABLES:
        if known.path == path:
            return known
    raise KeyError(f"unknown zone {path!r}: the zones are {', '.join(z.path for z in ZONES)}")


def table_properties(zone: Zone, retention_hours: float, log_retention_hours: float) -> dict[str, str]:
    """The Delta properties of a zone's table, set when it is created (and by `lake convert`).

    Deletion vectors stay off: deltalake's pyarrow readers (the `lake` command, the dashboard,
    DuckDB) refuse tables that have them. No auto compaction: measured here it rewrote the live
    hour partition after nearly every micro-batch of the sink; the jobs OPTIMIZE on a schedule
    instead (spark_sink/maintenance.py)."""
    properties = {
        "delta.enableDeletionVectors": "false",
        "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
        "delta.logRetentionDuration": interval(max(log_retention_hours, retention_hours)),
        "delta.deletedFileRetentionDuration": interval(retention_hours),
        "delta.dataSkippingStatsColumns": ",".join(zone.stats),
    }
    if zone.change_feed:
        properties["delta.enableChangeDataFeed"] = "true"
    return properties


def interval(hours: float) -> str:
    """A Delta interval property: "interval 86400 seconds" for 24 hours."""
    return f"interval {round(hours * 3600)} seconds"


def table_uri(lake_root: str, zone: Zone) -> str:
    return f"{lake_root.rstrip('/')}/{zone.path}"


def checkpoints(lake_root: str, checkpoint_root: str | None = None) -> str:
    """The root of the streaming queries' checkpoints: CHECKPOINT_ROOT, else LAKE_ROOT/_checkpoints."""
    return (checkpoint_root or f"{lake_root.rstrip('/')}/{CHECKPOINTS}").rstrip("/")


def partition_path(values: dict[str, str] | tuple[tuple[str, str], ...]) -> str:
    """dt=2024-05-01/hour=07 for those partition values, in the order given."""
    items = values.items() if isinstance(values, dict) else values
    return "/".join(f"{key}={value}" for key, value in items)
