"""Bronze as the sink lays it out, written with pyarrow: rows of the Tweet record's columns in
dt=/hour= folders under published names, for tests of what reads bronze (the silver job)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datalake.layout import BRONZE, published_name

SNOWFLAKE_EPOCH_MS = 1_288_834_974_657


def snowflake(moment: datetime, sequence: int = 0) -> str:
    """An X id of that moment (its time is in bits 22 and up)."""
    return str((int(moment.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS) << 22 | sequence)


def bronze_arrow_schema() -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    from spark_sink.schema import tweet_schema

    return to_arrow_schema(tweet_schema(), timezone="UTC")


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


def write_bronze(lake: Path, batch_id: int, rows: list[dict], schema: pa.Schema | None = None) -> list[Path]:
    """One sink batch's files: a file per hour partition of the rows' created_at, moved in whole."""
    schema = schema or bronze_arrow_schema()
    by_hour: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        moment = row["created_at"].astimezone(timezone.utc)
        by_hour.setdefault((f"{moment:%Y-%m-%d}", f"{moment:%H}"), []).append(row)
    written = []
    for index, ((dt, hour), group) in enumerate(sorted(by_hour.items())):
        folder = lake / BRONZE.path / f"dt={dt}" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / published_name(batch_id, index)
        temporary = folder / f".{path.name}.tmp"
        pq.write_table(pa.Table.from_pylist(group, schema), temporary)
        temporary.rename(path)
        written.append(path)
    return written
