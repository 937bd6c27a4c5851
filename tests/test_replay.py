"""`lake replay`: dead letters through the pipeline again. Journal recovery and selection on small
local lakes (no process); then a lake built by a real backfill at a small MAX_PAYLOAD_BYTES,
replayed at the default one, twice."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.backfill import staged
from tweets.oversize import PREVIEW_BYTES
from agents.sources.synthetic import SyntheticTweets
from app.settings import Settings
from datalake.cli import main
from datalake.files import Lake
from datalake.layout import BRONZE, QUARANTINE_DEAD_LETTERS, REPLAY_JOURNALS, final_names, published_name
from datalake.fs import LocalFS
from datalake.landing import finish, finish_interrupted, rewrite_of, write_journal
from tests.processes import bronze_table
from tests.test_backfill import backfill

FAILED_AT = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
LETTER_SCHEMA = pa.schema([
    ("reason", pa.string()), ("message", pa.string()), ("raw_base64", pa.string()),
    ("failed_at", pa.timestamp("us", tz="UTC")), ("kafka_topic", pa.string()),
    ("kafka_partition", pa.int64()), ("kafka_offset", pa.int64()),
])


def letter(reason: str, raw: bytes, offset: int = 0) -> dict:
    return {"reason": reason, "message": f"{reason} at {offset}", "raw_base64": base64.b64encode(raw).decode(),
            "failed_at": FAILED_AT, "kafka_topic": "tweets.raw", "kafka_partition": 0, "kafka_offset": offset}


def write_letters(folder: Path, name: str, letters: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(letters, LETTER_SCHEMA), folder / name)
    return folder / name


def lake_cli(capsys, lake: Path, *argv: str, settings: Settings | None = None) -> tuple[int, str, str]:
    code = main(["--lake-root", str(lake), *argv], settings=settings or Settings(_env_file=None))
    out, err = capsys.readouterr()
    return code, out, err


def letters_in(lake: Path) -> Counter:
    """Dead letters as (reason, raw bytes), whatever file holds them."""
    table = bronze_table(lake, QUARANTINE_DEAD_LETTERS)
    rows = [] if table is None else table.select(["reason", "raw_base64"]).to_pylist()
    return Counter((row["reason"], base64.b64decode(row["raw_base64"])) for row in rows)


# --- the journal: a crash at any step, then the next replay finishes it ---------------------------


class CrashingFS(LocalFS):
    """A local folder whose `crash_at`-th change (mkdirs, create, rename, delete) raises, as if the
    process died there."""

    def __init__(self, crash_at: int):
        self.crash_at, self.changes = crash_at, 0

    def _change(self) -> None:
        self.changes += 1
        if self.changes == self.crash_at:
            raise OSError(f"simulated crash at change {self.crash_at}")

    def mkdirs(self, path):
        self._change()
        super().mkdirs(path)

    def create(self, path):
        self._change()
        return super().create(path)

    def rename(self, source, target):
        self._change()
        super().rename(source, target)

    def delete(self, path, recursive=False):
        self._change()
        super().delete(path, recursive)


OLD = [letter("not_json", f"bad {n}".encode(), n) for n in range(5)]
GONE = [letter("too_large", f"big {n}".encode(), 10 + n) for n in range(2)]
NEW = letter("not_a_tweet", b"bad 2", 99)


def replayed_lake(root: Path) -> tuple[Lake, str]:
    """A lake whose replay has staged its files: 3 tweets for bronze and one new letter (bad 2 failed
    again); letters 0, 2, 4 of the first file and both of the second were replayed. Returns the
    lake and the journal, written (step 2) with the real filesystem."""
    quarantine = root / QUARANTINE_DEAD_LETTERS.path / "dt=2024-05-01"
    write_letters(quarantine, "part-c20240501T070000000000Z-00000.parquet", OLD)
    write_letters(quarantine, "part-c20240501T070000000000Z-00001.parquet", GONE)
    stage = root / "_backfill" / "replay-X"
    tweets = stage / BRONZE.path / "dt=2024-05-01" / "hour=08"
    tweets.mkdir(parents=True)
    pq.write_table(pa.table({"tweet_id": ["1", "2", "3"]}), tweets / published_name(0, 0))
    write_letters(stage / QUARANTINE_DEAD_LETTERS.path / "dt=2024-05-01", published_name(0, 0), [NEW])
    lake = Lake(LocalFS(), str(root))
    names = final_names("20240501T080000000000Z")
    plan = staged(Lake(lake.fs, str(stage)), lake, names)
    first, second = lake.files(QUARANTINE_DEAD_LETTERS)
    rewrites = [rewrite_of(first, 5, [0, 2, 4], names), rewrite_of(second, 2, [0, 1], names)]
    return lake, write_journal(lake, "replay-X", str(stage), plan.moves, rewrites)


def assert_every_row_once(root: Path) -> None:
    assert sorted(bronze_table(root).column("tweet_id").to_pylist()) == ["1", "2", "3"]
    assert letters_in(root) == Counter({("not_json", b"bad 1"): 1, ("not_json", b"bad 3"): 1,
                                        ("not_a_tweet", b"bad 2"): 1})
    assert not (root / "_backfill" / "replay-X").exists()
    assert not list((root / REPLAY_JOURNALS).iterdir())
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_a_journal_finished_without_a_crash_removes_the_replayed_letters(tmp_path):
    lake, journal = replayed_lake(tmp_path)
    assert finish(lake, journal) == 5
    assert_every_row_once(tmp_path)


def test_a_crash_at_any_step_is_finished_by_the_next_replay(tmp_path):
    """Each change of steps 3-5 in turn fails (moves, mkdirs, temporary file, rename, deletes);
    the next run's finish_interrupted then leaves every row once."""
    crash_at = 1
    while True:
        root = tmp_path / f"crash-{crash_at}"
        _, journal = replayed_lake(root)
        crashing = Lake(CrashingFS(crash_at), str(root))
        try:
            finish(crashing, journal)
        except OSError:
            finished = finish_interrupted(Lake(LocalFS(), str(root)), lambda _: None)
            assert finished == [{"journal": f"{REPLAY_JOURNALS}/replay-X.json", "quarantine_removed": 5}]
            assert_every_row_once(root)
            crash_at += 1
            continue
        assert_every_row_once(root)
        break
    assert crash_at > 8, "the crash points covered moves, rewrites and deletes"


def test_a_pending_journal_stops_compaction_of_the_quarantine_and_fails_verify(tmp_path, capsys):
    replayed_lake(tmp_path)
    (tmp_path / "_checkpoints" / "dead_letters").mkdir(parents=True)
    code, _, err = lake_cli(capsys, tmp_path, "compact", "--zone", QUARANTINE_DEAD_LETTERS.path, "--dt", "2024-05-01")
    assert code == 1 and "interrupted `lake replay`" in err
    code, out, _ = lake_cli(capsys, tmp_path, "verify")
    assert code == 1 and f"interrupted replay {REPLAY_JOURNALS}/replay-X.json" in out


# --- choosing the letters, without processes ------------------------------------------------------


@pytest.fixture
def letters_lake(tmp_path) -> Path:
    """Two days of letters; a too_large preview; a file of a sink batch not yet committed."""
    write_letters(tmp_path / QUARANTINE_DEAD_LETTERS.path / "dt=2024-05-01", "part-c20240501T000000000000Z-00000.parquet",
                  [letter("not_json", b"x"), letter("too_large", b"{" * 2000), letter("too_large", b"{" * PREVIEW_BYTES)])
    write_letters(tmp_path / QUARANTINE_DEAD_LETTERS.path / "dt=2024-05-02", "part-c20240502T000000000000Z-00000.parquet",
                  [letter("not_json", b"y")])
    write_letters(tmp_path / QUARANTINE_DEAD_LETTERS.path / "dt=2024-05-02", published_name(3, 0), [letter("not_json", b"z")])
    return tmp_path


@pytest.mark.parametrize("argv, to_replay", [
    ([], {"not_json": 2, "too_large": 1}),
    (["--reason", "too_large"], {"too_large": 1}),
    (["--dt", "2024-05-02"], {"not_json": 1}),
    (["--dt", "2024-05-03"], {}),
    (["--reason", "not_a_tweet"], {}),
])
def test_dry_run_counts_what_would_be_replayed_and_changes_nothing(letters_lake, capsys, argv, to_replay):
    before = {p: p.read_bytes() for p in letters_lake.rglob("*") if p.is_file()}
    code, out, err = lake_cli(capsys, letters_lake, "replay", "--dry-run", *argv)
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["to_replay_by_reason"] == to_replay and report["to_replay"] == sum(to_replay.values())
    if not argv:
        assert report["not_replayable"] == {"too_large": 1}  # only a preview of it is kept
        assert report["uncommitted_left"] == 1  # batch 3 has no commit in the sink's log
        assert "would replay 2 letter(s) of reason not_json" in err
    assert {p: p.read_bytes() for p in letters_lake.rglob("*") if p.is_file()} == before


def test_replay_is_refused_with_kafka_bootstrap_servers(letters_lake, capsys):
    settings = Settings(_env_file=None, kafka_bootstrap_servers="127.0.0.1:1")
    code, out, err = lake_cli(capsys, letters_lake, "replay", settings=settings)
    assert code == 2 and out == "" and "unset KAFKA_BOOTSTRAP_SERVERS" in err


# --- the real pipeline --------------------------------------------------------------------------


def padded(message: dict, size: int) -> bytes:
    """The message with a field the normalizer ignores, to about `size` bytes."""
    return orjson.dumps({**message, "padding": "p" * max(0, size - len(orjson.dumps(message)))})


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> dict:
    """20 tweets under 1 KB, 10 of 2-3 KB plus a repeat of one, 3 non-tweets of 2 KB, 4 malformed
    lines and a 100 KB tweet: at MAX_PAYLOAD_BYTES=1024 the 2-3 KB lines fail as too_large."""
    messages = [orjson.loads(m) for m in SyntheticTweets(seed=71, malformed_share=0.0).messages(200)]
    small = [line for line in (orjson.dumps({"data": m["data"]}) for m in messages[:100]) if len(line) < 1000][:20]
    medium = [padded(m, 2000 + 100 * n) for n, m in enumerate(messages[100:110])]
    not_tweets = [padded({"errors": [{"title": "operational", "n": n}]}, 2000) for n in range(3)]
    malformed = [b"<html>502 Bad Gateway</html>", small[0][:60], b"[1, 2", b"\xff\xfe not utf-8"]
    huge = padded(messages[150], 100_000)
    path = tmp_path_factory.mktemp("archive") / "capture.jsonl"
    path.write_bytes(b"\n".join(small + medium + [medium[3]] + not_tweets + malformed + [huge]) + b"\n")
    ids = lambda lines: {orjson.loads(line)["data"]["id"] for line in lines}  # noqa: E731
    return {"path": path, "small": ids(small), "medium": ids(medium), "not_tweets": not_tweets, "malformed": malformed}


def run_lake(*args: str, cwd: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    result = subprocess.run([sys.executable, "-m", "datalake.cli", *args], cwd=cwd, env=clean | env,
                            capture_output=True, text=True, timeout=240)
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output (exit {result.returncode}):\n{result.stderr[-4000:]}"
    return result, json.loads(lines[-1])


def bronze_ids(lake: Path) -> Counter:
    return Counter(bronze_table(lake).column("tweet_id").to_pylist())


@pytest.fixture(scope="module")
def replays(archive, tmp_path_factory) -> dict:
    """The backfill at MAX_PAYLOAD_BYTES=1024, a replay of the too_large letters at the default
    limit, then a replay of everything left; the lake's contents after each."""
    lake = tmp_path_factory.mktemp("lake") / "lake"
    cwd = tmp_path_factory.mktemp("run")
    result, report = backfill(str(archive["path"]), "--lake-root", str(lake), "--filter", "none", "--no-silver",
                              cwd=cwd,
                              MAX_PAYLOAD_BYTES="1024")
    assert result.returncode == 0, result.stderr[-4000:]
    steps = {"backfill": (report, bronze_ids(lake), letters_in(lake))}
    for name, argv in (("first", ["--reason", "too_large"]), ("second", [])):
        result, report = run_lake("--lake-root", str(lake), "replay", "--filter", "none", *argv, cwd=cwd)
        assert result.returncode == 0, result.stderr[-4000:]
        steps[name] = (report, bronze_ids(lake), letters_in(lake), result.stderr)
    return {"lake": lake, **steps}


@pytest.mark.integration
def test_the_backfill_quarantined_the_medium_tweets(archive, replays):
    report, ids, letters = replays["backfill"]
    assert report["accepted"] == 20 and set(ids) == archive["small"]
    assert report["rejected_by_reason"]["too_large"] == 10 + 1 + 3 + 1
    assert sum(letters.values()) == report["rejected"] == 19


@pytest.mark.integration
def test_a_replay_lands_what_passes_now_once_and_keeps_what_fails_with_its_new_reason(archive, replays):
    report, ids, letters, stderr = replays["first"]
    assert report["replayed"] == report["read"] == report["published"] == 14
    assert (report["accepted"], report["filtered"], report["duplicates"], report["rejected"]) == (10, 0, 1, 3)
    assert report["bronze_rows"] == 10 and report["quarantine_rows"] == 3
    assert report["quarantine_removed"] == 14
    assert report["replayed_by_reason"] == {"too_large": 14}
    assert report["recovered_by_reason"] == {"too_large": 11}
    assert report["still_failing"] == {"not_a_tweet": 3}
    assert report["not_replayable"] == {"too_large": 1}  # the 100 KB tweet: only its preview was kept
    assert ids == Counter(archive["small"] | archive["medium"]) and max(ids.values()) == 1
    assert Counter(reason for reason, _ in letters.elements()) == {"not_a_tweet": 3, "too_large": 1, "not_json": 3,
                                                                   "not_utf8": 1}
    assert {raw for reason, raw in letters if reason == "not_a_tweet"} == set(archive["not_tweets"])
    assert {raw for reason, raw in letters if reason not in ("not_a_tweet", "too_large")} == set(archive["malformed"])
    assert "replaying 14 dead letter(s)" in stderr


@pytest.mark.integration
def test_a_second_replay_sends_only_what_still_fails_and_changes_nothing(replays):
    _, ids_before, letters_before, _ = replays["first"]
    report, ids, letters, _ = replays["second"]
    assert report["replayed"] == report["rejected"] == report["quarantine_removed"] == 7
    assert report["accepted"] == report["bronze_rows"] == 0 and report["duplicates"] == 0
    assert report["recovered_by_reason"] == {}
    assert sum(report["still_failing"].values()) == 7
    assert ids == ids_before
    assert letters == letters_before
    assert not list((replays["lake"] / REPLAY_JOURNALS).iterdir())
    assert not list((replays["lake"] / "_backfill").iterdir())
