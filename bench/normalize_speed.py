"""How many tweets per second normalize() handles on one core, over synthetic stream messages.

    .venv/bin/python bench/normalize_speed.py [--messages 20000] [--rounds 3] [--seed 42]

Messages are generated first, then timed alone (outcome counting included); the best round is
reported, as the others lost time to whatever else the machine was doing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tweets.normalizer import FilterPolicy, Lineage, normalize  # noqa: E402
from tweets.topics import TopicMatcher  # noqa: E402
from agents.sources.synthetic import SyntheticTweets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    messages = list(SyntheticTweets(seed=args.seed).messages(args.messages))
    policy = FilterPolicy(
        matcher=TopicMatcher.from_file(), languages=frozenset({"en"}), max_payload_bytes=512_000
    )
    lineage = Lineage("tweets.raw", 0, 0)
    ingested_at = datetime.now(timezone.utc)

    best = float("inf")
    for _ in range(args.rounds):
        # Outcomes are counted, not kept: as in the agent, where a row is sent and dropped (keeping
        # 20,000 rows alive would time the garbage collector walking them).
        counts: Counter[str] = Counter()
        started = time.perf_counter()
        for message in messages:
            outcome = normalize(message, policy=policy, lineage=lineage, ingested_at=ingested_at)
            counts[f"{type(outcome).__name__.lower()} {getattr(outcome, 'reason', '')}".strip()] += 1
        best = min(best, time.perf_counter() - started)

    mean_bytes = sum(map(len, messages)) / len(messages)
    print(f"{len(messages)} synthetic messages, {mean_bytes:.0f} bytes on average")
    print(f"normalize: {len(messages) / best:,.0f} tweets/s on one core ({best / len(messages) * 1e6:.1f} µs each)")
    print("outcomes: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))


if __name__ == "__main__":
    main()
