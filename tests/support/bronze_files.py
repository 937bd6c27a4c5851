"""Bronze as the sink writes it, written with deltalake: rows of the Tweet record's columns in the
Delta table bronze, partitioned dt=/hour=, for tests of what reads bronze (the silver job)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from datalake.lake import Lake
from datalake.layout import BRONZE

SNOWFLAKE_EPOCH_MS = 1_288_834_974_657


def snowflake(moment: datetime, sequence: int = 0) -> str:
    """An X id of that moment (its time is in bits 22 and up)."""
    return str((int(moment.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS) << 22 | sequence)


def bronze_arrow_schema() -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    from spark_sink.schema import bronze_schema

    return to_arrow_schema(bronze_schema(), timezone="UTC")


def tweet(created_at: datetime, text: str, *, sequence: int = 0, history: list[str] | None = None,
          tweet_id: str | None = None, **fields) -> dict:
    """A bronze row; `history` (edit_history_tweet_ids) must end with the tweet's id if given."""
    tweet_id = tweet_id or snowflake(created_at, sequence)
    return {"tweet_id": tweet_id, "text": text, "created_at": created_at, "source_format": "v2", "raw": "{}",
            "schema_version": 1, "lang": "en", "edit_history_tweet_ids": history or [tweet_id],
            "hashtags": [], "mentions": [], "urls": [], "topics": [], "referenced_tweets": [],
            "ingested_at": datetime.now(timezone.utc), **fields}


def edited(created_at: datetime, texts: list[str], minutes_apart: int = 5) -> list[dict]:
    """The versions of one edited post, oldest first, each with the history up to itself."""
    ids = [snowflake(created_at + timedelta(minutes=minutes_apart * n), n) for n in range(len(texts))]
    return [tweet(created_at + timedelta(minutes=minutes_apart * n), text, tweet_id=ids[n], history=ids[: n + 1])
            for n, text in enumerate(texts)]


def write_bronze(lake: Path, rows: list[dict], schema: pa.Schema | None = None) -> int:
    """One commit of `rows` to bronze (as a sink batch commits them), with dt and hour from
    created_at (UTC); the table's version after it."""
    schema = schema or bronze_arrow_schema()
    for row in rows:
        moment = row["created_at"].astimezone(timezone.utc)
        row.update(dt=f"{moment:%Y-%m-%d}", hour=f"{moment:%H}")
    target = Lake(str(lake), must_exist=False)
    target.append(BRONZE, pa.Table.from_pylist(rows, schema))
    return target.table(BRONZE).version()
