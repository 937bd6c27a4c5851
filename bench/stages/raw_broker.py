"""Stage 1, the ceiling: confluent-kafka producer -> broker -> consumer, the same payloads, nothing
else. The consumer runs in a thread, connected and fetching before the clock starts, so the rate
is what flows through the broker."""
from __future__ import annotations

import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.harness import Bench, rate, wait_for


def run(bench: Bench) -> dict:
    count = bench.config.broker_messages
    settings = bench.stage_settings("raw_broker")
    topic = settings.topic_raw
    messages = bench.pool.messages(0, count)
    payload_bytes = sum(len(value) for _key, value in messages)
    consumed = {"count": 0, "last": 0.0}

    consumer = Consumer({
        "bootstrap.servers": bench.bootstrap_servers,
        "group.id": f"{settings.faust_app_id}-reader",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 10,  # an empty partition must not hold the reader for 500 ms
        "log_level": 2,
    })
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.topic_partitions)])
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            got = [m for m in consumer.consume(10_000, timeout=0.05) if m.error() is None]
            if got:
                consumed["count"] += len(got)
                consumed["last"] = time.monotonic()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        bench.produce(topic, [(b"warm-up", b"{}")])
        wait_for(lambda: consumed["count"] == 1, 30, "the consumer's first message")
        broker_cpu = bench.broker_cpu()
        started = time.monotonic()
        bench.produce(topic, messages)
        produced = time.monotonic()
        wait_for(lambda: consumed["count"] >= count + 1, 120, f"{count} messages consumed", interval=0.01)
        broker_cpu = bench.broker_cpu() - broker_cpu
    finally:
        stop.set()
        reader.join()
        consumer.close()
    bench.delete_stage_topics(settings)
    through = consumed["last"] - started
    return {
        "messages": count,
        "payload_mb": round(payload_bytes / 1e6, 1),
        "raw_broker_msgs_per_s": rate(count, through),
        "raw_broker_mb_per_s": round(payload_bytes / 1e6 / through, 1),
        "raw_produce_msgs_per_s": rate(count, produced - started),
        "broker_cpu_s_per_1000": round(broker_cpu / count * 1000, 4),
    }
