"""The sink reads Kafka through Spark's own source: from the earliest offset, in capped micro-batches,
resuming from its checkpoint; and it says how to fix a missing connector."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from config.settings import Settings
from engines.jars import JarsMissing, jar_paths
from datalake.commits import commit_metadata, metric
from datalake.lake import Lake
from datalake.layout import BRONZE
from spark_sink.submit import sink_command
from tests.support.kafka_io import produce
from tests.support.processes import Process, bronze_table, settings_env, start_sink, wait_for
from tests.support.tweets import accepted_rows, clean_tweets

def rows_per_batch(lake: Path) -> dict[int, int]:
    """Rows each micro-batch inserted into bronze, from the MERGE commits of the table's log."""
    return {commit_metadata(commit)["batch"]: metric(commit, "numTargetRowsInserted")
            for commit in Lake(str(lake)).table(BRONZE).history() if commit["operation"] == "MERGE"}


def run_available_now(settings: Settings, workdir: Path, name: str, **overrides) -> None:
    with start_sink(settings, workdir, "--available-now", name=name, **overrides) as sink:
        wait_for(lambda: not sink.alive(), 240, f"{name} to finish")
    assert sink.popen.returncode == 0, sink.log_tail()


@pytest.mark.integration
def test_reads_from_earliest_in_capped_batches_then_only_new_records(broker_settings, tmp_path):
    rows = accepted_rows(clean_tweets(1300, seed=23))
    first, second = list(rows.items())[:1000], list(rows.items())[1000:]
    settings = broker_settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    lake = tmp_path / "lake"
    produce(settings.bootstrap_servers, settings.topic_typed,
            ((tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in first))

    run_available_now(settings, tmp_path, "sink-1", sink_max_offsets_per_trigger=300)
    batches = rows_per_batch(lake)
    assert sum(batches.values()) == 1000 and len(batches) >= 4
    assert max(batches.values()) <= 300, batches

    produce(settings.bootstrap_servers, settings.topic_typed,
            ((tweet_id.encode(), orjson.dumps(row)) for tweet_id, row in second))
    run_available_now(settings, tmp_path, "sink-2", sink_max_offsets_per_trigger=300)
    new = {batch: count for batch, count in rows_per_batch(lake).items() if batch not in batches}
    assert sum(new.values()) == len(second), new

    ids = Counter(bronze_table(tmp_path / "lake").column("tweet_id").to_pylist())
    assert set(ids) == set(rows) and set(ids.values()) == {1}


@pytest.mark.integration
def test_without_the_connector_the_sink_says_how_to_add_it(broker_settings, tmp_path):
    command = sink_command(broker_settings, "--available-now", web_ui=False)
    at = command.index("--jars") + 1
    command[at] = ",".join(str(path) for path in jar_paths("delta"))  # Delta, without Kafka's connector
    with Process("sink-no-connector", command, settings_env(broker_settings), tmp_path) as sink:
        wait_for(lambda: not sink.alive(), 120, "the sink without the connector to exit")
    assert sink.popen.returncode == 2
    assert "make jars" in sink.log_text() and "--packages org.apache.spark:spark-sql-kafka" in sink.log_text()


def test_the_command_needs_fetched_jars_or_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("JARS_DIR", str(tmp_path))
    with pytest.raises(JarsMissing, match="make jars"):
        sink_command(Settings(_env_file=None))
    packages = "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0"
    command = sink_command(Settings(_env_file=None, sink_spark_packages=packages))
    assert command[command.index("--packages") + 1] == packages and "--jars" not in command
