"""The gold job on a real lake: every gold count, relevant_tweets included, equals the count straight
from silver (DuckDB), after a rebuild over gold tables written before relevant_tweets, late hours,
repeats, an edit that moves a post to the next hour, and a SIGKILL in the middle of gold's batches
followed by a restart from its checkpoint."""
from __future__ import annotations

import pytest

from datalake.commits import commit_metadata
from datalake.lake import Lake
from datalake.layout import GOLD_TABLES, GOLD_TOPIC_HOURLY
from tests.support.gold_lake import assert_gold_equals_silver, gold_rows

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_gold_equals_silver_after_late_hours_repeats_and_a_kill(gold_lake):
    logs = gold_lake.logs
    assert logs["gold-1"].count("(rebuild)") == 1, logs["gold-1"][-2000:]
    assert "gold: batch" in logs["gold-2"], "the kill left nothing for the restarted job to recompute"
    assert "(rebuild)" not in logs["gold-2"], "a later batch rebuilt gold instead of recomputing its hours"
    for table in GOLD_TABLES:  # a batch committed before the kill was not written again after it
        batches = [commit_metadata(c).get("batch") for c in Lake(str(gold_lake.root)).table(table).history()
                   if c["operation"] == "WRITE"]
        assert len(batches) == len(set(batches)), table

    sizes = assert_gold_equals_silver(gold_lake.root)
    assert all(sizes[table] > 0 for table in GOLD_TABLES), sizes
    topic_rows = gold_rows(gold_lake.root, GOLD_TOPIC_HOURLY)
    topic_hours = {(dt, hour) for dt, hour, *_ in topic_rows}
    tweets, relevant = (sum(row[3 + n] for row in topic_rows) for n in range(2))  # dt, hour, topic, tweets, ...
    assert 0 < relevant < tweets, "relevant_tweets does not tell relevant posts from the others"
    assert ("2024-04-01", "12") in topic_hours, "the late hour is not in gold"
    assert {("2024-05-01", "07"), ("2024-05-01", "08"), ("2024-05-01", "09"), ("2024-05-01", "10")} <= topic_hours
