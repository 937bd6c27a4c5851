"""The `lake` command on small lakes of Delta tables written with deltalake, a commit at a time as
the jobs write them, so a table has several files and versions."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from config.settings import Settings
from datalake import forgotten_log
from pipeline.lake_cli import main
from datalake.lake import Lake
from datalake.layout import BRONZE, GOLD_HASHTAGS_HOURLY, GOLD_TOPIC_HOURLY, SILVER, Zone
from tests.support.bronze_files import bronze_arrow_schema, tweet, write_bronze
from tests.support.lake_command import lake_cli
from tests.support.letters import letter, write_letters
from tests.support.processes import bronze_ids

START = datetime(2024, 5, 1, 3, 0, tzinfo=timezone.utc)


def post(number: int, created_at: datetime, **fields) -> dict:
    """A bronze row of tweet 1000+number, by user0, user1 or user2, about ai or big_data."""
    return tweet(created_at, f"tweet number {number} about data", tweet_id=str(1000 + number),
                 author_id=str(number % 3), author_username=f"user{number % 3}",
                 topics=["ai"] if number % 2 else ["big_data"]) | fields


def small_lake(lake: Path, commits: int = 4, per_commit: int = 10) -> None:
    """`commits` commits of `per_commit` tweets, a minute apart (mod 60), all in dt=2024-05-01/hour=03."""
    for commit in range(commits):
        write_bronze(lake, [post(n, START + timedelta(minutes=n % 60))
                            for n in range(commit * per_commit, (commit + 1) * per_commit)])


def append_as_given(lake: Path, zone: Zone, rows: list[dict], schema: pa.Schema) -> None:
    """One commit of `rows`, partition columns as the rows say (write_bronze derives them)."""
    Lake(str(lake), must_exist=False).append(zone, pa.Table.from_pylist(rows, schema))


def write_silver(lake: Path, rows: list[dict]) -> None:
    """One commit to silver: each bronze row as a post of its own (edit_root_id = tweet_id)."""
    from spark_sink.schema import silver_arrow_schema

    silver = [row | {"edit_root_id": row["tweet_id"], "dt": f"{row['created_at']:%Y-%m-%d}",
                     "hour": f"{row['created_at']:%H}"} for row in rows]
    append_as_given(lake, SILVER, silver, silver_arrow_schema())


def write_gold(lake: Path, table: Zone, groups: list[str]) -> None:
    """One hour of a gold table: a count of 1 per group."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from spark_sink.schema import gold_schema

    schema = to_arrow_schema(gold_schema(table), timezone="UTC")
    group = schema.names[0]
    append_as_given(lake, table, [{group: name, "tweets": 1, "dt": "2024-05-01", "hour": "03"} for name in groups],
                    schema)


def stats_json(capsys, lake: Path) -> dict:
    code, out, err = lake_cli(capsys, lake, "stats", "--json")
    assert code == 0, err
    return json.loads(out.splitlines()[-1])


def files_by_partition(lake: Path) -> Counter:
    """Data files of bronze's current version per (dt, hour), from its log."""
    return Counter((row["partition.dt"], row["partition.hour"]) for row in Lake(str(lake)).files(BRONZE).to_pylist())


def corrupt(path: Path) -> None:
    path.write_bytes(b"this is not parquet" * 10)


# --- ls, stats -----------------------------------------------------------------------------------


def test_ls_lists_the_tables_then_a_tables_partitions_and_files_with_rows(tmp_path, capsys):
    small_lake(tmp_path, commits=2)
    write_bronze(tmp_path, [post(99, START + timedelta(days=1))])
    write_letters(tmp_path, [letter("not_json", f"bad {n}".encode(), n) for n in range(3)])

    code, out, _ = lake_cli(capsys, tmp_path, "ls")
    assert code == 0
    zones = {line.split()[-1]: line.split() for line in out.splitlines()[1:]}
    assert list(zones) == ["bronze", "silver", "quarantine/dead_letter", "quarantine/typed_unreadable",
                           "gold/topic_hourly", "gold/hashtags_hourly", "gold/entities_hourly", "gold/domains_hourly"]
    # VERSION PARTITIONS FILES ... ROWS
    assert zones["bronze"][:3] == ["2", "2", "3"] and zones["bronze"][-2] == "21"
    assert zones["silver"][:3] == ["-", "0", "0"] and zones["silver"][-2] == "0"
    assert zones["quarantine/dead_letter"][:3] == ["0", "1", "1"] and zones["quarantine/dead_letter"][-2] == "3"

    code, out, _ = lake_cli(capsys, tmp_path, "ls", "bronze", "--dt", "2024-05-01")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("bronze (version 2): 1 partition, 2 files,") and lines[0].endswith("20 rows")
    assert lines[2].split()[-3:] == ["bronze/dt=2024-05-01/hour=03/", "(2", "files)"]
    shown = {line.split()[-1]: line.split()[-2] for line in lines[3:]}
    logged = {f"bronze/{row['path']}": str(row["num_records"]) for row in Lake(str(tmp_path)).files(BRONZE).to_pylist()
              if row["partition.dt"] == "2024-05-01"}
    assert shown == logged and set(shown.values()) == {"10"}
    assert "2024-05-02" not in out


def test_stats_json_is_the_last_line_with_the_agreed_keys(tmp_path, capsys):
    small_lake(tmp_path, commits=3)
    write_bronze(tmp_path, [post(99, START + timedelta(hours=2, minutes=5))])
    write_letters(tmp_path, [letter("not_json", f"bad {n}".encode(), n) for n in range(4)])
    write_letters(tmp_path, [letter("too_large", b"{}", 9)])
    write_silver(tmp_path, [post(n, START + timedelta(minutes=n)) for n in range(2)])
    write_gold(tmp_path, GOLD_TOPIC_HOURLY, ["ai", "big_data", "cloud"])
    write_gold(tmp_path, GOLD_HASHTAGS_HOURLY, ["#data", "#ai"])

    assert stats_json(capsys, tmp_path) == {
        "lake_root": str(tmp_path), "rows": 31, "files": 4, "partitions": 2,
        "bytes": sum(Lake(str(tmp_path)).files(BRONZE).column("size_bytes").to_pylist()),
        "min_created_at": "2024-05-01T03:00:00Z", "max_created_at": "2024-05-01T05:05:00Z",
        "quarantine_rows": 5, "quarantine_files": 2, "silver_rows": 2, "silver_files": 1,
        "gold_rows": 5, "gold_files": 2}


def test_stats_of_an_empty_lake_has_null_times(tmp_path, capsys):
    """No table yet, then a bronze table whose every row was deleted."""
    empty = {"rows": 0, "files": 0, "partitions": 0, "bytes": 0, "min_created_at": None, "max_created_at": None}
    assert stats_json(capsys, tmp_path).items() >= empty.items()
    small_lake(tmp_path, commits=1)
    Lake(str(tmp_path)).table(BRONZE).delete()
    assert stats_json(capsys, tmp_path).items() >= empty.items()


# --- show ----------------------------------------------------------------------------------------


def shown_texts(capsys, lake: Path, *argv: str) -> list[str]:
    """The text column of what `lake show` prints, newest first."""
    code, out, err = lake_cli(capsys, lake, "show", "--limit", "100", *argv)
    assert code == 0, err
    return [line.split("  ")[-1].strip() for line in out.splitlines()[1:]]


def test_show_prints_the_newest_tweets_first_and_filters(tmp_path, capsys):
    small_lake(tmp_path, commits=2)
    write_bronze(tmp_path, [post(50, START + timedelta(hours=1), lang="de", author_username="foo",
                                 text="neuer Text " * 20, topics=["ml", "ai"])])

    code, out, _ = lake_cli(capsys, tmp_path, "show", "--limit", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["CREATED_AT", "(UTC)", "AUTHOR", "LANG"]
    assert len(lines) == 4
    assert lines[1].split()[:5] == ["2024-05-01", "04:00:00", "foo", "de", "ml,ai"] and lines[1].endswith("…")
    assert lines[2].split()[:2] == ["2024-05-01", "03:19:00"] and lines[3].split()[1] == "03:18:00"

    for where, authors in (("lang=en", {"user0", "user1"}), ("author_username = foo", {"foo"}),
                           ("topics contains ml", {"foo"}), ("hour=3", {"user0", "user1"})):
        code, out, _ = lake_cli(capsys, tmp_path, "show", "--limit", "2", "--where", where)
        assert code == 0
        assert {line.split()[2] for line in out.splitlines()[1:]} == authors, where

    for where in ("lang=xx", "dt=2023-01-01"):
        code, out, _ = lake_cli(capsys, tmp_path, "show", "--where", where)
        assert (code, out.strip()) == (0, "no tweets match")


@pytest.mark.parametrize("where, message", [
    ("lang>en", "expected COLUMN=VALUE or LIST contains VALUE"),
    ("nope=1", "'nope' is not one of the text columns"),
    ("lang contains en", "'lang' is not one of the list-of-text columns:"),
    ("lang=", "the value is empty"),
])
def test_show_rejects_other_filters_clearly(tmp_path, capsys, where, message):
    small_lake(tmp_path, commits=1)
    code, _, err = lake_cli(capsys, tmp_path, "show", "--where", where)
    assert code == 2
    assert message in err


def test_show_reads_silver_when_asked(tmp_path, capsys):
    write_silver(tmp_path, [post(n, START + timedelta(minutes=n)) for n in range(5)])
    assert shown_texts(capsys, tmp_path, "--zone", "silver", "--limit", "2") == [
        "tweet number 4 about data", "tweet number 3 about data"]


def test_show_as_of_a_version_shows_the_rows_of_that_version(tmp_path, capsys):
    small_lake(tmp_path, commits=2)  # versions 0 and 1
    Lake(str(tmp_path)).table(BRONZE).delete("tweet_id = '1019'")  # version 2

    assert "tweet number 19 about data" not in shown_texts(capsys, tmp_path)
    assert len(shown_texts(capsys, tmp_path)) == 19
    assert "tweet number 19 about data" in shown_texts(capsys, tmp_path, "--as-of", "1")
    assert len(shown_texts(capsys, tmp_path, "--as-of", "1")) == 20
    assert len(shown_texts(capsys, tmp_path, "--as-of", "0")) == 10

    code, out, err = lake_cli(capsys, tmp_path, "show", "--as-of", "9")
    assert (code, out) == (2, "") and "bronze has no version 9" in err


def test_show_as_of_a_time_shows_the_table_as_it_was_then(tmp_path, capsys):
    small_lake(tmp_path, commits=1)
    time.sleep(0.05)
    between = datetime.now(timezone.utc)
    time.sleep(0.05)
    write_bronze(tmp_path, [post(50, START + timedelta(hours=1))])

    assert len(shown_texts(capsys, tmp_path)) == 11
    assert shown_texts(capsys, tmp_path, "--as-of", between.isoformat().replace("+00:00", "Z")) == [
        f"tweet number {n} about data" for n in range(9, -1, -1)]


# --- history -------------------------------------------------------------------------------------


def test_history_lists_versions_operations_and_rows_added_and_removed(tmp_path, capsys):
    small_lake(tmp_path, commits=2)
    table = Lake(str(tmp_path)).table(BRONZE)
    table.delete("tweet_id IN ('1001', '1002')")
    table.optimize.compact()

    code, out, _ = lake_cli(capsys, tmp_path, "history", "bronze", "--json")
    assert code == 0
    versions = [json.loads(line) for line in out.splitlines()]
    assert [(v["version"], v["operation"], v["rows_added"], v["rows_removed"]) for v in versions] == [
        (3, "OPTIMIZE", None, None), (2, "DELETE", None, 2), (1, "WRITE", 10, None), (0, "WRITE", 10, None)]
    assert all(v["writer"].startswith("delta-rs") for v in versions)

    code, out, _ = lake_cli(capsys, tmp_path, "history", "bronze", "--limit", "2")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["VERSION", "3", "2"]
    assert out.splitlines()[2].split()[3:5] == ["DELETE", "2"]


# --- verify --------------------------------------------------------------------------------------


def test_verify_passes_a_clean_lake(tmp_path, capsys):
    small_lake(tmp_path)
    write_letters(tmp_path, [letter("not_json", b"bad", 0)])
    write_silver(tmp_path, [post(n, START + timedelta(minutes=n)) for n in range(5)])
    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 0, out
    assert "bronze has 40 rows" in out and "silver has 5 rows" in out


def test_verify_names_a_repeated_id_a_row_in_the_wrong_partition_and_a_forgotten_tweet(tmp_path, capsys):
    small_lake(tmp_path, commits=2)
    write_bronze(tmp_path, [post(3, START + timedelta(minutes=3))])  # tweet 1003 again
    append_as_given(tmp_path, BRONZE, [post(77, START + timedelta(hours=1, minutes=1)) | {"dt": "2024-05-01",
                                                                                          "hour": "03"}],
                    bronze_arrow_schema())
    forgotten_log.append(Lake(str(tmp_path)), [{"id": "1005", "kind": "tweet", "reason": "deleted", "source": "test"}])

    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 1
    assert "bronze: tweet_id 1003 appears 2 times" in out
    assert "(e.g. tweet 1077 created 2024-05-01T04:01:00Z in dt=2024-05-01/hour=03)" in out
    assert "bronze holds 1 row of forgotten tweets" in out
    assert out.splitlines()[-1].startswith("verify FAILED: 3 problem(s)")


def test_verify_checks_each_post_once_across_silver(tmp_path, capsys):
    write_silver(tmp_path, [post(n, START + timedelta(minutes=n)) for n in range(5)])
    write_silver(tmp_path, [post(2, START + timedelta(hours=1))])  # the same post in another hour
    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 1
    assert "silver: edit_root_id 1002 appears 2 times" in out


def test_a_corrupt_data_file_fails_verify_and_compact_names_it(tmp_path, capsys):
    small_lake(tmp_path)
    name = Lake(str(tmp_path)).files(BRONZE).column("path")[1].as_py()
    corrupt(tmp_path / "bronze" / name)

    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 1
    assert "bronze: unreadable" in out and name in out

    code, _, err = lake_cli(capsys, tmp_path, "compact")
    assert code == 1 and Path(name).name in err
    assert Lake(str(tmp_path)).table(BRONZE).version() == 3  # no OPTIMIZE committed


# --- bad input -----------------------------------------------------------------------------------


def test_a_lake_root_that_does_not_exist_is_a_clear_error(tmp_path, capsys):
    for command in (["ls"], ["stats"], ["show"], ["history", "bronze"], ["verify"], ["compact"], ["forget"]):
        code, out, err = lake_cli(capsys, tmp_path / "missing", *command)
        assert (code, out) == (2, ""), command
        assert err.strip() == f"lake: error: lake root {tmp_path / 'missing'} does not exist"


@pytest.mark.parametrize("command", [["ls", "platinum"], ["history", "platinum"], ["compact", "--zone", "platinum"]])
def test_an_unknown_zone_is_a_clear_error(tmp_path, capsys, command):
    code, _, err = lake_cli(capsys, tmp_path, *command)
    assert code == 2
    assert ("unknown zone 'platinum': the zones are bronze, silver, quarantine/dead_letter, "
            "quarantine/typed_unreadable, gold/topic_hourly") in err


@pytest.mark.parametrize("argv, message", [
    (["compact", "--dt", "2024-13-01"], "expected a date as YYYY-MM-DD, got '2024-13-01'"),
    (["compact", "--dt", "2024-05-01", "--hour", "24"], "expected an hour 0-23, got '24'"),
    (["compact", "--target-mb", "0"], "expected a positive number, got '0'"),
    (["show", "--limit", "-1"], "expected a positive number, got '-1'"),
    (["show", "--as-of", "yesterday"], "expected a version number or an ISO time, got 'yesterday'"),
    (["show", "--zone", "gold/topic_hourly"], "invalid choice: 'gold/topic_hourly'"),
    (["history"], "the following arguments are required: zone"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_options_exit_2_with_the_reason(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        lake_cli(capsys, tmp_path, *argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["ls", "stats", "show", "history", "verify", "compact", "forget", "replay",
                                     "convert"])
def test_every_subcommand_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"], settings=Settings(_env_file=None))
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: lake {command}")


def test_the_module_runs_as_a_command_with_exit_codes(tmp_path):
    small_lake(tmp_path, commits=1)

    def lake(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline.lake_cli", *argv], capture_output=True, text=True, timeout=60)

    run = lake("--lake-root", str(tmp_path), "stats", "--json")
    assert run.returncode == 0 and json.loads(run.stdout.splitlines()[-1])["rows"] == 10
    write_bronze(tmp_path, [post(3, START)])  # tweet 1003 twice
    run = lake("--lake-root", str(tmp_path), "verify")
    assert run.returncode == 1 and "tweet_id 1003 appears 2 times" in run.stdout
    run = lake("--lake-root", str(tmp_path / "nope"), "stats")
    assert run.returncode == 2 and "does not exist" in run.stderr


# --- compact -------------------------------------------------------------------------------------


def test_compact_merges_a_partitions_small_files_into_one(tmp_path, capsys):
    small_lake(tmp_path, commits=6)
    for n in (0, 1):
        write_bronze(tmp_path, [post(100 + n, START + timedelta(hours=1))])
    ids = bronze_ids(tmp_path)
    assert files_by_partition(tmp_path) == {("2024-05-01", "03"): 6, ("2024-05-01", "04"): 2}

    code, out, err = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01", "--hour", "3")
    assert code == 0, err
    assert files_by_partition(tmp_path) == {("2024-05-01", "03"): 1, ("2024-05-01", "04"): 2}
    assert "the table has 3 files (was 8)" in out
    assert bronze_ids(tmp_path) == ids
    assert Lake(str(tmp_path)).table(BRONZE).history(1)[0]["operation"] == "OPTIMIZE"


def test_compact_makes_files_of_about_the_target_size(tmp_path, capsys):
    small_lake(tmp_path, commits=8, per_commit=400)
    size = max(Lake(str(tmp_path)).files(BRONZE).column("size_bytes").to_pylist())
    target_mb = 3.5 * size / 2**20  # three inputs fit, four do not

    code, out, err = lake_cli(capsys, tmp_path, "compact", "--target-mb", str(target_mb))
    assert code == 0, err
    assert files_by_partition(tmp_path) == {("2024-05-01", "03"): 3}
    assert Lake(str(tmp_path)).rows(BRONZE) == len(bronze_ids(tmp_path)) == 3200


@pytest.mark.parametrize("argv, message", [
    (["--dt", "2024-05-01", "--hour", "04"], "bronze has no partition dt=2024-05-01/hour=04"),
    (["--dt", "2024-05-02"], "bronze has no partition dt=2024-05-02"),
    (["--zone", "silver"], "silver has no table yet: nothing to compact"),
    (["--zone", "quarantine/dead_letter", "--dt", "2024-05-01", "--hour", "08"],
     "quarantine/dead_letter is not partitioned by hour: leave out --hour"),
])
def test_compact_of_a_missing_partition_is_a_clear_error(tmp_path, capsys, argv, message):
    small_lake(tmp_path, commits=2)
    write_letters(tmp_path, [letter("not_json", b"bad", 0)])
    code, _, err = lake_cli(capsys, tmp_path, "compact", *argv)
    assert code == 2 and message in err
    assert files_by_partition(tmp_path) == {("2024-05-01", "03"): 2}
