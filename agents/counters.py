"""Counters of what the filter/normalize agent decided, so that every input is accounted for:
read = accepted + filtered + duplicates + rejected.
"""
from __future__ import annotations

import json
import urllib.request
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class OutcomeCounters:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    filtered_by_reason: Counter = field(default_factory=Counter)
    rejected_by_reason: Counter = field(default_factory=Counter)

    @property
    def filtered(self) -> int:
        return sum(self.filtered_by_reason.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "accepted": self.accepted,
            "filtered": self.filtered,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "filtered_by_reason": dict(self.filtered_by_reason),
            "rejected_by_reason": dict(self.rejected_by_reason),
        }


def read_counters(web_port: int, timeout: float = 5.0) -> dict:
    """A worker's /counters/ on 127.0.0.1:`web_port`: what it decided since its start (and, with
    SOURCE=x, its X stream's `x`). Raises OSError while nothing answers, ValueError for no JSON."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/counters/", timeout=timeout) as reply:
        return json.load(reply)


def worker_counters(web_port: int, timeout: float = 5.0) -> dict:
    """read_counters, empty while the worker's web server is not up."""
    try:
        return read_counters(web_port, timeout)
    except (OSError, ValueError):
        return {}
