"""`lake replay`: dead letters through the pipeline again. Choosing the letters on small local
lakes (Delta tables written with deltalake, no process); then a lake built by a real backfill at a
small MAX_PAYLOAD_BYTES, replayed at the default one, twice."""
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
import pytest

from tweets.oversize import PREVIEW_BYTES
from agents.sources.synthetic import SyntheticTweets
from config.settings import Settings
from datalake.lake import Lake
from datalake.layout import QUARANTINE_DEAD_LETTERS
from tests.support.lake_command import lake_cli
from tests.support.letters import letter, write_letters
from tests.support.processes import bronze_ids, bronze_table


def letters_in(lake: Path) -> Counter:
    """Dead letters as (reason, raw bytes), whatever file holds them."""
    table = bronze_table(lake, QUARANTINE_DEAD_LETTERS)
    rows = [] if table is None else table.select(["reason", "raw_base64"]).to_pylist()
    return Counter((row["reason"], base64.b64decode(row["raw_base64"])) for row in rows)


def files_in(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


# --- choosing the letters, without processes ------------------------------------------------------


@pytest.fixture
def letters_lake(tmp_path) -> Path:
    """Letters of two days in two commits, one of them a too_large preview (not the whole message)."""
    write_letters(tmp_path, [letter("not_json", b"x"), letter("too_large", b"{" * 2000, 1),
                             letter("too_large", b"{" * PREVIEW_BYTES, 2)])
    next_day = datetime(2024, 5, 2, 1, 0, tzinfo=timezone.utc)
    write_letters(tmp_path, [letter("not_json", b"y", 3, next_day), letter("not_json", b"z", 4, next_day)])
    return tmp_path


@pytest.mark.parametrize("argv, to_replay", [
    ([], {"not_json": 3, "too_large": 1}),
    (["--reason", "too_large"], {"too_large": 1}),
    (["--dt", "2024-05-02"], {"not_json": 2}),
    (["--dt", "2024-05-03"], {}),
    (["--reason", "not_a_tweet"], {}),
])
def test_dry_run_counts_what_would_be_replayed_and_changes_nothing(letters_lake, capsys, argv, to_replay):
    before = files_in(letters_lake)
    code, out, err = lake_cli(capsys, letters_lake, "replay", "--dry-run", *argv)
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["to_replay_by_reason"] == to_replay and report["to_replay"] == sum(to_replay.values())
    if not argv:
        assert report["not_replayable"] == {"too_large": 1}  # only a preview of it is kept
    assert files_in(letters_lake) == before


def test_replay_is_refused_with_kafka_bootstrap_servers(letters_lake, capsys):
    """Removing a letter needs its outcome, which only the replay's own worker and sink report."""
    before = files_in(letters_lake)
    settings = Settings(_env_file=None, kafka_bootstrap_servers="127.0.0.1:1")
    code, out, err = lake_cli(capsys, letters_lake, "replay", settings=settings)
    assert code == 2 and out == "" and "unset KAFKA_BOOTSTRAP_SERVERS" in err
    assert files_in(letters_lake) == before


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
    result = subprocess.run([sys.executable, "-m", "pipeline.lake_cli", *args], cwd=cwd, env=clean | env,
                            capture_output=True, text=True, timeout=600)
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output (exit {result.returncode}):\n{result.stderr[-4000:]}"
    return result, json.loads(lines[-1])


@pytest.fixture(scope="module")
def replays(archive, tmp_path_factory) -> dict:
    """The backfill at MAX_PAYLOAD_BYTES=1024, a replay of the too_large letters at the default
    limit, then a replay of everything left; the lake's contents after each."""
    from tests.support.backfill import backfill  # here: the tests without processes need none of its imports

    lake = tmp_path_factory.mktemp("lake") / "lake"
    cwd = tmp_path_factory.mktemp("run")
    result, report = backfill(str(archive["path"]), "--lake-root", str(lake), "--filter", "none", "--no-silver",
                              cwd=cwd,
                              MAX_PAYLOAD_BYTES="1024")
    assert result.returncode == 0, result.stderr[-4000:]
    steps = {"backfill": (report, Counter(bronze_ids(lake)), letters_in(lake))}
    for name, argv in (("first", ["--reason", "too_large"]), ("second", [])):
        result, report = run_lake("--lake-root", str(lake), "replay", "--filter", "none", *argv, cwd=cwd)
        assert result.returncode == 0, result.stderr[-4000:]
        steps[name] = (report, Counter(bronze_ids(lake)), letters_in(lake), last_commit(lake))
    return {"lake": lake, **steps}


def last_commit(lake: Path) -> dict:
    """quarantine/dead_letter's newest commit: the replay's landing."""
    return Lake(str(lake)).table(QUARANTINE_DEAD_LETTERS).history(1)[0]


@pytest.mark.integration
def test_the_backfill_quarantined_the_medium_tweets(archive, replays):
    report, ids, letters = replays["backfill"]
    assert report["accepted"] == 20 and set(ids) == archive["small"]
    assert report["rejected_by_reason"]["too_large"] == 10 + 1 + 3 + 1
    assert sum(letters.values()) == report["rejected"] == 19


@pytest.mark.integration
def test_a_replay_lands_what_passes_now_once_and_keeps_what_fails_with_its_new_reason(archive, replays):
    report, ids, letters, landing = replays["first"]
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
    # The 14 replayed letters left and the 3 new ones came in one commit: no reader saw half of it.
    assert (landing["operation"], landing["operationMetrics"]["num_target_rows_deleted"],
            landing["operationMetrics"]["num_target_rows_inserted"]) == ("MERGE", 14, 3)


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
