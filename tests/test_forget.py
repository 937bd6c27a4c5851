"""`lake forget` and the forgotten log on small local lakes of Delta tables written with deltalake
(no silver table, so no Spark job runs): what leaves each table and in which commit, what time
travel still shows, and when the deleted text leaves the disk."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from config.settings import Settings
from datalake import forgotten_log
from pipeline.lake_cli import main
from datalake.errors import LakeError
from datalake.forgotten_log import Forgotten, forgotten_rows, read_log
from datalake.lake import Lake
from datalake.layout import BRONZE, FORGOTTEN, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, Zone
from tests.support.bronze_files import edited, snowflake, tweet, write_bronze
from tests.support.letters import letter, write_letters
from tests.support.processes import bronze_ids

START = datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)


def rows(hour: int, count: int, author: str = "7") -> list[dict]:
    return [tweet(START + timedelta(hours=hour, minutes=n), f"tweet {hour}/{n} about data", sequence=n,
                  author_id=author) for n in range(count)]


def write_unreadable(lake: Path, values: list[str]) -> None:
    """One commit to quarantine/typed_unreadable: typed records the Tweet schema could not read."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from spark_sink.schema import unreadable_schema

    records = [{"reason": "bad_type", "value": value, "kafka_topic": "tweets.typed", "kafka_partition": 0,
                "kafka_offset": offset, "letter_id": hashlib.sha256(value.encode()).hexdigest(), "dt": "2024-05-01"}
               for offset, value in enumerate(values)]
    schema = to_arrow_schema(unreadable_schema(), timezone="UTC")
    Lake(str(lake), must_exist=False).append(QUARANTINE_UNREADABLE, pa.Table.from_pylist(records, schema))


def compliance_file(tmp_path: Path, lines: list[object], name: str = "compliance.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines))
    return path


def batch_result(tweet_id: str, reason: str = "deleted") -> dict:
    return {"id": tweet_id, "action": "delete", "created_at": "2024-05-01T03:00:00.000Z",
            "redacted_at": "2024-06-01T08:00:00.000Z", "reason": reason}


def forget(capsys, lake: Path, *argv: str, settings: Settings | None = None) -> tuple[int, dict, str]:
    code = main(["--lake-root", str(lake), "forget", *argv], settings=settings or Settings(_env_file=None))
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]), err


def verify(capsys, lake: Path) -> tuple[int, str]:
    code = main(["--lake-root", str(lake), "verify"], settings=Settings(_env_file=None))
    return code, capsys.readouterr().out


def texts_as_of(lake: Path, version: int) -> set[str] | None:
    """Bronze's texts at `version` (time travel); None once VACUUM has removed its files."""
    try:
        return set(Lake(str(lake)).read(BRONZE, ["text"], as_of=version).column("text").to_pylist())
    except LakeError:
        return None


def writes_since(lake: Path, zone: Zone, version: int) -> list[str]:
    """The operations that changed the zone's rows after `version`, oldest first (VACUUM changes
    no rows: it removes files no version after its retention uses)."""
    commits = Lake(str(lake)).table(zone).history()
    return [c["operation"] for c in reversed(commits)
            if c["version"] > version and not c["operation"].startswith("VACUUM")]


def version(lake: Path, zone: Zone) -> int:
    return Lake(str(lake)).table(zone).version()


@pytest.fixture
def lake(tmp_path) -> Path:
    """Bronze: three commits, one hour each; the tweets of hour 1 are by user 8, the others by user 7."""
    root = tmp_path / "lake"
    write_bronze(root, rows(0, 5))
    write_bronze(root, rows(1, 5, author="8"))
    write_bronze(root, rows(2, 5))
    return root


def test_forget_deletes_the_named_tweets_in_one_delete_commit(lake, tmp_path, capsys):
    doomed = [rows(0, 5)[1]["tweet_id"], rows(2, 5)[4]["tweet_id"]]
    untouched = {row["path"] for row in Lake(str(lake)).files(BRONZE).to_pylist() if row["partition.hour"] == "01"}
    code, report, err = forget(capsys, lake, str(compliance_file(tmp_path, [batch_result(i) for i in doomed])))
    assert code == 0, err
    assert report["ids_asked"] == report["tweet_ids"] == 2 and report["user_ids"] == 0
    assert report["rows_removed"]["bronze"] == 2 and report["files_rewritten"] == 2 and report["pending"] == []
    ids = bronze_ids(lake)
    assert len(ids) == len(set(ids)) == 13 and not set(doomed) & set(ids)
    assert read_log(Lake(str(lake))).tweets == frozenset(doomed)
    assert writes_since(lake, BRONZE, 2) == ["DELETE"]
    assert untouched <= {row["path"] for row in Lake(str(lake)).files(BRONZE).to_pylist()}  # hour 1 not rewritten
    assert verify(capsys, lake)[0] == 0


def test_a_users_job_forgets_every_tweet_of_those_users_and_bad_lines_are_counted(lake, tmp_path, capsys):
    path = compliance_file(tmp_path, [batch_result("8", "deactivated"), b"not json", {"id": "x1", "action": "delete"},
                                      {"id": "9", "action": "scrub_geo"}])
    code, report, err = forget(capsys, lake, "--users", str(path))
    assert code == 0, err
    assert report["user_ids"] == 1 and report["bad_lines"] == 2 and report["ignored_lines"] == 1
    assert report["rows_removed"]["bronze"] == 5 and report["files_rewritten"] == 1
    assert {row["partition.hour"] for row in Lake(str(lake)).files(BRONZE).to_pylist()} == {"00", "02"}
    assert len(bronze_ids(lake)) == 10
    assert writes_since(lake, BRONZE, 2) == ["DELETE"]
    assert f"{path}:2: skipped" in err


def test_a_post_forgets_every_version_and_quarantined_messages_of_forgotten_tweets_leave(lake, tmp_path, capsys):
    versions = edited(START + timedelta(hours=3), ["first text", "second text"])
    write_bronze(lake, versions)
    letter_tweet = {"data": {"id": snowflake(START, 99), "text": "cut", "author_id": "5"}}
    write_letters(lake, [letter("bad_field", orjson.dumps(letter_tweet)), letter("not_json", b"{not json", 1)])
    # An unreadable typed record of the edited post's second version: its history names the post.
    write_unreadable(lake, [orjson.dumps({"tweet_id": versions[1]["tweet_id"],
                                          "edit_history_tweet_ids": [v["tweet_id"] for v in versions]}).decode(),
                            orjson.dumps({"tweet_id": snowflake(START, 98)}).decode()])
    before = {zone: version(lake, zone) for zone in (BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE)}
    lines = [
        {"delete": {"status": {"id": 1, "id_str": versions[0]["tweet_id"], "user_id": 3, "user_id_str": "3"},
                    "timestamp_ms": "1412020426423"}},
        {"data": {"delete": {"tweet": {"id": letter_tweet["data"]["id"], "author_id": "5"},
                             "event_at": "2024-06-01T00:00:00.000Z"}}},
    ]
    code, report, err = forget(capsys, lake, str(compliance_file(tmp_path, lines)))
    assert code == 0, err
    assert {zone: report["rows_removed"][zone] for zone in ("bronze", "quarantine/dead_letter",
                                                            "quarantine/typed_unreadable")} == {
        "bronze": 2, "quarantine/dead_letter": 1, "quarantine/typed_unreadable": 1}
    assert not {v["tweet_id"] for v in versions} & set(bronze_ids(lake))
    kept = Lake(str(lake)).read(QUARANTINE_DEAD_LETTERS, ["raw_base64"]).column("raw_base64").to_pylist()
    assert kept == [base64.b64encode(b"{not json").decode()]
    assert Lake(str(lake)).rows(QUARANTINE_UNREADABLE) == 1
    assert {zone: writes_since(lake, zone, seen) for zone, seen in before.items()} == dict.fromkeys(before, ["DELETE"])


def test_verify_names_a_forgotten_tweet_still_in_a_zone_and_forget_without_files_removes_it(lake, capsys):
    """The log may name tweets the tables still hold (a run interrupted after its append)."""
    letter_tweet = {"data": {"id": snowflake(START, 99), "text": "cut", "author_id": "5"}}
    write_letters(lake, [letter("bad_field", orjson.dumps(letter_tweet))])
    forgotten_log.append(Lake(str(lake)), [{"id": i, "kind": "tweet", "reason": "deleted", "source": "test"}
                                       for i in (rows(1, 5)[0]["tweet_id"], letter_tweet["data"]["id"])])
    code, out = verify(capsys, lake)
    assert code == 1
    assert "bronze holds 1 row of forgotten tweets" in out and "quarantine/dead_letter holds 1 row" in out

    code, report, err = forget(capsys, lake)
    assert code == 0, err
    assert report["ids_asked"] == 0
    assert report["rows_removed"]["bronze"] == report["rows_removed"]["quarantine/dead_letter"] == 1
    assert verify(capsys, lake)[0] == 0


def parquet_holding(lake: Path, needle: str) -> list[str]:
    """Every parquet file under the lake (any version's, the logs' too) with `needle` in a value."""
    return [str(path.relative_to(lake)) for path in sorted(lake.rglob("*.parquet"))
            if needle in str(pq.read_table(path).to_pylist())]


def test_time_travel_shows_a_forgotten_tweet_until_the_purge_removes_it_from_disk(lake, tmp_path, capsys):
    doomed = rows(1, 5)[2]
    raw = orjson.dumps({"data": {"id": doomed["tweet_id"], "text": doomed["text"], "author_id": "8"}})
    write_letters(lake, [letter("bad_field", raw)])
    letter_text = base64.b64encode(raw).decode()
    before = version(lake, BRONZE)
    assert doomed["text"] in texts_as_of(lake, before)
    assert all(parquet_holding(lake, needle) for needle in (doomed["tweet_id"], doomed["text"], letter_text))

    path = compliance_file(tmp_path, [batch_result(doomed["tweet_id"])])
    code, report, err = forget(capsys, lake, str(path), settings=Settings(_env_file=None, lake_retention_hours=0))
    assert code == 0, err
    assert report["purge"] == {"retention_hours": 0.0, "purged": ["bronze", "quarantine/dead_letter"], "awaiting": {}}
    assert doomed["text"] not in (texts_as_of(lake, before) or set())
    # The forgotten log keeps the id (ids only, so that it never comes back); nothing else does.
    assert [p for p in parquet_holding(lake, doomed["tweet_id"]) if not p.startswith(f"{FORGOTTEN}/")] == []
    assert parquet_holding(lake, doomed["text"]) == parquet_holding(lake, letter_text) == []
    assert not [p for p in lake.rglob("_delta_log/*.json") if doomed["text"] in p.read_text()]  # nor in log stats


def test_with_the_default_retention_the_deleted_text_stays_readable_until_vacuum(lake, tmp_path, capsys):
    doomed = rows(1, 5)[2]
    before = version(lake, BRONZE)
    code, report, err = forget(capsys, lake, str(compliance_file(tmp_path, [batch_result(doomed["tweet_id"])])))
    assert code == 0, err
    purge = report["purge"]
    assert purge["retention_hours"] == 24.0 and purge["purged"] == [] and list(purge["awaiting"]) == ["bronze"]
    due = datetime.fromisoformat(purge["awaiting"]["bronze"].replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert timedelta(hours=23) < due <= timedelta(hours=24)
    assert doomed["text"] in texts_as_of(lake, before)
    assert doomed["text"] not in texts_as_of(lake, version(lake, BRONZE))


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


@pytest.mark.integration
def test_the_spark_rule_forgets_exactly_what_the_python_rule_forgets(spark):
    """spark_sink/forgotten_filter.py (the sink's and silver's anti-joins, and the quarantine filter)
    against datalake/forgotten_log.py, on the same rows."""
    from pyspark.sql import types as T

    from spark_sink.forgotten_filter import LogSnapshot, messages, post_id_of_bronze

    ids = Forgotten(frozenset({"9", "4", "40"}), frozenset({"33"}))
    bronze = pa.table({
        "n": list(range(7)),
        "tweet_id": ["1", "2", "3", "4", None, "6", "7"],
        "author_id": ["31", "32", "33", None, "34", "35", None],
        "edit_history_tweet_ids": [["1"], ["9", "2"], [], None, ["5"], ["6"], None],
    })
    as_ids = T.StructType([T.StructField("forgotten_id", T.StringType())])
    snapshot = LogSnapshot(0, spark.createDataFrame([(i,) for i in sorted(ids.tweets)], as_ids),
                           spark.createDataFrame([(i,) for i in sorted(ids.users)], as_ids), ids)
    frame = spark.createDataFrame(bronze.to_pylist(), "n long, tweet_id string, author_id string, "
                                                      "edit_history_tweet_ids array<string>")
    kept = sorted(row.n for row in snapshot.without(frame, post_id_of_bronze()).collect())
    gone = forgotten_rows(ids, BRONZE, bronze).to_pylist()
    assert kept == [n for n in range(7) if not gone[n]] == [0, 4, 5, 6]

    payloads = [{"data": {"id": "40", "text": "x", "author_id": "31"}},
                {"data": {"id": "41", "text": "x", "author_id": "31", "edit_history_tweet_ids": ["9", "41"]}},
                {"id_str": "42", "text": "x", "user": {"id_str": "33"}},
                {"data": {"id": "43", "text": "x", "author_id": "31"}}]
    raws = [base64.b64encode(orjson.dumps(p)).decode() for p in payloads] + [base64.b64encode(b"{").decode(), None]
    letters = pa.table({"letter_id": [str(n) for n in range(len(raws))], "raw_base64": raws})
    values = [orjson.dumps({"tweet_id": "44", "edit_history_tweet_ids": ["4", "44"]}).decode(),
              orjson.dumps({"tweet_id": "45", "author_id": "31"}).decode(), "{"]
    unreadable = pa.table({"letter_id": [str(n) for n in range(len(values))], "value": values})
    for zone, table, expected in ((QUARANTINE_DEAD_LETTERS, letters, ["0", "1", "2"]),
                                  (QUARANTINE_UNREADABLE, unreadable, ["0"])):
        frame = spark.createDataFrame(table.to_pylist(), ", ".join(f"{name} string" for name in table.column_names))
        found = messages(frame, zone, ids, forgotten=True)
        mask = forgotten_rows(ids, zone, table).to_pylist()
        assert sorted(row.letter_id for row in found.collect()) == [
            key for key, gone in zip(table.column("letter_id").to_pylist(), mask) if gone] == expected
