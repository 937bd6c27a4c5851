"""The gold job on a real lake: every gold count, relevant_tweets included, equals the count straight
from silver (DuckDB), after a rebuild over gold tables written before relevant_tweets, late hours,
repeats, an edit that moves a post to the next hour, and a SIGKILL in the middle of gold's batches
followed by a restart from its checkpoint."""
from __future__ import annotations

import pytest

from datalake.layout import GOLD_TABLES, GOLD_TOPIC_HOURLY
from tests.support.gold_lake import assert_gold_equals_silver, gold_batches, gold_rows

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_gold_equals_silver_after_late_hours_repeats_and_a_kill(gold_lake):
    for table in GOLD_TABLES:
        batches = gold_batches(gold_lake.root, table)
        assert batches.count(0) == 1, f"{table.path}: gold was rebuilt (batch 0) {batches.count(0)} times"
        assert len(batches) == len(set(batches)), f"{table.path}: a batch committed before the kill was written again"
    after_kill = gold_batches(gold_lake.root, GOLD_TOPIC_HOURLY, gold_lake.versions_at_kill[GOLD_TOPIC_HOURLY.path])
    assert after_kill, "the kill left nothing for the restarted job to recompute"
    assert 0 not in after_kill, "the restarted job rebuilt gold instead of recomputing its hours"

    sizes = assert_gold_equals_silver(gold_lake.root)
    assert all(sizes[table] > 0 for table in GOLD_TABLES), sizes
    topic_rows = gold_rows(gold_lake.root, GOLD_TOPIC_HOURLY)
    topic_hours = {(dt, hour) for dt, hour, *_ in topic_rows}
    tweets, relevant = (sum(row[3 + n] for row in topic_rows) for n in range(2))  # dt, hour, topic, tweets, ...
    assert 0 < relevant < tweets, "relevant_tweets does not tell relevant posts from the others"
    assert ("2024-04-01", "12") in topic_hours, "the late hour is not in gold"
    assert {("2024-05-01", "07"), ("2024-05-01", "08"), ("2024-05-01", "09"), ("2024-05-01", "10")} <= topic_hours
