"""The sink, its crash recovery, compaction and the backfill with the lake and checkpoints on a
real HDFS (the session's single-node HDFS): every reader sees each tweet once."""
from __future__ import annotations

import json
import random
import subprocess
import time

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from app.settings import Settings
from kafka_io import produce
from processes import BIN, REPO, settings_env, start_sink, wait_until
from datalake.files import Lake, LakeError
from datalake.fs import lake_fs_for
from datalake.layout import GOLD_TABLES, GOLD_TOPIC_HOURLY
from test_backfill import assert_adds_up, backfill
from test_pipeline import accepted_rows, clean_tweets

pytestmark = pytest.mark.integration


def on_hdfs(settings: Settings, hdfs, folder: str) -> Settings:
    """`settings` with the lake (and so the checkpoints) in `folder` of the session's HDFS."""
    layout = hdfs.layout
    return settings.model_copy(update={
        "lake_root": f"{hdfs.uri}{folder}/lake", "hdfs_host": layout.host, "hdfs_port": layout.port,
        "hdfs_http_port": layout.http_port,
    })


def hdfs_lake(settings: Settings) -> Lake | None:
    """The lake through WebHDFS; None while its root does not exist yet."""
    fs, root = lake_fs_for(settings.lake_root, settings.hdfs_namenode_url, settings.hdfs_user, settings.hdfs_http_port)
    return Lake(fs, root) if fs.exists(root) else None


def zone_table(settings: Settings, zone: str = "bronze", columns: tuple[str, ...] = ("tweet_id",)) -> pa.Table | None:
    """A zone read as a plain reader reads it: every parquet file listed, through WebHDFS."""
    lake = hdfs_lake(settings)
    if lake is None:
        return None
    tables = [lake.read(file, columns=list(columns)) for file in lake.files(zone)]
    return pa.concat_tables(tables) if tables else None


def zone_count(settings: Settings) -> int:
    """Rows now, while the sink writes: a file listed and then replaced by a batch replay (after a
    kill) is gone when read, so such a read lists again."""
    for _attempt in range(10):
        try:
            table = zone_table(settings)
        except (LakeError, OSError):
            time.sleep(0.5)
            continue
        return 0 if table is None else table.num_rows
    raise AssertionError("bronze could not be read ten times in a row")


def lake_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "python"), "-m", "datalake.cli", *args], env=settings_env(settings),
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(600)
def test_sink_on_hdfs_killed_mid_run_leaves_each_tweet_once_for_every_reader(broker_settings, hdfs, hdfs_dir, tmp_path,
                                                                             spark):
    rows = accepted_rows(clean_tweets(1000, seed=71))
    settings = on_hdfs(broker_settings, hdfs, hdfs_dir)
    produce(settings.bootstrap_servers, settings.topic_typed,
            ((tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in rows.items()))
    slow = {"sink_trigger_seconds": 0.5, "sink_max_offsets_per_trigger": 150}
    chance = random.Random(7)
    for attempt in range(2):
        sink = start_sink(settings, tmp_path, name=f"sink-{attempt}", **slow)
        try:
            floor = zone_count(settings) + 150
            wait_until(lambda: zone_count(settings) >= floor, 180, f"progress before kill {attempt}", (sink,))
            time.sleep(chance.uniform(0.0, 1.5))
        finally:
            sink.kill()
    assert zone_count(settings) < len(rows), "the kills must land in the middle of the run"
    with start_sink(settings, tmp_path, name="sink-final", **slow) as final:
        wait_until(lambda: zone_count(settings) >= len(rows), 240, "all rows after the kills", (final,))
        time.sleep(2)
        assert "spark.hadoop.dfs.replication=1" in " ".join(final.popen.args)

    bronze = zone_table(settings)
    assert bronze.num_rows == len(rows) and set(bronze.column("tweet_id").to_pylist()) == set(rows)
    assert duckdb.sql("select count(*), count(distinct tweet_id) from bronze").fetchall() == [(len(rows), len(rows))]
    spark_rows = spark.read.parquet(f"{settings.lake_root}/bronze")
    assert spark_rows.count() == len(rows) and spark_rows.select("tweet_id").distinct().count() == len(rows)
    # The checkpoints are on HDFS beside the lake, and the lake tools see the same rows.
    assert hdfs_lake(settings).fs.exists(f"{hdfs_dir}/lake/_checkpoints/bronze/commits")
    stats = lake_cli(settings, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout.strip().splitlines()[-1])["rows"] == len(rows)
    verify = lake_cli(settings, "verify")
    assert verify.returncode == 0 and verify.stdout.startswith("OK"), verify.stdout + verify.stderr

    files_before = hdfs_lake(settings).files("bronze")
    for dt in sorted({file.partition_key.split("/")[0].removeprefix("dt=") for file in files_before}):
        compact = lake_cli(settings, "compact", "--dt", dt)
        assert compact.returncode == 0, compact.stderr
    after = zone_table(settings)
    assert after.num_rows == len(rows) and pc.count_distinct(after.column("tweet_id")).as_py() == len(rows)
    # Partitions of several small files are merged (one of a single file, e.g. the tweets of the
    # minute past an hour, has nothing to merge).
    files_after = hdfs_lake(settings).files("bronze")
    assert len(files_after) < len(files_before)
    assert any(file.name.startswith("part-c") for file in files_after)


def test_backfill_onto_hdfs_prints_the_same_summary(hdfs, hdfs_dir, tmp_path):
    from test_backfill import v1_status

    archive = tmp_path / "statuses.jsonl"
    archive.write_bytes(b"\n".join(orjson.dumps(v1_status(n)) for n in range(30)) + b"\n")
    layout = hdfs.layout
    lake_root = f"{hdfs.uri}{hdfs_dir}/lake"
    result, report = backfill(str(archive), cwd=tmp_path, LAKE_ROOT=lake_root, HDFS_PORT=str(layout.port),
                              HDFS_HTTP_PORT=str(layout.http_port))
    assert result.returncode == 0, result.stderr[-4000:]
    assert_adds_up(report)
    assert report["accepted"] == report["bronze_rows"] > 0 and report["lake_root"] == lake_root
    settings = Settings(_env_file=None, lake_root=lake_root, hdfs_port=layout.port, hdfs_http_port=layout.http_port)
    assert zone_count(settings) == report["bronze_rows"]
    silver = zone_table(settings, "silver", ("edit_root_id",))  # refined on HDFS too, read back through WebHDFS
    assert report["silver_rows"] == silver.num_rows == len(set(silver.column("edit_root_id").to_pylist())) \
        == report["accepted"]
    gold = {table: zone_table(settings, table.path, ("tweets",)) for table in GOLD_TABLES}  # gold, on HDFS too
    assert gold[GOLD_TOPIC_HOURLY] is not None
    assert report["gold_rows"] == sum(rows.num_rows for rows in gold.values() if rows is not None)
    assert sum(gold[GOLD_TOPIC_HOURLY].column("tweets").to_pylist()) >= report["accepted"]
    listing = subprocess.run([str(REPO / "bin" / "hdfs"), "dfs", "-ls", "-R", f"{lake_root}/bronze"],
                             env=settings_env(settings), capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and ".parquet" in listing.stdout, listing.stderr
