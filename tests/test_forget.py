"""`lake forget` and the forgotten log on small local lakes (pyarrow-written, laid out as the sink
lays them out; no silver, so no Spark job runs): which files are rewritten, what a crash leaves,
what waits for the sink."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from app.settings import Settings
from datalake.cli import main
from datalake.compact import write_json
from datalake.files import Lake
from datalake.forget import Checkpoints, Sweeper
from datalake.forgotten import Forgotten, forgotten_rows, log_files, read_log
from datalake.fs import LocalFS
from datalake.layout import BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, published_name
from tests.bronze_files import edited, snowflake, tweet, write_bronze

START = datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)


def rows(hour: int, count: int, author: str = "7") -> list[dict]:
    return [tweet(START + timedelta(hours=hour, minutes=n), f"tweet {hour}/{n} about data", sequence=n,
                  author_id=author) for n in range(count)]


def checkpoint(lake: Path, folder: str, *batch_ids: int, query: str = "bronze") -> None:
    path = lake / "_checkpoints" / query / folder
    path.mkdir(parents=True, exist_ok=True)
    for batch_id in batch_ids:
        (path / str(batch_id)).write_text("v1\n{}")


def dead_letter(lake: Path, payloads: list[bytes], batch_id: int = 0) -> Path:
    folder = lake / QUARANTINE_DEAD_LETTERS.path / "dt=2024-05-01"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"reason": ["bad_field"] * len(payloads), "message": ["x"] * len(payloads),
                      "raw_base64": [base64.b64encode(p).decode() for p in payloads]})
    path = folder / published_name(batch_id, 0)
    pq.write_table(table, path)
    return path


def compliance_file(tmp_path: Path, lines: list[object], name: str = "compliance.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines))
    return path


def batch_result(tweet_id: str, reason: str = "deleted") -> dict:
    return {"id": tweet_id, "action": "delete", "created_at": "2024-05-01T03:00:00.000Z",
            "redacted_at": "2024-06-01T08:00:00.000Z", "reason": reason}


def forget(capsys, lake: Path, *argv: str) -> tuple[int, dict, str]:
    code = main(["--lake-root", str(lake), "forget", *argv], settings=Settings(_env_file=None))
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]), err


def bronze_ids(lake: Path) -> list[str]:
    return ds.dataset(lake / "bronze", format="parquet", partitioning="hive").to_table(columns=["tweet_id"]) \
        .column("tweet_id").to_pylist()


@pytest.fixture
def lake(tmp_path) -> Path:
    root = tmp_path / "lake"
    write_bronze(root, 0, rows(0, 5))
    write_bronze(root, 1, rows(1, 5, author="8"))
    write_bronze(root, 2, rows(2, 5))
    checkpoint(root, "commits", 0, 1, 2)
    checkpoint(root, "offsets", 0, 1, 2)
    return root


def test_forget_rewrites_only_the_files_that_hold_forgotten_tweets(lake, tmp_path, capsys):
    doomed = [rows(0, 5)[1]["tweet_id"], rows(2, 5)[4]["tweet_id"]]
    untouched = next((lake / "bronze/dt=2024-05-01/hour=01").glob("*.parquet"))
    before = untouched.read_bytes()
    code, report, err = forget(capsys, lake, str(compliance_file(tmp_path, [batch_result(i) for i in doomed])))
    assert code == 0, err
    assert report["ids_asked"] == report["tweet_ids"] == 2 and report["user_ids"] == 0
    assert report["rows_removed"]["bronze"] == 2 and report["files_rewritten"] == 2 and report["pending"] == []
    ids = bronze_ids(lake)
    assert len(ids) == 13 and not set(doomed) & set(ids) and len(set(ids)) == 13
    assert untouched.read_bytes() == before
    assert read_log(Lake(LocalFS(), str(lake))).tweets == frozenset(doomed)
    assert not list((lake / "_compactions").rglob("*.json"))
    assert main(["--lake-root", str(lake), "verify"], settings=Settings(_env_file=None)) == 0
    assert "none of the 2 forgotten ids in any zone" in capsys.readouterr().out


def test_a_users_job_forgets_every_tweet_of_those_users_and_bad_lines_are_counted(lake, tmp_path, capsys):
    path = compliance_file(tmp_path, [batch_result("8", "deactivated"), b"not json", {"id": "x1", "action": "delete"},
                                      {"id": "9", "action": "scrub_geo"}])
    code, report, err = forget(capsys, lake, "--users", str(path))
    assert code == 0, err
    assert report["user_ids"] == 1 and report["bad_lines"] == 2 and report["ignored_lines"] == 1
    assert report["rows_removed"]["bronze"] == 5 and report["files_rewritten"] == 1
    assert not (lake / "bronze/dt=2024-05-01/hour=01").exists() or not list(
        (lake / "bronze/dt=2024-05-01/hour=01").glob("*.parquet"))
    assert len(bronze_ids(lake)) == 10
    assert f"{path}:2: skipped" in err


def test_stream_deletes_and_an_edited_post_and_quarantine(lake, tmp_path, capsys):
    versions = edited(START + timedelta(hours=3), ["first text", "second text"])
    write_bronze(lake, 3, versions)
    checkpoint(lake, "commits", 3)
    letter_tweet = {"data": {"id": snowflake(START, 99), "text": "cut", "author_id": "5"}}
    letters = dead_letter(lake, [orjson.dumps(letter_tweet), b"{not json"], batch_id=0)
    checkpoint(lake, "commits", 0, query="dead_letters")
    lines = [
        {"delete": {"status": {"id": 1, "id_str": versions[0]["tweet_id"], "user_id": 3, "user_id_str": "3"},
                    "timestamp_ms": "1412020426423"}},
        {"data": {"delete": {"tweet": {"id": letter_tweet["data"]["id"], "author_id": "5"},
                             "event_at": "2024-06-01T00:00:00.000Z"}}},
    ]
    code, report, err = forget(capsys, lake, str(compliance_file(tmp_path, lines)))
    assert code == 0, err
    # The post's id forgets both of its versions; the dead letter of the deleted tweet goes, the other stays.
    assert report["rows_removed"]["bronze"] == 2 and report["rows_removed"]["quarantine/dead_letter"] == 1
    assert not {v["tweet_id"] for v in versions} & set(bronze_ids(lake))
    (kept,) = [f for f in (lake / "quarantine/dead_letter").rglob("*.parquet")]
    assert pq.read_table(kept).column("raw_base64").to_pylist() == [base64.b64encode(b"{not json").decode()]
    assert not letters.exists()


def test_files_of_an_uncommitted_batch_wait_for_the_sink(lake, tmp_path, capsys):
    checkpoint(lake, "offsets", 3)
    write_bronze(lake, 3, rows(4, 3))
    doomed = rows(4, 3)[0]["tweet_id"]
    code, report, err = forget(capsys, lake, "--wait", "1", str(compliance_file(tmp_path, [batch_result(doomed)])))
    assert code == 1 and "batch 3 of the sink's bronze query" in report["error"], err
    assert doomed in bronze_ids(lake)
    checkpoint(lake, "commits", 3)  # the sink commits it
    code, report, err = forget(capsys, lake)  # no files: finish what the log asks
    assert code == 0, err
    assert report["ids_asked"] == 0 and report["rows_removed"]["bronze"] == 1
    assert doomed not in bronze_ids(lake)


def test_verify_names_a_forgotten_tweet_still_in_a_zone(lake, capsys):
    lake_ = Lake(LocalFS(), str(lake))
    from datalake.forgotten import append

    append(lake_, [{"id": rows(1, 5)[0]["tweet_id"], "kind": "tweet", "reason": "deleted", "source": "test"}])
    assert main(["--lake-root", str(lake), "verify"], settings=Settings(_env_file=None)) == 1
    assert "bronze holds 1 row of forgotten tweets" in capsys.readouterr().out


@pytest.mark.parametrize("renamed", [False, True])
def test_an_interrupted_rewrite_is_settled_by_the_next_run(lake, tmp_path, capsys, renamed):
    """A run killed between its journal and the delete of the old file (before or after the rename)."""
    doomed = rows(0, 5)[2]["tweet_id"]
    (old,) = (lake / "bronze/dt=2024-05-01/hour=00").glob("*.parquet")
    table = pq.read_table(old)
    output = old.parent / "part-c20240601T000000000000Z-00000.parquet"
    temporary = old.parent / f".{output.name}.tmp"
    pq.write_table(table.filter(pa.compute.not_equal(table.column("tweet_id"), doomed)), temporary)
    if renamed:
        temporary.rename(output)
    lake_ = Lake(LocalFS(), str(lake))
    (lake / "_compactions/bronze").mkdir(parents=True)
    write_json(lake_.fs, str(lake / f"_compactions/bronze/{output.name}.json"), {
        "kind": "forget", "output": str(output.relative_to(lake)), "temporary": str(temporary.relative_to(lake)),
        "inputs": [str(old.relative_to(lake))]})
    from datalake.forgotten import append

    append(lake_, [{"id": doomed, "kind": "tweet", "reason": "deleted", "source": "test"}])
    code, report, err = forget(capsys, lake)
    assert code == 0, err
    ids = bronze_ids(lake)
    assert doomed not in ids and len(ids) == len(set(ids)) == 14
    assert not list((lake / "_compactions").rglob("*.json")) and not temporary.exists()


def test_the_rule_forgets_by_tweet_post_and_author():
    table = pa.table({
        "tweet_id": ["1", "2", "3", "4", None],
        "author_id": ["a", "b", "c", None, "d"],
        "edit_history_tweet_ids": [["1"], ["9", "2"], [], None, ["5"]],
    })
    mask = forgotten_rows(Forgotten(frozenset({"9", "4"}), frozenset({"c"})), BRONZE, table)
    assert mask.to_pylist() == [False, True, True, True, False]
    unreadable = pa.table({"value": [orjson.dumps({"tweet_id": "4"}).decode(), "{", None]})
    assert forgotten_rows(Forgotten(frozenset({"4"})), QUARANTINE_UNREADABLE, unreadable).to_pylist() == [True, False, False]


def test_the_sweeper_waits_for_the_batch_in_flight_when_the_log_changed(lake, tmp_path):
    lake_ = Lake(LocalFS(), str(lake))
    sweeper = Sweeper(lake_, Checkpoints(LocalFS(), str(lake / "_checkpoints")), lambda text: None)
    assert sweeper.tick() and sweeper.settled  # an empty log: nothing to do
    assert not sweeper.tick()
    from datalake.forgotten import append

    checkpoint(lake, "offsets", 3)  # batch 3 in flight: it may have read the log before the append
    doomed = rows(5, 2)[0]["tweet_id"]
    append(lake_, [{"id": doomed, "kind": "tweet", "reason": "deleted", "source": "test"}])
    assert sweeper.tick() and not sweeper.settled
    assert not sweeper.tick()  # batch 3 not committed yet
    write_bronze(lake, 3, rows(5, 2))  # its files hold the forgotten tweet
    checkpoint(lake, "commits", 3)
    assert sweeper.tick() and sweeper.settled
    assert doomed not in bronze_ids(lake) and sweeper.totals[BRONZE].rows_removed == 1
    assert len(log_files(lake_)) == 1


@pytest.mark.integration
def test_the_sinks_spark_rule_leaves_out_exactly_what_the_log_rule_forgets(lake, spark):
    """spark_sink/forgotten.py (the sink's and silver's anti-joins) against datalake/forgotten.py."""
    from datalake.forgotten import append
    from spark_sink.forgotten import ForgottenLog, post_id_of_bronze

    versions = edited(START + timedelta(hours=3), ["first text", "second text"])
    write_bronze(lake, 3, versions + rows(4, 3, author="9"))
    lake_ = Lake(LocalFS(), str(lake))
    append(lake_, [{"id": versions[0]["tweet_id"], "kind": "tweet", "reason": "deleted", "source": "test"},
                   {"id": rows(0, 5)[3]["tweet_id"], "kind": "tweet", "reason": "deleted", "source": "test"},
                   {"id": "9", "kind": "user", "reason": "user_protect", "source": "test"}])
    bronze = spark.read.parquet(str(lake / "bronze"))
    kept = {row.tweet_id for row in ForgottenLog(spark, str(lake)).without(bronze, post_id_of_bronze()).collect()}
    table = ds.dataset(lake / "bronze", format="parquet", partitioning="hive").to_table()
    mask = forgotten_rows(read_log(lake_), BRONZE, table).to_pylist()
    expected = {tweet_id for tweet_id, gone in zip(table.column("tweet_id").to_pylist(), mask) if not gone}
    assert kept == expected and len(table) - len(expected) == 2 + 1 + 3
