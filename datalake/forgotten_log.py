"""The forgotten log: every id X told the lake to delete, kept in the Delta table LAKE/_forgotten
so that the sink, the silver job, a later backfill and `lake verify` all know what must never be
stored; and the rule of which rows it forgets (Forgotten.mask), written here once. What it holds
and how `lake forget` uses it: docs/compliance.md.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from datalake import layout
from datalake.lake import Lake
from datalake.layout import FORGOTTEN, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, Zone
from tweets.payloads import as_id, detect_format, id_of, tweet_of

TWEET, USER = "tweet", "user"
LOG_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("kind", pa.string()),  # "tweet" or "user"
    pa.field("reason", pa.string()),
    pa.field("source", pa.string()),  # where X said it: batch_compliance, v1.1_delete, v2_compliance
    pa.field("requested_at", pa.timestamp("us", tz="UTC")),
    pa.field("forgotten_at", pa.timestamp("us", tz="UTC")),
])


@dataclass(frozen=True)
class Forgotten:
    """The ids of the log: tweets and users."""

    tweets: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.tweets or self.users)

    def __len__(self) -> int:
        return len(self.tweets) + len(self.users)

    def __or__(self, other: "Forgotten") -> "Forgotten":
        return Forgotten(self.tweets | other.tweets, self.users | other.users)

    def mask(self, tweet_ids: pa.Array, post_ids: pa.Array, author_ids: pa.Array) -> pa.Array:
        """True where a row is forgotten: its tweet_id or its post's id (the first id of its edit
        history; silver's edit_root_id) is a forgotten tweet id, or its author_id a forgotten user
        id; nulls never match. spark_sink/forgotten_filter.py is its Spark twin, tested against it."""
        hit = pc.or_(self.tweet_hits(tweet_ids), self.tweet_hits(post_ids))
        return pc.fill_null(pc.or_(hit, pc.is_in(author_ids, value_set=pa.array(sorted(self.users), pa.string()))),
                            False)

    def tweet_hits(self, ids: pa.Array) -> pa.Array:
        return pc.fill_null(pc.is_in(ids, value_set=pa.array(sorted(self.tweets), pa.string())), False)


def read_log(lake: Lake) -> Forgotten:
    """Every id of the log (empty while it has no table)."""
    table = lake.read(FORGOTTEN, ["id", "kind"])
    if table is None:
        return Forgotten()
    ids = {kind: set(pc.filter(table.column("id"), pc.equal(table.column("kind"), kind)).to_pylist())
           for kind in (TWEET, USER)}
    for found in ids.values():
        found.discard(None)
    return Forgotten(frozenset(ids[TWEET]), frozenset(ids[USER]))


def append(lake: Lake, rows: list[dict], metadata: dict | None = None) -> int:
    """Append `rows` (LOG_SCHEMA's columns; forgotten_at defaults to now) in one commit; how many."""
    if not rows:
        return 0
    now = datetime.now(timezone.utc)
    table = pa.Table.from_pylist([{**row, "forgotten_at": row.get("forgotten_at") or now} for row in rows],
                                 schema=LOG_SCHEMA)
    lake.append(FORGOTTEN, table, metadata)
    return table.num_rows


# --- which rows of a zone's table are forgotten ------------------------------------------------


def forgotten_rows(forgotten: Forgotten, zone: Zone, table: pa.Table) -> pa.Array:
    """The mask of `table` (a file of `zone`, read with ZONE_COLUMNS[zone]) under the rule."""
    if zone in (QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE):
        ids = [_ids_of_quarantined(zone, value) for value in table.column(ZONE_COLUMNS[zone][0]).to_pylist()]
        tweet_ids, post_ids, author_ids = (pa.array([row[i] for row in ids], pa.string()) for i in range(3))
        return forgotten.mask(tweet_ids, post_ids, author_ids)
    if "edit_root_id" in table.column_names:
        post_ids = table.column("edit_root_id")
    else:
        post_ids = post_ids_of(table.column("edit_history_tweet_ids"), table.column("tweet_id"))
    return forgotten.mask(table.column("tweet_id"), post_ids, table.column("author_id"))


def post_ids_of(histories: pa.ChunkedArray, tweet_ids: pa.ChunkedArray) -> pa.Array:
    """The first id of each edit history, the row's own id where the history is empty or null."""
    histories = histories.combine_chunks() if isinstance(histories, pa.ChunkedArray) else histories
    tweet_ids = tweet_ids.combine_chunks() if isinstance(tweet_ids, pa.ChunkedArray) else tweet_ids
    firsts = pc.list_slice(histories, 0, 1)
    rows = pc.list_parent_indices(firsts).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(firsts).to_pylist()
    post = tweet_ids.to_pylist()
    for row, value in zip(rows, values):
        if value is not None:
            post[row] = value
    return pa.array(post, pa.string())


ZONE_COLUMNS = {
    layout.BRONZE: ["tweet_id", "author_id", "edit_history_tweet_ids"],
    layout.SILVER: ["tweet_id", "author_id", "edit_root_id"],
    QUARANTINE_DEAD_LETTERS: ["raw_base64"],
    QUARANTINE_UNREADABLE: ["value"],
}


def _ids_of_quarantined(zone: Zone, value: str | None) -> tuple[str | None, str | None, str | None]:
    """(tweet id, post id, author id) of a quarantined message, as far as it can be read: a dead
    letter holds the raw payload, an unreadable typed record the worker's JSON row."""
    if value is None:
        return None, None, None
    try:
        if zone == QUARANTINE_UNREADABLE:
            row = orjson.loads(value)
            history = row.get("edit_history_tweet_ids") or [None]
            return as_id(row.get("tweet_id")), as_id(history[0]), as_id(row.get("author_id"))
        obj = orjson.loads(base64.b64decode(value))
    except (ValueError, TypeError, AttributeError):
        return None, None, None
    payload_format = detect_format(obj)
    if payload_format is None:
        return None, None, None
    tweet = tweet_of(obj, payload_format)
    tweet_id = id_of(tweet, payload_format)
    if payload_format == "v1.1":
        user = tweet.get("user") if isinstance(tweet.get("user"), dict) else {}
        author = as_id(user.get("id_str")) or as_id(user.get("id"))
        return tweet_id, tweet_id, author
    history = tweet.get("edit_history_tweet_ids")
    post = as_id(history[0]) if isinstance(history, list) and history else tweet_id
    return tweet_id, post, as_id(tweet.get("author_id"))
