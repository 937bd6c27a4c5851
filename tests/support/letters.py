"""Dead letters written into a lake's quarantine, as the sink writes them."""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow as pa

from datalake.lake import Lake
from datalake.layout import QUARANTINE_DEAD_LETTERS


FAILED_AT = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


def letter(reason: str, raw: bytes, offset: int = 0, failed_at: datetime = FAILED_AT) -> dict:
    """A dead letter as the sink stores it: the worker's letter, its letter_id (a hash of the
    letter) and dt, the day it failed."""
    fields = {"reason": reason, "message": f"{reason} at {offset}", "raw_base64": base64.b64encode(raw).decode(),
              "failed_at": failed_at, "kafka_topic": "tweets.raw", "kafka_partition": 0, "kafka_offset": offset}
    return fields | {"letter_id": hashlib.sha256(orjson.dumps(fields)).hexdigest(), "dt": f"{failed_at:%Y-%m-%d}"}


def write_letters(lake: Path, letters: list[dict]) -> int:
    """One commit of `letters` to quarantine/dead_letter, as the sink's dead-letter query makes
    it; the table's version after it."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from spark_sink.schema import dead_letter_table_schema

    target = Lake(str(lake), must_exist=False)
    schema = to_arrow_schema(dead_letter_table_schema(), timezone="UTC")
    target.append(QUARANTINE_DEAD_LETTERS, pa.Table.from_pylist(letters, schema))
    return target.table(QUARANTINE_DEAD_LETTERS).version()
