"""The bronze publisher: a replayed batch replaces itself, so plain readers never see doubles."""
from __future__ import annotations

import pyarrow.dataset as ds
import pytest

from datalake.layout import BRONZE, ZoneLayout
from spark_sink.publish import finalize_earlier_run, publish_batch, qualified_lake_root

pytestmark = pytest.mark.integration


def rows(count: int, start: int = 0) -> list[tuple[str, str, str]]:
    return [(f"id-{n}", "2024-05-0" + str(1 + n % 3), f"{n % 24:02d}") for n in range(start, start + count)]


def read_ids(path) -> list[str]:
    return ds.dataset(path, format="parquet", partitioning="hive").to_table().column("tweet_id").to_pylist()


def test_replayed_batch_replaces_the_earlier_attempt(spark, tmp_path):
    layout = ZoneLayout(qualified_lake_root(str(tmp_path)), BRONZE)
    frame = spark.createDataFrame(rows(200), "tweet_id string, dt string, hour string")

    publish_batch(frame.repartition(1), 0, layout, ("dt", "hour"))
    publish_batch(spark.createDataFrame(rows(50, start=200), "tweet_id string, dt string, hour string"), 1, layout, ("dt", "hour"))
    # Batch 1 replayed after a crash, split into more files this time.
    publish_batch(spark.createDataFrame(rows(50, start=200), "tweet_id string, dt string, hour string").repartition(3), 1, layout, ("dt", "hour"))

    ids = read_ids(tmp_path / "bronze")
    assert sorted(ids) == sorted(f"id-{n}" for n in range(250))
    assert not (tmp_path / "_staging" / "bronze" / "batch=1").exists()
    partitions = {p.name for p in (tmp_path / "bronze").iterdir()}
    assert partitions == {"dt=2024-05-01", "dt=2024-05-02", "dt=2024-05-03"}
    assert all(f.name.startswith("part-") for f in (tmp_path / "bronze").rglob("*.parquet"))
    # The replay's files have names of their own: a reader following the zone by name sees them as new.
    replayed = sorted(f.name for f in (tmp_path / "bronze").rglob("part-000000000001-*.parquet"))
    assert replayed and all(name.endswith("-r1.parquet") for name in replayed)


def test_old_manifests_are_pruned(spark, tmp_path):
    layout = ZoneLayout(qualified_lake_root(str(tmp_path)), BRONZE)
    for batch_id in range(6):
        frame = spark.createDataFrame(rows(5, start=batch_id * 5), "tweet_id string, dt string, hour string")
        publish_batch(frame, batch_id, layout, ("dt", "hour"), keep_manifests=2)
    manifests = sorted(p.name for p in (tmp_path / "_manifests" / "bronze").glob("*.json"))
    assert manifests == ["000000000004.json", "000000000005.json"]
    assert len(read_ids(tmp_path / "bronze")) == 30


def test_a_new_checkpoint_keeps_the_files_of_the_earlier_run(spark, tmp_path):
    layout = ZoneLayout(qualified_lake_root(str(tmp_path)), BRONZE)
    publish_batch(spark.createDataFrame(rows(40), "tweet_id string, dt string, hour string"), 0, layout, ("dt", "hour"))
    # A sink started from a new checkpoint numbers its batches from 0 again.
    assert finalize_earlier_run(spark, layout) > 0
    # The earlier run's manifests go, their folder stays: gold's stream follows silver's.
    manifests = tmp_path / "_manifests" / "bronze"
    assert manifests.is_dir() and not list(manifests.iterdir())
    publish_batch(spark.createDataFrame(rows(10, start=40), "tweet_id string, dt string, hour string"), 0, layout, ("dt", "hour"))

    assert sorted(read_ids(tmp_path / "bronze")) == sorted(f"id-{n}" for n in range(50))
    names = [f.name for f in (tmp_path / "bronze").rglob("*.parquet")]
    assert any(name.startswith("part-c") for name in names)
