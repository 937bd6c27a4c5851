"""The normalize agent's outbox against a real embedded broker: every queued record lands once, in
the partition asked for (or the one aiokafka's partitioner picks for its key, as Faust's own sends
do), in order, tombstones included, and is readable as soon as `flush()` returns."""
from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from agents.outbox import Outbox
from engines.broker import admin_client


class FaustProducerStandIn:
    """The one thing the outbox takes from Faust's producer: the aiokafka producer inside it."""

    def __init__(self, producer: AIOKafkaProducer):
        self._producer = producer

    def _ensure_producer(self) -> AIOKafkaProducer:
        return self._producer


def read_topic(bootstrap_servers: str, topic: str, partitions: int, expected: int) -> list[tuple[int, bytes | None, bytes | None]]:
    """(partition, key, value) of every record, partition by partition in offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"t-{uuid.uuid4()}",
                         "enable.auto.commit": False, "log_level": 2})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records = []
    try:
        empty_polls = 0
        while len(records) < expected or empty_polls < 2:
            batch = consumer.consume(1000, timeout=0.5)
            empty_polls = 0 if batch else empty_polls + 1
            records += [(m.partition(), m.key(), m.value()) for m in batch if m.error() is None]
            if empty_polls > 20:
                break
    finally:
        consumer.close()
    return sorted(records, key=lambda r: r[0])


def test_flushed_records_land_once_in_their_partitions_in_order(broker_settings):
    bootstrap = broker_settings.bootstrap_servers
    topic, partitions = "outbox-test", 4
    admin = admin_client(bootstrap)
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)
    placed = [(n % partitions, f"p{n}".encode(), f"placed-{n}".encode() * 40) for n in range(400)]
    keyed = [(f"{n}".encode(), f"keyed-{n}".encode()) for n in range(300)]
    tombstones = [(2, b"gone", None), (3, b"gone-too", None)]

    async def send_all() -> tuple[int, list[int]]:
        # A small batch size, so one partition's records span several record batches.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=16 * 1024)
        await producer.start()
        try:
            outbox = Outbox(FaustProducerStandIn(producer))
            for partition, key, value in placed + tombstones:
                outbox.add(topic, key, value, partition=partition)
            for key, value in keyed:
                outbox.add(topic, key, value)
            queued = outbox.pending_records
            await outbox.flush()
            await outbox.flush()  # nothing left: a no-op, nothing sent twice
            return queued, sorted(await producer.partitions_for(topic))
        finally:
            await producer.stop()

    queued, all_partitions = asyncio.run(send_all())
    assert queued == len(placed) + len(keyed) + len(tombstones)
    records = read_topic(bootstrap, topic, partitions, queued)
    assert len(records) == queued

    partitioner = DefaultPartitioner()
    expected_partition = {key: partitioner(key, all_partitions, all_partitions) for key, _value in keyed}
    assert len(set(expected_partition.values())) == partitions  # the keys really spread
    for partition in range(partitions):
        got = [(key, value) for p, key, value in records if p == partition]
        want = [(key, value) for p, key, value in placed + tombstones if p == partition]
        want += [(key, value) for key, value in keyed if expected_partition[key] == partition]
        assert got == want, f"partition {partition}"
