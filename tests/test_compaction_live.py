"""`lake compact` on a partition the real sink is still writing: no row lost, none doubled."""
from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pytest

from agents.sources.synthetic import SyntheticTweets
from tests.kafka_io import produce
from tests.processes import BIN, REPO, bronze_count, bronze_table, settings_env, start_sink, wait_until
from tests.test_pipeline import accepted_rows

pytestmark = pytest.mark.integration

MOMENT = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)  # every tweet lands in dt=2024-05-01/hour=12


def committed_batches(lake: Path) -> int:
    commits = lake / "_checkpoints" / "bronze" / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.exists() else 0


def data_files(partition: Path) -> list[str]:
    return sorted(p.name for p in partition.glob("part-*.parquet")) if partition.exists() else []


def test_compaction_while_the_sink_writes_loses_and_doubles_nothing(broker_settings, tmp_path):
    tweets = SyntheticTweets(seed=51, off_topic_share=0.0, non_english_share=0.0, malformed_share=0.0,
                             clock=lambda: MOMENT)
    rows = accepted_rows(list(tweets.messages(900)))
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    produce(settings.bootstrap_servers, settings.topic_typed,
            ((tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in rows.items()))
    lake = tmp_path / "lake"
    partition = lake / "bronze" / "dt=2024-05-01" / "hour=12"

    with start_sink(settings, tmp_path, sink_trigger_seconds=0.5, sink_max_offsets_per_trigger=100) as sink:
        wait_until(lambda: committed_batches(lake) >= 2 and len(data_files(partition)) >= 6, 120,
                   "a few small committed files", (sink,))
        assert bronze_count(lake) < len(rows), "compaction must run while the sink still has rows to write"
        compaction = subprocess.run(
            [str(BIN / "python"), "-m", "datalake.cli", "--lake-root", str(lake),
             "compact", "--dt", "2024-05-01", "--hour", "12"],
            env=settings_env(settings), cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert compaction.returncode == 0, compaction.stderr
        merged = re.search(r"hour=12: (\d+) files \(.*\) -> (\d+) files? \(", compaction.stdout)
        assert merged, compaction.stdout
        inputs, outputs = int(merged.group(1)), int(merged.group(2))
        latest = int(re.search(r"newest committed batch of the sink's query 'bronze': (\d+)", compaction.stderr).group(1))

        wait_until(lambda: bronze_count(lake) >= len(rows), 120, "all rows", (sink,))
        time.sleep(2)  # a later batch must not add anything
        table = bronze_table(lake)

    ids = table.column("tweet_id")
    assert table.num_rows == len(rows)
    assert pc.count_distinct(ids).as_py() == len(rows)
    assert set(ids.to_pylist()) == set(rows)

    names = data_files(partition)
    compacted = [name for name in names if name.startswith("part-c")]
    published = [name for name in names if not name.startswith("part-c")]
    assert inputs > outputs == len(compacted) >= 1
    assert all(int(name[5:17]) > latest for name in published), "inputs left behind"
    assert published, "the sink published more batches after the compaction"
    assert len(names) == len(published) + outputs < len(published) + inputs
