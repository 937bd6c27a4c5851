"""`lake compact` (Delta's OPTIMIZE, through deltalake) on a partition the real sink is still
MERGEing into: no row lost, none doubled, fewer files; and a commit of either that meets the
other's is tried again rather than lost."""
from __future__ import annotations

import subprocess
import time
from datetime import datetime, timezone

import orjson
import pyarrow.compute as pc
import pytest

from agents.sources.synthetic import SyntheticTweets
from datalake.lake import Lake
from datalake.layout import BRONZE
from tests.support.kafka_io import produce
from tests.support.processes import BIN, REPO, bronze_count, bronze_table, settings_env, start_sink, wait_for
from tests.support.tweets import accepted_rows

pytestmark = pytest.mark.integration

MOMENT = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)  # every tweet lands in dt=2024-05-01/hour=12


def files_of_the_hour(lake) -> int:
    files = Lake(str(lake), must_exist=False).files(BRONZE)
    return 0 if files is None else files.num_rows


def test_compaction_while_the_sink_writes_loses_and_doubles_nothing(broker_settings, tmp_path):
    tweets = SyntheticTweets(seed=51, off_topic_share=0.0, non_english_share=0.0, malformed_share=0.0,
                             clock=lambda: MOMENT)
    rows = accepted_rows(list(tweets.messages(900)))
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    produce(settings.bootstrap_servers, settings.topic_typed,
            ((tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in rows.items()))
    lake = tmp_path / "lake"

    with start_sink(settings, tmp_path, sink_trigger_seconds=0.5, sink_max_offsets_per_trigger=60) as sink:
        wait_for(lambda: files_of_the_hour(lake) >= 6, 180, "a few small files", (sink,))
        assert bronze_count(lake) < len(rows), "compaction must run while the sink still has rows to write"
        compactions = []
        while bronze_count(lake) < len(rows) and len(compactions) < 3:
            before = files_of_the_hour(lake)
            compaction = subprocess.run(
                [str(BIN / "python"), "-m", "pipeline.lake_cli", "--lake-root", str(lake),
                 "compact", "--dt", "2024-05-01", "--hour", "12"],
                env=settings_env(settings), cwd=REPO, capture_output=True, text=True, timeout=120,
            )
            assert compaction.returncode == 0, compaction.stderr
            compactions.append((before, files_of_the_hour(lake)))
        wait_for(lambda: bronze_count(lake) >= len(rows), 180, "all rows", (sink,))
        time.sleep(2)  # a later batch must not add anything
        table = bronze_table(lake)

    ids = table.column("tweet_id")
    assert table.num_rows == len(rows)
    assert pc.count_distinct(ids).as_py() == len(rows)
    assert set(ids.to_pylist()) == set(rows)
    history = Lake(str(lake)).table(BRONZE).history()
    optimized = [c for c in history if c["operation"] == "OPTIMIZE"]
    merges = [c for c in history if c["operation"] == "MERGE"]
    assert optimized and any(int(c["operationMetrics"]["numFilesRemoved"]) > 1 for c in optimized)
    assert any(c["version"] > min(o["version"] for o in optimized) for c in merges), "the sink wrote after OPTIMIZE"
    # The file count right after the first compaction: what it merged, plus what the sink added meanwhile.
    first_before, first_after = compactions[0]
    assert first_after < first_before
