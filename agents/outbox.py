"""Batched produce for the filter/normalize agent: the records of one `take_events` batch go to
Faust's own aiokafka producer as whole record batches, one future per (topic, partition) batch,
because `Topic.send`'s futures per record were a fifth of the worker's CPU
(docs/benchmark-history.md, change 2). The at-least-once contract is `Outbox.flush`'s.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

log = logging.getLogger(__name__)

RETRY_PAUSE_SECONDS = 1.0
MAX_RETRY_PAUSE_SECONDS = 30.0
SLOW_ACK_SECONDS = 10.0


@dataclass
class _Pending:
    topic: str
    partition: int
    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)


class Outbox:
    """Records to send, grouped by topic and partition until `flush()`."""

    def __init__(self, faust_producer) -> None:
        self._faust_producer = faust_producer
        self._partitioner = DefaultPartitioner()
        self._by_partition: dict[tuple[str, int | None], list] = defaultdict(list)
        self.pending_records = 0

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """Queue a record; `partition=None` places it by key, as Kafka's default partitioner does."""
        self._by_partition[(topic, partition)].append((key, value))
        self.pending_records += 1

    async def flush(self) -> None:
        """Send everything queued and wait until the broker has acknowledged all of it.

        The agent awaits this before its events are acknowledged, so a record is on the broker
        before the raw offset that produced it can be committed (at-least-once). A failed batch is
        sent again after a pause, for as long as it takes: the agent does not move on, nothing is
        committed, and a worker stopped meanwhile reprocesses those events.
        """
        if not self.pending_records:
            return
        # Take the queue before any await: records added meanwhile wait for the next flush.
        queued, self._by_partition = self._by_partition, defaultdict(list)
        self.pending_records = 0
        producer = self._faust_producer._ensure_producer()
        pending = await self._placed(producer, queued)
        pause = RETRY_PAUSE_SECONDS
        while pending:
            failed = await self._send(producer, pending)
            if failed:
                log.warning("outbox: %d batch(es) not acknowledged, sending again in %.0f s", len(failed), pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_RETRY_PAUSE_SECONDS)
            pending = failed

    async def _placed(self, producer, queued: dict) -> list[_Pending]:
        placed: dict[tuple[str, int], _Pending] = {}
        for (topic, partition), records in queued.items():
            if partition is not None:
                placed.setdefault((topic, partition), _Pending(topic, partition)).records.extend(records)
                continue
            partitions = sorted(await producer.partitions_for(topic))
            for key, value in records:
                chosen = self._partitioner(key, partitions, partitions) if key is not None else partitions[0]
                placed.setdefault((topic, chosen), _Pending(topic, chosen)).records.append((key, value))
        return list(placed.values())

    async def _send(self, producer, pending: list[_Pending]) -> list[_Pending]:
        """Send each partition's records as record batches; return those that failed (all of a
        partition's records go again, so a retry can repeat some: the sink dedups typed rows, and
        a changelog entry written twice is the same entry)."""
        futures = []
        failed: dict[int, _Pending] = {}
        for item in pending:
            try:
                for batch in self._batches(producer, item):
                    futures.append((item, await producer.send_batch(batch, item.topic, partition=item.partition)))
            except KafkaError as exc:  # e.g. no room in the producer's queue before its timeout
                log.warning("outbox: cannot queue a batch for %s[%d]: %r", item.topic, item.partition, exc)
                failed[id(item)] = item
        await self._wait_for_acks([future for _item, future in futures])
        results = [future.exception() or future.result() for _item, future in futures]
        for (item, _future), result in zip(futures, results):
            if isinstance(result, BaseException):
                if not isinstance(result, KafkaError):
                    raise result
                log.warning("outbox: send to %s[%d] failed: %r", item.topic, item.partition, result)
                failed[id(item)] = item
        return list(failed.values())

    @staticmethod
    async def _wait_for_acks(futures: list[asyncio.Future]) -> None:
        """Wait for every batch, saying so in the log while the broker keeps us waiting."""
        waited = 0.0
        pending = set(futures)
        while pending:
            _done, pending = await asyncio.wait(pending, timeout=SLOW_ACK_SECONDS)
            if pending:
                waited += SLOW_ACK_SECONDS
                log.warning("outbox: %d batch(es) still not acknowledged after %.0f s", len(pending), waited)

    @staticmethod
    def _batches(producer, item: _Pending):
        """Closed record batches holding the item's records, each up to the producer's batch size."""
        batch = producer.create_batch()
        for key, value in item.records:
            if batch.append(timestamp=None, key=key, value=value) is None:  # full
                batch.close()
                yield batch
                batch = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value)  # an empty batch takes any record
        batch.close()
        yield batch
