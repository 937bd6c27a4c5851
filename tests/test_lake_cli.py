"""The `lake` command on small lakes laid out the way the sink's publisher lays them out."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from app.settings import Settings
from datalake.cli import main
from datalake.layout import batch_of, published_name

START = datetime(2024, 5, 1, 3, 0, tzinfo=timezone.utc)
SCHEMA = pa.schema([
    ("tweet_id", pa.string()),
    ("text", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("author_username", pa.string()),
    ("lang", pa.string()),
    ("topics", pa.list_(pa.string())),
])


def tweet(number: int, created_at: datetime, **fields) -> dict:
    return {"tweet_id": f"{1000 + number}", "text": f"tweet number {number} about data", "created_at": created_at,
            "author_username": f"user{number % 3}", "lang": "en", "topics": ["ai"] if number % 2 else ["big_data"]} | fields


def publish(lake: Path, batch_id: int, rows: list[dict], zone: str = "bronze") -> list[Path]:
    """What publish_batch leaves: one file per (dt, hour) of the batch, partition columns in the path only."""
    by_hour: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        moment = row["created_at"].astimezone(timezone.utc)
        by_hour.setdefault((moment.strftime("%Y-%m-%d"), moment.strftime("%H")), []).append(row)
    written = []
    for index, ((dt, hour), group) in enumerate(sorted(by_hour.items())):
        folder = lake / zone / f"dt={dt}" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / published_name(batch_id, index)
        pq.write_table(pa.Table.from_pylist(group, SCHEMA), path)
        written.append(path)
    return written


def commit(lake: Path, *batch_ids: int, query: str = "bronze") -> None:
    commits = lake / "_checkpoints" / query / "commits"
    commits.mkdir(parents=True, exist_ok=True)
    for batch_id in batch_ids:
        (commits / str(batch_id)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def dead_letters(lake: Path, count: int, batch_id: int = 0) -> None:
    folder = lake / "quarantine" / "dead_letter" / "dt=2024-05-01"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"reason": ["not_json"] * count, "message": [f"bad {batch_id}"] * count})
    pq.write_table(table, folder / published_name(batch_id, 0))


def small_lake(lake: Path, batches: int = 4, per_batch: int = 10) -> None:
    """`batches` batches of `per_batch` tweets, a minute apart (mod 60), all in dt=2024-05-01/hour=03."""
    for batch_id in range(batches):
        publish(lake, batch_id, [tweet(n, START + timedelta(minutes=n % 60))
                                 for n in range(batch_id * per_batch, (batch_id + 1) * per_batch)])


def lake_cli(capsys, lake: Path | str, *argv: str, settings: Settings | None = None) -> tuple[int, str, str]:
    code = main(["--lake-root", str(lake), *argv], settings=settings or Settings(_env_file=None))
    out, err = capsys.readouterr()
    return code, out, err


def files_in(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}


def bronze(lake: Path) -> pa.Table:
    return ds.dataset(lake / "bronze", format="parquet", partitioning="hive").to_table()


def corrupt(path: Path) -> None:
    path.write_bytes(b"this is not parquet" * 10)


# --- ls, stats, show -----------------------------------------------------------------------------


def test_a_published_name_gives_back_its_batch_and_a_final_name_none():
    assert batch_of(published_name(42, 7)) == 42
    assert batch_of("part-c20240501T000000000000Z-00000.parquet") is None


def test_ls_lists_zones_then_partitions_and_files_with_rows(tmp_path, capsys):
    small_lake(tmp_path, batches=2)
    publish(tmp_path, 2, [tweet(99, START + timedelta(days=1))])
    dead_letters(tmp_path, 3)

    code, out, _ = lake_cli(capsys, tmp_path, "ls")
    assert code == 0
    zone_lines = {line.split()[-1]: line.split() for line in out.splitlines()[1:]}
    assert list(zone_lines) == ["bronze", "silver", "quarantine/dead_letter", "quarantine/typed_unreadable",
                                "gold/topic_hourly", "gold/hashtags_hourly", "gold/entities_hourly",
                                "gold/domains_hourly"]
    assert zone_lines["bronze"][:2] == ["2", "3"] and zone_lines["bronze"][-2] == "21"
    assert zone_lines["silver"][:2] == ["0", "0"] and zone_lines["silver"][-2] == "0"
    assert zone_lines["quarantine/dead_letter"][:2] == ["1", "1"] and zone_lines["quarantine/dead_letter"][-2] == "3"

    code, out, _ = lake_cli(capsys, tmp_path, "ls", "bronze", "--dt", "2024-05-01")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("bronze: 1 partition, 2 files,") and lines[0].endswith("20 rows")
    assert lines[2].split()[-3:] == ["bronze/dt=2024-05-01/hour=03/", "(2", "files)"]
    assert lines[3].split()[-2:] == ["10", "bronze/dt=2024-05-01/hour=03/part-000000000000-00000.parquet"]
    assert "2024-05-02" not in out


def test_stats_json_is_the_last_line_with_the_agreed_keys(tmp_path, capsys):
    small_lake(tmp_path, batches=3)
    publish(tmp_path, 3, [tweet(99, START + timedelta(hours=2, minutes=5))])
    dead_letters(tmp_path, 4)

    code, out, _ = lake_cli(capsys, tmp_path, "stats", "--json")
    assert code == 0
    summary = json.loads(out.splitlines()[-1])
    assert {k: summary[k] for k in ("rows", "files", "partitions", "quarantine_rows")} == {
        "rows": 31, "files": 4, "partitions": 2, "quarantine_rows": 4}
    assert summary["min_created_at"] == "2024-05-01T03:00:00Z"
    assert summary["max_created_at"] == "2024-05-01T05:05:00Z"
    assert "bronze: 31 rows in 4 files, 2 partitions" in out


def test_stats_of_an_empty_lake_has_null_times(tmp_path, capsys):
    code, out, _ = lake_cli(capsys, tmp_path, "stats", "--json")
    assert code == 0
    summary = json.loads(out.splitlines()[-1])
    assert summary["rows"] == summary["files"] == summary["partitions"] == summary["quarantine_rows"] == 0
    assert summary["min_created_at"] is None and summary["max_created_at"] is None


def test_show_prints_the_newest_tweets_first_and_filters(tmp_path, capsys):
    small_lake(tmp_path, batches=2)
    publish(tmp_path, 2, [tweet(50, START + timedelta(hours=1), lang="de", author_username="foo",
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
    ("lang contains en", "'lang' is not one of the list-of-text columns: topics"),
    ("lang=", "the value is empty"),
])
def test_show_rejects_other_filters_clearly(tmp_path, capsys, where, message):
    small_lake(tmp_path, batches=1)
    code, _, err = lake_cli(capsys, tmp_path, "show", "--where", where)
    assert code == 2
    assert message in err


# --- verify --------------------------------------------------------------------------------------


def test_verify_passes_a_clean_lake_with_one_line(tmp_path, capsys):
    small_lake(tmp_path)
    dead_letters(tmp_path, 2)
    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 0
    assert out.splitlines() == [
        "OK: bronze has 40 rows in 4 files (1 partition), every tweet_id once, every row in its created_at "
        "partition; 1 quarantine file readable"]


def silver_post(number: int, created_at: datetime, root: int | None = None) -> dict:
    return tweet(number, created_at) | {"edit_root_id": f"{1000 + (number if root is None else root)}"}


SILVER_SCHEMA = SCHEMA.append(pa.field("edit_root_id", pa.string()))


def test_verify_checks_silver_keys_once_across_the_zone(tmp_path, capsys):
    small_lake(tmp_path, batches=1)
    for batch_id, rows in enumerate([[silver_post(n, START + timedelta(minutes=n)) for n in range(5)],
                                     [silver_post(7, START + timedelta(hours=1), root=2)]]):
        folder = tmp_path / "silver" / "dt=2024-05-01" / f"hour={rows[0]['created_at'].hour:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, SILVER_SCHEMA), folder / published_name(batch_id, 0))
    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 1
    assert ("edit_root_id 1002 appears 2 times: silver/dt=2024-05-01/hour=03/part-000000000000-00000.parquet, "
            "silver/dt=2024-05-01/hour=04/part-000000000001-00000.parquet") in out

    (tmp_path / "silver" / "dt=2024-05-01" / "hour=04" / published_name(1, 0)).unlink()
    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 0
    assert ("; silver has 5 rows in 1 file (1 partition), every edit_root_id once, every row in its created_at "
            "partition;") in out
    code, out, _ = lake_cli(capsys, tmp_path, "stats", "--json")
    assert json.loads(out.splitlines()[-1])["silver_rows"] == 5
    code, out, _ = lake_cli(capsys, tmp_path, "show", "--zone", "silver", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 3 and "tweet number 4 about data" in out


def test_verify_names_a_repeated_id_and_a_row_in_the_wrong_partition(tmp_path, capsys):
    small_lake(tmp_path, batches=2)
    publish(tmp_path, 2, [tweet(3, START + timedelta(minutes=3))])  # tweet 1003 again
    misplaced = tmp_path / "bronze/dt=2024-05-01/hour=03" / published_name(3, 0)
    pq.write_table(pa.Table.from_pylist([tweet(77, START + timedelta(hours=1, minutes=1))], SCHEMA), misplaced)

    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 1
    assert ("tweet_id 1003 appears 2 times: bronze/dt=2024-05-01/hour=03/part-000000000000-00000.parquet, "
            "bronze/dt=2024-05-01/hour=03/part-000000000002-00000.parquet") in out
    assert ("bronze/dt=2024-05-01/hour=03/part-000000000003-00000.parquet: 1 of 1 rows have created_at outside "
            "dt=2024-05-01/hour=03 (e.g. tweet 1077 created 2024-05-01T04:01:00Z)") in out
    assert out.splitlines()[-1].startswith("verify FAILED: 2 problem(s)")


# --- bad input -----------------------------------------------------------------------------------


def test_a_lake_root_that_does_not_exist_is_a_clear_error(tmp_path, capsys):
    for command in (["ls"], ["stats"], ["show"], ["verify"], ["compact", "--dt", "2024-05-01"]):
        code, out, err = lake_cli(capsys, tmp_path / "missing", *command)
        assert (code, out) == (2, ""), command
        assert err.strip() == f"lake: error: lake root {tmp_path / 'missing'} does not exist"


def test_an_unknown_zone_is_a_clear_error(tmp_path, capsys):
    code, _, err = lake_cli(capsys, tmp_path, "ls", "platinum")
    assert code == 2
    assert ("unknown zone 'platinum': the zones are bronze, silver, quarantine/dead_letter, "
            "quarantine/typed_unreadable") in err


def test_a_corrupt_file_is_named_and_nothing_is_deleted(tmp_path, capsys):
    small_lake(tmp_path)
    commit(tmp_path, 0, 1, 2, 3)
    broken = tmp_path / "bronze/dt=2024-05-01/hour=03" / published_name(2, 0)
    corrupt(broken)
    before = files_in(tmp_path)
    name = "bronze/dt=2024-05-01/hour=03/part-000000000002-00000.parquet"

    for command in (["ls", "bronze"], ["stats", "--json"], ["verify"], ["compact", "--dt", "2024-05-01"]):
        code, out, err = lake_cli(capsys, tmp_path, *command)
        assert code == 1, command
        assert f"unreadable parquet file {name}" in err + out, command
    assert files_in(tmp_path) == before


def test_a_file_with_a_good_footer_and_bad_data_stops_compaction_without_a_trace(tmp_path, capsys):
    small_lake(tmp_path, per_batch=2000)
    commit(tmp_path, 0, 1, 2, 3)
    damaged = tmp_path / "bronze/dt=2024-05-01/hour=03" / published_name(3, 0)
    data = bytearray(damaged.read_bytes())
    data[4:300] = b"\x55" * 296
    damaged.write_bytes(bytes(data))
    before = files_in(tmp_path)

    code, _, err = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01")
    assert code == 1
    assert "unreadable parquet file bronze/dt=2024-05-01/hour=03/part-000000000003-00000.parquet" in err
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("argv, message", [
    (["compact"], "the following arguments are required: --dt"),
    (["compact", "--dt", "2024-13-01"], "expected a date as YYYY-MM-DD, got '2024-13-01'"),
    (["compact", "--dt", "2024-05-01", "--hour", "24"], "expected an hour 0-23, got '24'"),
    (["compact", "--dt", "2024-05-01", "--target-mb", "0"], "expected a positive number, got '0'"),
    (["show", "--limit", "-1"], "expected a positive number, got '-1'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_options_exit_2_with_the_reason(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        lake_cli(capsys, tmp_path, *argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["ls", "stats", "show", "verify", "compact"])
def test_every_subcommand_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"], settings=Settings(_env_file=None))
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: lake {command}")


def test_the_module_runs_as_a_command_with_exit_codes(tmp_path):
    run = subprocess.run([sys.executable, "-m", "datalake.cli", "--lake-root", str(tmp_path / "nope"), "stats"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "does not exist" in run.stderr


# --- compact -------------------------------------------------------------------------------------


def test_compaction_merges_committed_batches_and_leaves_later_ones_alone(tmp_path, capsys):
    small_lake(tmp_path, batches=6)
    commit(tmp_path, 0, 1, 2, 3)
    partition = tmp_path / "bronze/dt=2024-05-01/hour=03"
    uncommitted = {p.name: p.read_bytes() for p in partition.glob("part-00000000000[45]-*.parquet")}
    ids_before = sorted(bronze(tmp_path).column("tweet_id").to_pylist())

    code, out, err = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01", "--hour", "3")
    assert code == 0
    assert out.startswith("dt=2024-05-01/hour=03: 4 files (") and ") -> 1 file (" in out
    assert out.strip().endswith("; 2 file(s) of uncommitted batches left alone")
    assert "newest committed batch of the sink's query 'bronze': 3" in err
    assert "group 1/1: 4 files" in err

    names = sorted(p.name for p in partition.iterdir())
    assert len(names) == 3 and names[2].startswith("part-c")
    assert {name: (partition / name).read_bytes() for name in names[:2]} == uncommitted
    assert sorted(bronze(tmp_path).column("tweet_id").to_pylist()) == ids_before
    compacted = pq.ParquetFile(partition / names[2])
    assert compacted.metadata.num_rows == 40 and compacted.schema_arrow == SCHEMA
    assert not (tmp_path / "_compactions/bronze").exists() or not any((tmp_path / "_compactions/bronze").iterdir())

    commit(tmp_path, 4, 5)
    code, out, _ = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01")
    assert code == 0 and "3 files" in out and "-> 1 file" in out
    assert len(list(partition.iterdir())) == 1
    assert sorted(bronze(tmp_path).column("tweet_id").to_pylist()) == ids_before
    assert lake_cli(capsys, tmp_path, "verify")[0] == 0


def test_compaction_makes_files_of_about_the_target_size(tmp_path, capsys):
    small_lake(tmp_path, batches=8, per_batch=400)
    commit(tmp_path, *range(8))
    partition = tmp_path / "bronze/dt=2024-05-01/hour=03"
    size = max(p.stat().st_size for p in partition.iterdir())
    target_mb = 3.5 * size / 2**20  # three inputs fit, four do not

    code, out, _ = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01", "--target-mb", str(target_mb))
    assert code == 0, out
    assert "8 files" in out and "-> 3 files" in out
    assert bronze(tmp_path).num_rows == 3200


def test_quarantine_compaction_follows_its_own_query(tmp_path, capsys):
    for batch_id in range(3):
        dead_letters(tmp_path, 5, batch_id)
    commit(tmp_path, 0, 1, query="dead_letters")
    commit(tmp_path, 0, 1, 2, 3)  # the bronze query's commits do not count for dead letters

    code, out, err = lake_cli(capsys, tmp_path, "compact", "--zone", "quarantine/dead_letter", "--dt", "2024-05-01")
    assert code == 0, err
    assert "query 'dead_letters': 1" in err
    assert out.startswith("dt=2024-05-01: 2 files") and "1 file(s) of uncommitted batches left alone" in out
    code, out, _ = lake_cli(capsys, tmp_path, "ls", "quarantine/dead_letter")
    assert code == 0 and out.startswith("quarantine/dead_letter: 1 partition, 2 files,") and out.splitlines()[0].endswith("15 rows")

    code, _, err = lake_cli(capsys, tmp_path, "compact", "--zone", "quarantine/dead_letter", "--dt", "2024-05-01", "--hour", "3")
    assert code == 2 and "quarantine/dead_letter is not partitioned by hour: leave out --hour" in err


def test_compaction_needs_the_sinks_commit_log(tmp_path, capsys):
    small_lake(tmp_path)
    code, _, err = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01")
    assert code == 2
    assert f"no sink checkpoint at {tmp_path}/_checkpoints/bronze" in err

    (tmp_path / "_checkpoints/bronze/offsets").mkdir(parents=True)  # started, nothing committed yet
    before = files_in(tmp_path)
    code, out, _ = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01")
    assert code == 0
    assert "nothing to merge; 4 file(s) of uncommitted batches left alone" in out
    assert files_in(tmp_path) == before


def test_compaction_of_a_missing_partition_is_a_clear_error(tmp_path, capsys):
    small_lake(tmp_path)
    commit(tmp_path, 0)
    code, _, err = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01", "--hour", "04")
    assert code == 2
    assert "no data files in bronze/dt=2024-05-01/hour=04" in err


def test_a_held_lock_stops_a_second_compaction(tmp_path, capsys):
    small_lake(tmp_path)
    commit(tmp_path, 0, 1, 2, 3)
    lock = tmp_path / "_compactions/bronze/_lock"
    lock.parent.mkdir(parents=True)
    lock.write_text('{"host": "elsewhere", "pid": 1}')
    before = files_in(tmp_path)
    code, _, err = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01")
    assert code == 1
    assert "another rewrite of bronze" in err and "holds _compactions/bronze/_lock" in err and "elsewhere" in err
    assert files_in(tmp_path) == before


def test_the_lock_of_a_killed_compaction_is_taken_over(tmp_path, capsys):
    small_lake(tmp_path)
    commit(tmp_path, 0, 1, 2, 3)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "_compactions/bronze/_lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    code, out, _ = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01")
    assert code == 0 and "->" in out
    assert not lock.exists()


def interrupted(tmp_path: Path, renamed: bool) -> tuple[Path, list[Path]]:
    """The state a compaction killed just before (or just after) its rename leaves behind."""
    small_lake(tmp_path)
    commit(tmp_path, 0, 1, 2, 3)
    partition = tmp_path / "bronze/dt=2024-05-01/hour=03"
    inputs = sorted(partition.glob("part-00000000000[01]-*.parquet"))
    output = partition / "part-c20240501T000000000000Z-00000.parquet"
    temporary = partition / f".{output.name}.tmp"
    merged = pa.concat_tables([pq.read_table(p) for p in inputs])
    pq.write_table(merged, output if renamed else temporary)
    journal = tmp_path / "_compactions/bronze" / f"{output.name}.json"
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps({"output": str(output.relative_to(tmp_path)),
                                   "temporary": str(temporary.relative_to(tmp_path)),
                                   "inputs": [str(p.relative_to(tmp_path)) for p in inputs]}))
    return journal, inputs


def test_a_compaction_killed_after_its_rename_is_finished_by_the_next_one(tmp_path, capsys):
    journal, inputs = interrupted(tmp_path, renamed=True)
    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 1
    assert "tweet_id 1000 appears 2 times" in out
    assert "interrupted compaction _compactions/bronze/part-c20240501T000000000000Z-00000.parquet.json" in out

    code, _, err = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01", "--target-mb", "0.001")
    assert code == 0
    assert "settling the interrupted compaction" in err
    assert not journal.exists() and not any(p.exists() for p in inputs)
    assert sorted(bronze(tmp_path).column("tweet_id").to_pylist()) == [str(1000 + n) for n in range(40)]
    assert lake_cli(capsys, tmp_path, "verify")[0] == 0


def test_a_compaction_killed_before_its_rename_is_undone_by_the_next_one(tmp_path, capsys):
    journal, inputs = interrupted(tmp_path, renamed=False)
    assert lake_cli(capsys, tmp_path, "verify")[0] == 1  # the journal is reported; the temporary file is hidden
    assert bronze(tmp_path).num_rows == 40

    code, _, _ = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01", "--target-mb", "0.001")
    assert code == 0
    assert not journal.exists() and all(p.exists() for p in inputs)
    assert not list((tmp_path / "bronze").rglob(".*.tmp"))
    assert lake_cli(capsys, tmp_path, "verify")[0] == 0


def test_a_column_added_later_keeps_old_files_readable(tmp_path, capsys):
    """Bronze schema evolution: files written before a new column stay readable next to newer ones."""
    moment = START + timedelta(minutes=5)
    publish(tmp_path, 0, [tweet(n, moment) for n in range(10)])
    newer = SCHEMA.append(pa.field("sentiment", pa.float64()))
    folder = tmp_path / "bronze/dt=2024-05-01/hour=03"
    rows = [tweet(n, moment) | {"sentiment": 0.5} for n in range(10, 20)]
    pq.write_table(pa.Table.from_pylist(rows, newer), folder / published_name(1, 0))
    commit(tmp_path, 0, 1)

    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 0, out
    code, out, _ = lake_cli(capsys, tmp_path, "stats", "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["rows"] == 20
    unified = ds.dataset(tmp_path / "bronze", format="parquet", partitioning="hive",
                         schema=pa.unify_schemas([SCHEMA, newer])).to_table()
    assert unified.num_rows == 20 and unified.column("sentiment").null_count == 10

    code, out, _ = lake_cli(capsys, tmp_path, "compact", "--dt", "2024-05-01")
    assert code == 0, out
    # Files of different schemas are never merged into one: each keeps its own columns.
    after = ds.dataset(tmp_path / "bronze", format="parquet", partitioning="hive",
                       schema=pa.unify_schemas([SCHEMA, newer])).to_table()
    assert after.num_rows == 20 and after.column("sentiment").null_count == 10
