"""When each tweet became readable in bronze, as a reader of the Delta table sees it: at each poll
the files of the table's current version that were not seen before are read (tweet_id only). The
table is read through deltalake, so a local folder and HDFS are timed alike."""
from __future__ import annotations

import time

from config.settings import Settings
from datalake.lake import Lake
from datalake.layout import BRONZE


class BronzeWatcher:
    def __init__(self, settings: Settings):
        self.lake = Lake.of(settings, must_exist=False)
        self.first_seen: dict[bytes, float] = {}
        self.polls = 0
        self.poll_seconds = 0.0
        self._files: set[str] = set()

    @property
    def rows(self) -> int:
        """Tweets seen (a compacted file brings no new ones)."""
        return len(self.first_seen)

    def poll(self) -> int:
        """Read the files committed since the last poll; returns how many new tweets they held."""
        began = time.monotonic()
        table = self.lake.table(BRONZE)
        if table is None:
            return 0
        before = self.rows
        for fragment in table.to_pyarrow_dataset().get_fragments():
            if fragment.path in self._files:
                continue
            self._files.add(fragment.path)
            ids = fragment.to_table(columns=["tweet_id"]).column("tweet_id").to_pylist()
            seen = time.monotonic()
            for tweet_id in ids:
                self.first_seen.setdefault(tweet_id.encode(), seen)
        self.polls += 1
        self.poll_seconds += time.monotonic() - began
        return self.rows - before

    def mean_poll_ms(self) -> float | None:
        """How long a look at bronze takes: latencies are late by up to a poll interval plus this."""
        return round(self.poll_seconds / self.polls * 1000, 1) if self.polls else None

    def missing(self, keys: list[bytes]) -> int:
        return sum(1 for key in keys if key not in self.first_seen)
