"""When each tweet became readable in bronze, as a plain reader sees it: the sink publishes files
by rename, so a part file that exists is complete; each new one is read once (tweet_id only).
The lake is read through its LakeFS, so a local folder and HDFS (over WebHDFS) are timed alike."""
from __future__ import annotations

import time

from app.settings import Settings
from datalake.errors import BadInput
from datalake.files import Lake
from datalake.fs import lake_fs_for


class BronzeWatcher:
    def __init__(self, settings: Settings):
        self._fs, self._root = lake_fs_for(settings.lake_root, settings.hdfs_namenode_url, settings.hdfs_user,
                                           settings.hdfs_http_port)
        self._lake: Lake | None = None
        self.first_seen: dict[bytes, float] = {}
        self.rows = 0
        self.polls = 0
        self.poll_seconds = 0.0
        self._files: set[str] = set()

    def lake(self) -> Lake | None:
        if self._lake is None:
            try:
                self._lake = Lake(self._fs, self._root)
            except BadInput:  # the sink has not made the root yet
                return None
        return self._lake

    def poll(self) -> int:
        """Read the files published since the last poll; returns how many rows they held."""
        began = time.monotonic()
        lake = self.lake()
        if lake is None:
            return 0
        new_rows = 0
        for file in lake.files("bronze"):
            if file.path in self._files:
                continue
            self._files.add(file.path)
            ids = lake.read(file, ["tweet_id"]).column("tweet_id").to_pylist()
            new_rows += len(ids)
            seen = time.monotonic()
            for tweet_id in ids:
                self.first_seen.setdefault(tweet_id.encode(), seen)
        self.rows += new_rows
        self.polls += 1
        self.poll_seconds += time.monotonic() - began
        return new_rows

    def mean_poll_ms(self) -> float | None:
        """How long a look at bronze takes: latencies are late by up to a poll interval plus this."""
        return round(self.poll_seconds / self.polls * 1000, 1) if self.polls else None

    def missing(self, keys: list[bytes]) -> int:
        return sum(1 for key in keys if key not in self.first_seen)
