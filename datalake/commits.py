"""What a run of the sink (a backfill's, a replay's) wrote, from the tables' logs: each of its
commits carries the run's name and its micro-batch's counts in the commit info (spark_sink/bronze.py),
and Delta's own operation metrics say what the MERGE inserted and what it found there already.

So the counts come from the commits themselves, not from a second reading of the data: a batch
replayed after a crash commits nothing (its transaction id is recorded), and is counted once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from datalake.lake import Lake
from datalake.layout import BRONZE, FORGOTTEN, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, Zone

WRITES = ("MERGE", "WRITE", "STREAMING UPDATE")


def run_commits(lake: Lake, zone: Zone, run: str, since_ms: int, uri: str | None = None) -> list[dict]:
    """The data commits of `zone` whose commit info names `run`, one per micro-batch, read from
    the newest back to `since_ms` (epoch milliseconds; the run's start)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(uri or lake.uri(zone))
    except TableNotFoundError:
        return []
    limit = 64
    while True:
        commits = table.history(limit)
        if len(commits) < limit or commits[-1].get("timestamp", 0) < since_ms:
            break
        limit *= 4
    found: dict[tuple, dict] = {}
    for commit in commits:
        metadata = commit_metadata(commit)
        if commit.get("operation") in WRITES and metadata.get("run") == run:
            found.setdefault((metadata.get("query"), metadata.get("batch")), {**commit, "metadata": metadata})
    return list(found.values())


def commit_metadata(commit: dict) -> dict:
    text = commit.get("userMetadata")
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def metric(commit: dict, name: str) -> int:
    return int((commit.get("operationMetrics") or {}).get(name) or 0)


@dataclass(frozen=True)
class RunCounts:
    """What one run's sink did to the lake."""

    tweets_read: int = 0  # readable typed records, before the forgotten log
    bronze_rows: int = 0  # rows the run added to bronze
    already_in_lake: int = 0  # its tweets bronze had already (another run, the live stream)
    unreadable_read: int = 0  # typed records the Tweet schema could not read
    unreadable_rows: int = 0  # of those, added to quarantine/typed_unreadable
    forgotten_tweets: int = 0  # typed records (readable or not) left out: the forgotten log names them
    dead_letter_rows: int = 0  # added to quarantine/dead_letter (or the run's own letters table)
    forgotten_letters: int = 0  # dead letters of forgotten tweets left out
    deletions_logged: int = 0  # deletions the run's archives held, now in the forgotten log
    files_added: int = 0

    @property
    def quarantine_rows(self) -> int:
        return self.unreadable_rows + self.dead_letter_rows


def run_counts(lake: Lake, run: str, since_ms: int, dead_letters_uri: str | None = None) -> RunCounts:
    """Sum the run's commits in bronze, quarantine and the forgotten log."""
    bronze = run_commits(lake, BRONZE, run, since_ms)
    unreadable = run_commits(lake, QUARANTINE_UNREADABLE, run, since_ms)
    letters = run_commits(lake, QUARANTINE_DEAD_LETTERS, run, since_ms, dead_letters_uri)
    deletions = run_commits(lake, FORGOTTEN, run, since_ms)
    inserted = sum(metric(c, "numTargetRowsInserted") for c in bronze)
    merged = sum(metric(c, "numSourceRows") for c in bronze)
    return RunCounts(
        tweets_read=sum(c["metadata"].get("rows", 0) for c in bronze),
        bronze_rows=inserted,
        already_in_lake=merged - inserted,
        unreadable_read=sum(c["metadata"].get("rows", 0) for c in unreadable),
        unreadable_rows=sum(metric(c, "numOutputRows") for c in unreadable),
        forgotten_tweets=sum(c["metadata"].get("forgotten", 0) for c in bronze + unreadable),
        dead_letter_rows=sum(metric(c, "numOutputRows") for c in letters),
        forgotten_letters=sum(c["metadata"].get("forgotten", 0) for c in letters),
        deletions_logged=sum(metric(c, "numOutputRows") for c in deletions),
        files_added=sum(metric(c, "numTargetFilesAdded") + metric(c, "numFiles") for c in bronze + unreadable + letters),
    )
