"""When each tweet became readable in bronze, as a plain reader sees it: the sink publishes files
by rename, so a part file that exists is complete; each new one is read once (tweet_id only)."""
from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq


class BronzeWatcher:
    def __init__(self, zone: Path):
        self.zone = zone
        self.first_seen: dict[bytes, float] = {}
        self.rows = 0
        self._files: set[Path] = set()

    def poll(self) -> int:
        """Read the files published since the last poll; returns how many rows they held."""
        if not self.zone.exists():
            return 0
        now = time.monotonic()
        new_rows = 0
        for path in self.zone.rglob("part-*.parquet"):
            if path in self._files:
                continue
            self._files.add(path)
            ids = pq.read_table(path, columns=["tweet_id"]).column("tweet_id").to_pylist()
            new_rows += len(ids)
            for tweet_id in ids:
                self.first_seen.setdefault(tweet_id.encode(), now)
        self.rows += new_rows
        return new_rows

    def missing(self, keys: list[bytes]) -> int:
        return sum(1 for key in keys if key not in self.first_seen)
