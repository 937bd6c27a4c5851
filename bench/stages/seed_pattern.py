"""Stage 2, the baseline: the seed project's ingestion pattern, kafka-python's
`KafkaProducer.send(...).get(timeout=10)` for each tweet (one broker round trip per tweet)."""
from __future__ import annotations

import time

from kafka import KafkaProducer

from bench.harness import Bench, rate


def run(bench: Bench) -> dict:
    seconds = bench.config.seed_pattern_seconds
    settings = bench.stage_settings("seed_pattern")
    producer = KafkaProducer(bootstrap_servers=bench.bootstrap_servers)
    try:
        producer.send(settings.topic_raw, value=b"{}").get(timeout=10)  # connect and learn metadata
        sent = 0
        started = time.monotonic()
        deadline = started + seconds
        payloads = bench.pool.payloads
        while time.monotonic() < deadline:
            if sent == len(payloads):
                bench.pool.ensure(sent + 10_000)
            producer.send(settings.topic_raw, value=payloads[sent]).get(timeout=10)
            sent += 1
        elapsed = time.monotonic() - started
    finally:
        producer.close(timeout=10)
    bench.delete_stage_topics(settings)
    return {"tweets": sent, "seconds": round(elapsed, 2), "seed_pattern_tweets_per_s": rate(sent, elapsed)}
