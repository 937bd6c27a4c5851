"""`lake convert` on a lake of the old format (plain parquet folders, batch manifests): Delta's
CONVERT TO DELTA for bronze, quarantine and the forgotten log in place, silver and gold rebuilt by
their jobs, the old format's folders gone; and a second run changes nothing."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from config.settings import Settings
from datalake.forgotten_log import LOG_SCHEMA
from datalake.lake import Lake
from datalake.layout import BRONZE, FORGOTTEN, GOLD_TOPIC_HOURLY, QUARANTINE_DEAD_LETTERS, SILVER
from tests.support.bronze_files import bronze_arrow_schema, tweet

pytestmark = pytest.mark.integration

START = datetime(2024, 5, 1, 7, 10, tzinfo=timezone.utc)


def old_lake(root: Path) -> set[str]:
    """What the previous version left: bronze files per hour (one tweet in two files, as the old
    partial dedup let through), a dead letter without letter_id, the forgotten log, an old silver
    folder and batch manifests. The tweet ids bronze holds."""
    schema = pa.schema([field for field in bronze_arrow_schema() if field.name not in ("dt", "hour")])
    rows = [tweet(START + timedelta(minutes=7 * n), f"Machine learning on Spark, part {n}", sequence=n,
                  hashtags=["MachineLearning"], topics=["machine_learning"]) for n in range(20)]
    for index, group in enumerate((rows[:12], rows[12:] + rows[3:4])):
        for hour in sorted({row["created_at"].strftime("%H") for row in group}):
            folder = root / "bronze" / "dt=2024-05-01" / f"hour={hour}"
            folder.mkdir(parents=True, exist_ok=True)
            part = [row for row in group if row["created_at"].strftime("%H") == hour]
            pq.write_table(pa.Table.from_pylist(part, schema), folder / f"part-{index:012d}-00000.parquet")
    letters = root / "quarantine" / "dead_letter" / "dt=2024-05-01"
    letters.mkdir(parents=True)
    pq.write_table(pa.table({"reason": ["not_json"], "message": ["not JSON"],
                             "raw_base64": [base64.b64encode(b"<html>").decode()],
                             "failed_at": pa.array([START], pa.timestamp("us", tz="UTC")),
                             "kafka_topic": ["tweets.raw"], "kafka_partition": [0], "kafka_offset": [5]}),
                   letters / "part-000000000000-00000.parquet")
    (root / "_forgotten").mkdir()
    pq.write_table(pa.Table.from_pylist([{"id": "1", "kind": "user", "reason": "deleted", "source": "batch_compliance",
                                          "requested_at": START, "forgotten_at": START}], LOG_SCHEMA),
                   root / "_forgotten" / "part-c20240501T000000000000Z-00000.parquet")
    (root / "silver" / "dt=2024-05-01" / "hour=07").mkdir(parents=True)
    pq.write_table(pa.table({"edit_root_id": ["stale"]}), root / "silver" / "dt=2024-05-01" / "hour=07" / "part-x.parquet")
    (root / "_manifests" / "bronze").mkdir(parents=True)
    (root / "_manifests" / "bronze" / "000000000001.json").write_text(json.dumps({"batch_id": 1, "files": []}))
    return {row["tweet_id"] for row in rows}


def convert(root: Path) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    result = subprocess.run([sys.executable, "-m", "pipeline.lake_cli", "--lake-root", str(root), "convert"], cwd=root.parent,
                            env=env | {"SPARK_METRICS_PORT": "0"}, capture_output=True, text=True, timeout=600)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    return result, json.loads(lines[-1])


@pytest.mark.timeout(900)
def test_an_old_lake_becomes_delta_tables_in_place_once(tmp_path):
    root = tmp_path / "lake"
    ids = old_lake(root)
    _, report = convert(root)
    assert sorted(report["converted"]) == sorted([BRONZE.path, QUARANTINE_DEAD_LETTERS.path, FORGOTTEN.path])
    assert report["bronze_duplicates_removed"] == 1
    assert SILVER.path in report["rebuilt"] and "_manifests" in report["removed"]
    lake = Lake(str(root))
    bronze = Counter(lake.read(BRONZE, ["tweet_id"]).column("tweet_id").to_pylist())
    assert set(bronze) == ids and set(bronze.values()) == {1}
    (letter,) = lake.read(QUARANTINE_DEAD_LETTERS).to_pylist()
    assert letter["reason"] == "not_json" and len(letter["letter_id"]) == 64
    assert lake.read(FORGOTTEN, ["id"]).column("id").to_pylist() == ["1"]
    silver = lake.read(SILVER, ["edit_root_id"]).column("edit_root_id").to_pylist()
    assert sorted(silver) == sorted(ids)  # rebuilt from bronze; the stale folder's row is gone
    assert lake.rows(GOLD_TOPIC_HOURLY) > 0
    assert not (root / "_manifests").exists()
    versions = {zone: lake.table(zone).version() for zone in (BRONZE, SILVER, GOLD_TOPIC_HOURLY)}

    _, again = convert(root)
    assert again["converted"] == [] and again["rebuilt"] == [] and again["bronze_duplicates_removed"] == 0
    assert sorted(again["already_delta"]) == sorted(report["converted"])
    assert {zone: lake.table(zone).version() for zone in versions} == versions
