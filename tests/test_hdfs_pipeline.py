"""The lake on a real HDFS (the session's single-node HDFS): the sink killed mid-run, and a backfill,
with the lake's Delta tables and the checkpoints on hdfs://; every reader sees each tweet once.
The `lake` command works on that lake through deltalake's native HDFS client (no JVM): it reads,
time-travels and compacts the tables Spark wrote, and Spark reads what it compacted."""
from __future__ import annotations

import json
import random
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlparse

import duckdb
import orjson
import pyarrow as pa
import pytest
from deltalake.exceptions import DeltaError

from engines.broker import create_topics
from config.settings import Settings
from tests.support.backfill import assert_adds_up, backfill
from tests.support.kafka_io import produce
from tests.support.lake_command import lake_cli
from tests.support.processes import REPO, settings_env, start_sink, wait_for
from tests.support.settings import isolated_settings
from tests.support.tweets import accepted_rows, clean_tweets
from datalake.commits import commit_metadata
from datalake.display import iso_utc
from datalake.errors import LakeError
from datalake.lake import Lake
from datalake.layout import BRONZE, GOLD_TABLES, GOLD_TOPIC_HOURLY, SILVER, ZONES, Zone
from pipeline.processes import free_port

pytestmark = pytest.mark.integration


def on_hdfs(settings: Settings, hdfs, folder: str) -> Settings:
    """`settings` with the lake (and so the checkpoints) in `folder` of the session's HDFS; its
    NameNode as HDFS_HOST/HDFS_PORT, for bin/hdfs and for the replication Spark writes with."""
    layout = hdfs.layout
    return settings.model_copy(update={
        "lake_root": f"{hdfs.uri}{folder}/lake", "hdfs_host": layout.host, "hdfs_port": layout.port,
    })


def zone_table(settings: Settings, zone: Zone = BRONZE, columns: tuple[str, ...] = ("tweet_id",)) -> pa.Table | None:
    """A zone's current version through its Delta log on hdfs:// (deltalake's HDFS client); None
    while it has no table."""
    return Lake.of(settings).read(zone, list(columns))


def zone_count(settings: Settings, zone: Zone = BRONZE) -> int:
    """Rows of the zone's current version from its log, while the sink writes (a read that meets
    the NameNode busy is tried again)."""
    for _attempt in range(10):
        try:
            return Lake.of(settings).rows(zone)
        except (LakeError, DeltaError, OSError):
            time.sleep(0.5)
    raise AssertionError(f"{zone} could not be read ten times in a row")


def hdfs_ls(settings: Settings) -> tuple[str, dict[str, int]]:
    """`bin/hdfs dfs -ls -R /…/lake` (Hadoop's FsShell through the project's wrapper, on the HDFS of
    HDFS_HOST/HDFS_PORT), as the README shows it: the lake's path on HDFS and {path: replication}
    of the files (not folders) listed under it."""
    path = urlparse(settings.lake_root).path
    listing = subprocess.run([str(REPO / "bin" / "hdfs"), "dfs", "-ls", "-R", path], env=settings_env(settings),
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    return path, listed_files(listing.stdout)


def listed_files(listing: str) -> dict[str, int]:
    """{path: replication} of the files (not folders) an `-ls -R` lists."""
    found = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0].startswith("-"):
            found[fields[-1]] = int(fields[1])
    return found


# --- the sink on HDFS ----------------------------------------------------------------------------


@dataclass
class SinkRun:
    settings: Settings
    rows: dict[str, dict]
    final_args: list[str]


@pytest.fixture(scope="module")
def sink_on_hdfs(session_kafka, hdfs, tmp_path_factory) -> SinkRun:
    """1000 typed tweets into bronze on HDFS by a sink SIGKILLed twice in the middle of the run,
    then run to the end; the lake the tests of this module read."""
    host, port = session_kafka.split(":")
    kafka = isolated_settings(broker_host=host, broker_port=int(port))
    create_topics(kafka)
    settings = on_hdfs(kafka, hdfs, f"/tests/{uuid.uuid4().hex[:12]}")
    workdir = tmp_path_factory.mktemp("hdfs-sink")
    rows = accepted_rows(clean_tweets(1000, seed=71))
    produce(settings.bootstrap_servers, settings.topic_typed,
            ((tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in rows.items()))
    slow = {"sink_trigger_seconds": 0.5, "sink_max_offsets_per_trigger": 150}
    chance = random.Random(7)
    for attempt in range(2):
        sink = start_sink(settings, workdir, name=f"sink-{attempt}", **slow)
        try:
            floor = zone_count(settings) + 150
            wait_for(lambda: zone_count(settings) >= floor, 180, f"progress before kill {attempt}", (sink,))
            time.sleep(chance.uniform(0.0, 1.5))
        finally:
            sink.kill()
    assert zone_count(settings) < len(rows), "the kills must land in the middle of the run"
    with start_sink(settings, workdir, name="sink-final", **slow) as final:
        wait_for(lambda: zone_count(settings) >= len(rows), 240, "all rows after the kills", (final,))
        time.sleep(2)
        final_args = list(final.popen.args)
    return SinkRun(settings, rows, final_args)


@pytest.mark.timeout(600)
def test_sink_on_hdfs_killed_mid_run_leaves_each_tweet_once_for_every_reader(sink_on_hdfs, spark):
    settings, rows = sink_on_hdfs.settings, sink_on_hdfs.rows
    bronze_uri = f"{settings.lake_root}/bronze"
    # deltalake, on hdfs:// natively
    bronze = zone_table(settings)
    assert bronze.num_rows == len(rows) and set(bronze.column("tweet_id").to_pylist()) == set(rows)
    # DuckDB over deltalake's dataset of the table
    duck = duckdb.connect()
    duck.register("bronze", Lake.of(settings).dataset(BRONZE))
    assert duck.sql("select count(*), count(distinct tweet_id) from bronze").fetchall() == [(len(rows), len(rows))]
    # Spark, through Delta and Hadoop's HDFS client
    spark_rows = spark.read.format("delta").load(bronze_uri)
    assert spark_rows.count() == len(rows) and spark_rows.select("tweet_id").distinct().count() == len(rows)
    # A batch killed after its commit is replayed from the checkpoint: Delta skips its MERGE.
    merges = [commit_metadata(c)["batch"] for c in Lake.of(settings).table(BRONZE).history()
              if c["operation"] == "MERGE"]
    assert len(merges) == len(set(merges)) > 3
    # The checkpoints are on HDFS beside the lake (what the restarted sinks resumed from), and
    # Spark wrote the tables' files with the replication this one-DataNode HDFS can hold.
    assert "spark.hadoop.dfs.replication=1" in " ".join(sink_on_hdfs.final_args)
    lake, files = hdfs_ls(settings)
    assert any(path.startswith(f"{lake}/_checkpoints/bronze/commits/") for path in files), sorted(files)[:20]
    data = {path: replicas for path, replicas in files.items()
            if path.startswith(f"{lake}/bronze/") and path.endswith(".parquet")}
    assert data and set(data.values()) == {1}


@pytest.mark.timeout(600)  # the sink run of the module's fixture, when this test runs alone
def test_the_lake_command_reads_time_travels_and_compacts_the_sinks_lake_on_hdfs(sink_on_hdfs, spark, capsys):
    """ls, stats, show (now and --as-of a version), history, verify and compact on the hdfs:// lake
    the sink wrote, held to the tweets the sink was given and to each other."""
    settings, rows = sink_on_hdfs.settings, sink_on_hdfs.rows
    root = settings.lake_root
    created = sorted(row["created_at"] for row in rows.values())  # ISO times of the tweets given

    code, out, err = lake_cli(capsys, root, "history", "bronze", "--json", "--limit", "1000")
    assert code == 0, err
    versions = [json.loads(line) for line in out.splitlines()]
    version = versions[0]["version"]
    assert [v["version"] for v in versions] == list(range(version, -1, -1))
    assert {v["operation"] for v in versions} <= {"CREATE TABLE", "MERGE"}
    # The MERGEs' own metrics (Spark's numTargetRowsInserted) add up to the tweets: each inserted once.
    assert sum(v["rows_added"] or 0 for v in versions if v["operation"] == "MERGE") == len(rows)

    code, out, err = lake_cli(capsys, root, "ls")
    assert code == 0, err
    tables = {line.split()[-1]: line.split() for line in out.splitlines()[1:]}
    assert list(tables) == [zone.path for zone in ZONES]
    # VERSION PARTITIONS FILES SIZE(2 words) ROWS ZONE
    assert tables["bronze"][0] == str(version) and tables["bronze"][-2] == str(len(rows))
    assert all(tables[zone.path][-2] == "0" for zone in ZONES if zone != BRONZE)  # the sink's quarantine: empty
    assert all(tables[zone.path][0] == "-" for zone in (SILVER, *GOLD_TABLES))  # no silver or gold job ran

    code, out, err = lake_cli(capsys, root, "stats", "--json")
    assert code == 0, err
    stats = json.loads(out.splitlines()[-1])
    assert (stats["lake_root"], stats["rows"], stats["quarantine_rows"]) == (root, len(rows), 0)
    assert (stats["min_created_at"], stats["max_created_at"]) == (iso_of(created[0]), iso_of(created[-1]))
    files_before, partitions = stats["files"], stats["partitions"]
    assert files_before > partitions, "the sink's micro-batches leave several files in a partition"

    code, out, err = lake_cli(capsys, root, "ls", "bronze")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"bronze (version {version}): ")
    listed = [line.split() for line in lines[2:] if not line.split()[-1].endswith("files)")
              and not line.split()[-1].endswith("file)")]
    assert len(listed) == files_before and sum(int(fields[-2]) for fields in listed) == len(rows)

    code, out, err = lake_cli(capsys, root, "show", "--limit", "3")
    assert code == 0, err
    assert shown_times(out) == [shown_time(moment) for moment in created[::-1][:3]]

    # Time travel: the first version that holds tweets, as it held them.
    first = next(v for v in reversed(versions) if (v["rows_added"] or 0) > 0)
    held = sum(v["rows_added"] or 0 for v in versions if v["version"] <= first["version"])
    assert 0 < held < len(rows)
    code, out, err = lake_cli(capsys, root, "show", "--as-of", str(first["version"]), "--limit", "100000")
    assert code == 0, err
    assert len(shown_times(out)) == held

    code, out, err = lake_cli(capsys, root, "verify")
    assert code == 0, out + err

    code, out, err = lake_cli(capsys, root, "compact")
    assert code == 0, err
    after = json.loads(lake_cli(capsys, root, "stats", "--json")[1].splitlines()[-1])
    # Every partition's small files merged into one (they are far below the target size).
    assert (after["rows"], after["partitions"], after["files"]) == (len(rows), partitions, partitions)
    code, out, err = lake_cli(capsys, root, "history", "bronze", "--json", "--limit", "1")
    newest = json.loads(out.splitlines()[0])
    assert (newest["version"], newest["operation"]) == (version + 1, "OPTIMIZE")
    code, out, err = lake_cli(capsys, root, "verify")
    assert code == 0, out + err
    # What deltalake compacted on HDFS, Spark reads: the same tweets, once each.
    compacted = spark.read.format("delta").load(f"{root}/bronze")
    assert compacted.count() == len(rows) and compacted.select("tweet_id").distinct().count() == len(rows)
    # The version before the compaction is still there to travel to.
    code, out, err = lake_cli(capsys, root, "show", "--as-of", str(version), "--limit", "100000")
    assert code == 0 and len(shown_times(out)) == len(rows), err


def iso_of(created_at: str) -> str:
    """A tweet's created_at (ISO, as the typed topic carries it) as the `lake` command prints times."""
    return iso_utc(datetime.fromisoformat(created_at.replace("Z", "+00:00")).astimezone(timezone.utc))


def shown_time(created_at: str) -> str:
    """created_at as `lake show` prints it: "YYYY-MM-DD HH:MM:SS" (UTC)."""
    return iso_of(created_at)[:19].replace("T", " ")


def shown_times(out: str) -> list[str]:
    """The CREATED_AT column of `lake show`'s output."""
    return [" ".join(line.split()[:2]) for line in out.splitlines()[1:] if line.strip()]


def test_a_namenode_that_does_not_answer_is_a_clear_error(hdfs, capsys):
    """The right HDFS path behind a port no NameNode listens on: every command fails with exit 1
    or 2 and a message naming the root and the refused connection, not a traceback."""
    wrong = f"hdfs://{hdfs.layout.host}:{free_port()}/tests/nowhere/lake"
    for argv in (["ls"], ["ls", "bronze"], ["stats", "--json"], ["show"], ["history", "bronze"], ["verify"],
                 ["compact"]):
        code, out, err = lake_cli(capsys, wrong, *argv)
        assert code in (1, 2), (argv, code, out, err)
        assert wrong.split("/tests")[0] in err and re.search("connection refused", err, re.I), (argv, err)
    lake = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "pipeline.lake_cli", "--lake-root", wrong, "stats"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert lake.returncode in (1, 2) and "Traceback" not in lake.stderr and wrong in lake.stderr, lake.stderr


# --- the backfill onto HDFS ----------------------------------------------------------------------


def test_backfill_onto_hdfs_prints_the_same_summary(hdfs, hdfs_dir, tmp_path):
    from tests.support.tweets import v1_status

    archive = tmp_path / "statuses.jsonl"
    archive.write_bytes(b"\n".join(orjson.dumps(v1_status(n)) for n in range(30)) + b"\n")
    lake_root = f"{hdfs.uri}{hdfs_dir}/lake"
    result, report = backfill(str(archive), cwd=tmp_path, LAKE_ROOT=lake_root, HDFS_PORT=str(hdfs.layout.port))
    assert result.returncode == 0, result.stderr[-4000:]
    assert_adds_up(report)
    assert report["accepted"] == report["bronze_rows"] > 0 and report["lake_root"] == lake_root
    settings = Settings(_env_file=None, lake_root=lake_root, hdfs_port=hdfs.layout.port)
    bronze = zone_table(settings)
    assert bronze.num_rows == report["bronze_rows"] == len(set(bronze.column("tweet_id").to_pylist()))
    silver = zone_table(settings, SILVER, ("edit_root_id",))  # refined on HDFS too, read back through its log
    assert report["silver_rows"] == silver.num_rows == len(set(silver.column("edit_root_id").to_pylist())) \
        == report["accepted"]
    gold = {table: zone_table(settings, table, ("tweets",)) for table in GOLD_TABLES}  # gold, on HDFS too
    assert gold[GOLD_TOPIC_HOURLY] is not None
    assert report["gold_rows"] == sum(rows.num_rows for rows in gold.values() if rows is not None)
    assert sum(gold[GOLD_TOPIC_HOURLY].column("tweets").to_pylist()) >= report["accepted"]
    # `bin/hdfs dfs -ls -R` shows each table's parquet data files (every file of its current
    # version) beside its Delta log.
    folder, files = hdfs_ls(settings)
    lake = Lake.of(settings)
    for table in (BRONZE, SILVER, GOLD_TOPIC_HOURLY):
        current = {f"{folder}/{table.path}/{path}" for path in lake.files(table).column("path").to_pylist()}
        assert current and all(path.endswith(".parquet") for path in current), table
        assert current <= set(files), f"{table}: {sorted(current - set(files))[:3]} not listed"
        assert any(path.startswith(f"{folder}/{table.path}/_delta_log/") for path in files), table
