"""Posts read from X this month, what they cost, and the monthly cap (X_MONTHLY_POST_CAP).

X bills every post it delivers, from the stream and from search alike, so reads are counted per
rule tag and per way in (`stream`, `gap_fill`) as they arrive. The month's total is the larger of
this count and X's own (its usage endpoint counts the whole project, other apps included). The
ledger is kept in FAUST_DATA_DIR/x_stream.json with the time the stream was last heard from, so a
restarted worker keeps its month and knows the gap it has to fill.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

WAYS_IN = ("stream", "gap_fill")


def month_of(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m")


@dataclass
class XUsage:
    """X's usage endpoint's answer: posts the project read this (X's) month and its cap."""

    project_usage: int
    project_cap: int | None
    cap_reset_day: int | None
    read_at: float


@dataclass
class SpendLedger:
    month: str
    reads: dict[str, Counter] = field(default_factory=lambda: {way: Counter() for way in WAYS_IN})
    # Posts X had already sent when the cap stopped the stream: not published, counted here.
    over_cap: int = 0
    usage: XUsage | None = None
    # When the stream was last heard from (a post or a keep-alive): where a gap begins.
    alive_at: float | None = None

    def count(self, way: str, tags: list[str], now: float) -> None:
        """One post read; a post matching two rules counts once in the total, once per tag."""
        self.roll(now)
        for tag in tags or ["(none)"]:
            self.reads[way][tag] += 1
        self.reads[way]["(total)"] += 1

    def roll(self, now: float) -> None:
        """A new calendar month (UTC) starts from zero; X's usage answer belongs to the old one."""
        month = month_of(now)
        if month != self.month:
            log.info("X spend: a new month (%s): %d posts were read in %s", month, self.local_total(), self.month)
            self.month, self.reads, self.over_cap, self.usage = month, {way: Counter() for way in WAYS_IN}, 0, None

    def local_total(self) -> int:
        return sum(self.reads[way]["(total)"] for way in WAYS_IN)

    def month_total(self) -> int:
        """Posts read this month: this worker's count, or X's if that is higher."""
        usage = self.usage.project_usage if self.usage else 0
        return max(self.local_total(), usage)

    def cost(self, cost_per_post: float) -> float:
        return self.month_total() * cost_per_post

    def remaining(self, cap: int | None) -> int | None:
        """Posts that may still be read this month; None without a cap."""
        return None if cap is None else max(cap - self.month_total(), 0)

    def as_dict(self) -> dict:
        return {
            "month": self.month,
            "reads": {way: dict(self.reads[way]) for way in WAYS_IN},
            "over_cap": self.over_cap,
            "usage": None if self.usage is None else vars(self.usage),
            "alive_at": self.alive_at,
        }

    @classmethod
    def from_dict(cls, saved: dict, now: float) -> "SpendLedger":
        ledger = cls(month=saved["month"], over_cap=saved.get("over_cap", 0), alive_at=saved.get("alive_at"))
        for way in WAYS_IN:
            ledger.reads[way].update(saved.get("reads", {}).get(way, {}))
        if saved.get("usage"):
            ledger.usage = XUsage(**saved["usage"])
        ledger.roll(now)
        return ledger


class LedgerFile:
    """The ledger on disk, written whole through a rename so a kill leaves the old or the new one."""

    def __init__(self, path: Path):
        self.path = path

    def load(self, now: float | None = None) -> SpendLedger:
        now = time.time() if now is None else now
        try:
            return SpendLedger.from_dict(json.loads(self.path.read_text()), now)
        except FileNotFoundError:
            return SpendLedger(month=month_of(now))
        except (ValueError, KeyError, TypeError) as error:
            log.error("X spend: %s is unreadable (%s); this month's count starts from zero", self.path, error)
            return SpendLedger(month=month_of(now))

    def save(self, ledger: SpendLedger) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(ledger.as_dict()))
        os.replace(partial, self.path)
