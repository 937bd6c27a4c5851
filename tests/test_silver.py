"""The silver job on a real lake, with bronze written as Delta commits: each post once in its
newest version whatever bronze repeats, and each post once for every reader after the job is
SIGKILLed at random points while bronze grows."""
from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from config.settings import Settings
from pipeline.lake_cli import main as lake_main
from datalake.commits import commit_metadata
from datalake.lake import Lake
from datalake.layout import SILVER
from tests.support.bronze_files import bronze_arrow_schema, edited, tweet, write_bronze
from tests.support.gold_lake import duck, silver_table
from tests.support.processes import start_sink, wait_for

pytestmark = pytest.mark.integration

START = datetime(2024, 5, 1, 7, 40, tzinfo=timezone.utc)


def silver_rows(lake: Path) -> dict[str, dict]:
    """Silver by edit_root_id, asserting no post is there twice."""
    return by_key(silver_table(lake).to_pylist())


def run_silver(settings: Settings, workdir: Path, timeout: float = 240) -> None:
    """The silver job with the available-now trigger, to its end."""
    with start_sink(settings, workdir, "--available-now", job="silver", name="silver") as silver:
        wait_for(lambda: not silver.alive(), timeout, "the silver job to finish")
        assert silver.popen.returncode == 0, silver.log_tail()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(_env_file=None, lake_root=str(tmp_path / "lake"), silver_trigger_seconds=1.0,
                    silver_max_files_per_trigger=40)


def on_topic(n: int, minute: int = 0) -> dict:
    return tweet(START + timedelta(minutes=minute, seconds=n), f"Fine-tuning a PyTorch model for NLP, part {n}",
                 sequence=n % 4000, hashtags=["MachineLearning"], urls=[f"https://arxiv.org/abs/2405.{n:05d}"])


def by_key(rows: list[dict]) -> dict[str, dict]:
    """Silver's rows by edit_root_id, asserting no post is there twice."""
    keyed = {row["edit_root_id"]: row for row in rows}
    assert len(keyed) == len(rows), "a post is in silver twice"
    return keyed


@pytest.mark.timeout(900)  # the session's refined lake may be built here
def test_each_post_once_in_its_newest_version_whatever_bronze_repeats(gold_lake):
    """On the session's refined lake (tests/gold_lake.py): silver_cases()' first rows with the
    gold test's in one bronze batch, silver; then their repeats and other versions, silver again."""
    lake, cases = gold_lake.root, gold_lake.cases
    posts, replaced, older_later, one_batch = (cases[name] for name in ("posts", "replaced", "older_later", "one_batch"))
    retweet, rich, lateral, original = cases["retweet"], cases["rich"], cases["lateral"], cases["posts"][0]
    first = {key: row for key, row in by_key(gold_lake.silver_after_first).items() if key in cases["keys"]}
    assert len(first) == len(cases["keys"]) == 30 + 3 + 1 + 2
    check_enrichment(first[rich["tweet_id"]], rich["text"], first[lateral["tweet_id"]])
    assert first[one_batch[0]["tweet_id"]]["text"] == "BERT thread v3"
    assert first[retweet["tweet_id"]]["original_tweet_id"] == original["tweet_id"]
    assert first[retweet["tweet_id"]]["text_clean"] == original["text"]

    # After the same rows again (a second backfill, the live stream) and the other versions.
    second = {key: row for key, row in silver_rows(lake).items() if key in cases["keys"]}
    assert set(second) == set(first)
    newest = second[replaced[0]["tweet_id"]]
    assert (newest["tweet_id"], newest["text"]) == (replaced[1]["tweet_id"], "Gemini review, corrected")
    assert newest["source_tweet_ids"] == [replaced[0]["tweet_id"], replaced[1]["tweet_id"]]
    assert (newest["dt"], newest["hour"]) == ("2024-05-01", "08")  # it moved with the edit's created_at
    kept = second[older_later[0]["tweet_id"]]
    assert (kept["tweet_id"], kept["text"]) == (older_later[1]["tweet_id"], "LLaMA notes v2")
    assert kept["source_tweet_ids"] == [older_later[0]["tweet_id"], older_later[1]["tweet_id"]]
    assert second[one_batch[0]["tweet_id"]]["source_tweet_ids"] == sorted(v["tweet_id"] for v in one_batch)
    for key in (p["tweet_id"] for p in posts[1:]):  # untouched rows are the same rows
        assert second[key]["refined_at"] == first[key]["refined_at"]

    counted = duck(lake, SILVER).sql("select count(*), count(distinct edit_root_id) from silver").fetchall()[0]
    assert counted[0] == counted[1] == len(silver_rows(lake))


def check_enrichment(silver: dict, text: str, italian: dict) -> None:
    """The NLP columns of a post on the field and of an Italian one without X's lang."""
    assert silver["text"] == text
    assert silver["text_clean"] == "Yann LeCun and Google DeepMind in Vancouver: new PyTorch results & a thread 🚀"
    found = {(e["text"], e["label"]) for e in silver["entities"]}
    assert {("Yann LeCun", "ML_PERSON"), ("PyTorch", "ML_FRAMEWORK"), ("Vancouver", "GPE")} <= found
    assert silver["hashtags"] == ["deeplearning"] and silver["domains"] == ["arxiv.org"]
    assert silver["relevance_label"] == "relevant" and 0.5 < silver["relevance"] <= 1
    assert silver["schema_version"] == 1 and silver["lang"] == "en"
    assert italian["lang"] == "it" and italian["relevance_label"] == "not_relevant"


def bronze_writer(lake: Path, stop: threading.Event, written: list[dict]) -> None:
    """Bronze growing as the sink would commit it: a commit every ~second, with repeats of earlier
    rows and later versions of earlier posts among the new ones."""
    schema = bronze_arrow_schema()
    chance = random.Random(7)
    batch_id = 0
    while not stop.is_set():
        rows = [on_topic(len(written) + n, minute=batch_id // 20) for n in range(20)]
        if written:
            rows += chance.sample(written, min(5, len(written)))
        if batch_id % 7 == 3:
            versions = edited(START + timedelta(minutes=batch_id // 20, seconds=59), [f"edit {batch_id} v1",
                                                                                     f"edit {batch_id} v2"], 3)
            rows += [versions[1]]
            written.append(versions[0])  # the older version arrives later, as a repeat might
        write_bronze(lake, rows, schema)
        written += rows
        batch_id += 1
        time.sleep(1.0)


@pytest.mark.timeout(600)
def test_silver_sigkilled_while_bronze_grows_holds_each_post_once(settings, tmp_path, capsys):
    lake = Path(settings.lake_root)
    written: list[dict] = []
    stop = threading.Event()
    writer = threading.Thread(target=bronze_writer, args=(lake, stop, written), daemon=True)
    writer.start()
    chance = random.Random(11)
    try:
        for attempt in range(2):
            silver = start_sink(settings, tmp_path, job="silver", name=f"silver-{attempt}")
            try:
                wait_for(lambda: "silver: batch" in silver.log_text(), 180, "a silver batch", (silver,))
                time.sleep(chance.uniform(0.5, 6.0))  # anywhere in a later batch: decide, enrich, append, MERGE
            finally:
                silver.kill()
                silver.stop()
    finally:
        stop.set()
        writer.join(timeout=30)
    run_silver(settings, tmp_path)
    writes = [(c["operation"], commit_metadata(c)["batch"]) for c in Lake(str(lake)).table(SILVER).history()
              if c["operation"] in ("WRITE", "MERGE")]
    assert len(writes) == len(set(writes)), "a batch committed before a kill was written again after it"

    expected: dict[str, dict] = {}
    for row in written:
        key = row["edit_history_tweet_ids"][0]
        if key not in expected or int(row["tweet_id"]) > int(expected[key]["tweet_id"]):
            expected[key] = row
    rows = silver_rows(lake)  # deltalake, into pyarrow
    assert set(rows) == set(expected)
    assert {key: row["tweet_id"] for key, row in rows.items()} == {k: r["tweet_id"] for k, r in expected.items()}
    counted = duck(lake, SILVER).sql("select count(*), count(distinct edit_root_id) from silver").fetchall()[0]
    assert counted == (len(expected), len(expected))
    capsys.readouterr()
    assert lake_main(["--lake-root", str(lake), "verify"], settings=settings) == 1
    problems = capsys.readouterr().out.splitlines()
    assert any(line.startswith("bronze: tweet_id") for line in problems)  # this test's writer repeats rows
    assert not [line for line in problems if line.startswith("silver")], problems
