"""The tweets every stage uses: one seeded SyntheticTweets stream, generated once per run, with the
outcome the filter/normalize agent will reach for each (from the same pure function and rules)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from tweets.normalizer import Accepted, Deleted, FilterPolicy, Filtered, Lineage, normalize
from tweets.payloads import tweet_id_of
from agents.sources.synthetic import SyntheticTweets

# SyntheticTweets' defaults: the shares the project calls realistic for a keyword-filtered stream.
REALISTIC_SHARES = {"off_topic_share": 0.25, "non_english_share": 0.1, "malformed_share": 0.02, "duplicate_share": 0.0}
CLEAN_SHARES = {"off_topic_share": 0.0, "non_english_share": 0.0, "malformed_share": 0.0, "duplicate_share": 0.0}


@dataclass
class TweetPool:
    """Generated stream messages, their raw-topic keys and the worker's predicted outcomes.

    Grown on demand; message i is the same in every stage, so stages compare like with like.
    """

    seed: int
    clean: bool
    policy: FilterPolicy
    payloads: list[bytes] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    accepted: list[bool] = field(default_factory=list)
    generation_s: float = 0.0  # SyntheticTweets.message() alone, without the predictions

    def __post_init__(self) -> None:
        shares = CLEAN_SHARES if self.clean else REALISTIC_SHARES
        self.shares = shares
        self._source = SyntheticTweets(seed=self.seed, **shares)
        self._outcomes: dict[str, int] = {}

    def ensure(self, count: int) -> None:
        ingested_at = datetime.now(timezone.utc)
        while len(self.payloads) < count:
            started = time.perf_counter()
            payload = self._source.message()
            self.generation_s += time.perf_counter() - started
            tweet_id = tweet_id_of(payload)
            outcome = normalize(payload, policy=self.policy, lineage=Lineage("bench", 0, len(self.payloads)),
                                ingested_at=ingested_at)
            kind = type(outcome).__name__.lower()
            if isinstance(outcome, Filtered):
                kind = f"filtered_{outcome.reason}"
            elif isinstance(outcome, Deleted):
                kind = "filtered_deletion"  # as the worker counts it
            self._outcomes[kind] = self._outcomes.get(kind, 0) + 1
            self.payloads.append(payload)
            self.keys.append(tweet_id.encode() if tweet_id else None)
            self.accepted.append(isinstance(outcome, Accepted))

    def messages(self, start: int, stop: int) -> list[tuple[bytes | None, bytes]]:
        self.ensure(stop)
        return list(zip(self.keys[start:stop], self.payloads[start:stop]))

    def accepted_keys(self, start: int, stop: int) -> list[bytes]:
        self.ensure(stop)
        return [self.keys[i] for i in range(start, stop) if self.accepted[i]]

    def typed_rows(self, count: int, topic: str) -> list[tuple[bytes, bytes]]:
        """`count` rows for the typed topic, serialized as the agent sends them (orjson of the row)."""
        rows: list[tuple[bytes, bytes]] = []
        index = 0
        ingested_at = datetime.now(timezone.utc)
        while len(rows) < count:
            self.ensure(index + 1)
            if self.accepted[index]:
                outcome = normalize(self.payloads[index], policy=self.policy, lineage=Lineage(topic, 0, index),
                                    ingested_at=ingested_at)
                rows.append((self.keys[index], orjson.dumps(outcome.row)))
            index += 1
        return rows

    def describe(self) -> dict:
        count = len(self.payloads)
        return {
            "kind": "clean" if self.clean else "realistic",
            "shares": self.shares,
            "seed": self.seed,
            "generated": count,
            "mean_bytes": round(sum(map(len, self.payloads)) / count) if count else 0,
            "predicted_outcomes": dict(sorted(self._outcomes.items())),
            "accepted_share": round(sum(self.accepted) / count, 3) if count else 0,
            "generation_tweets_per_s": round(count / self.generation_s) if self.generation_s else None,
        }
