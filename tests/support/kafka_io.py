"""Small producer/consumer helpers for tests, straight on confluent-kafka."""
from __future__ import annotations

import time
import uuid
from typing import Iterable

from confluent_kafka import Consumer, Producer


def produce(bootstrap_servers: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5, "log_level": 2})
    count = 0
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
        count += 1
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered to {topic}"
    return count


def consume_keys(bootstrap_servers: str, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    """Keys of records read from the start of `topic`, until `expected` are read or timeout."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"test-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "log_level": 2,
    })
    consumer.subscribe([topic])
    keys: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(keys) < expected and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    keys.append(message.key())
    finally:
        consumer.close()
    return keys


class TopicTail:
    """Reads a topic from the start in a background thread, noting when each key first arrived."""

    def __init__(self, bootstrap_servers: str, topic: str):
        import threading

        self.first_seen: dict[bytes, float] = {}
        self._stop = threading.Event()
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"tail-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 2,
        })
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, timeout=0.2):
                if message.error() is None:
                    self.first_seen.setdefault(message.key(), time.monotonic())

    def keys(self) -> set[bytes]:
        return set(self.first_seen)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()

    def __enter__(self) -> "TopicTail":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

