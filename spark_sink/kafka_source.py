"""Kafka streaming source for Spark, written with PySpark 4's Python Data Source API.

Why it exists: Spark's `kafka` format lives in a jar that comes from Maven; where it cannot be
loaded (no Maven Central, no `--packages`), `format("tweetlake_kafka")` gives the same columns
(key, value, topic, partition, offset, timestamp, timestampType) and the same option names
(`kafka.bootstrap.servers`, `subscribe` with one topic, `startingOffsets`, `maxOffsetsPerTrigger`,
`failOnDataLoss`, `kafkaConsumer.pollTimeoutMs`). Other `kafka.*` options are passed to librdkafka
unchanged, so they must use librdkafka's property names.

Offsets are Spark-style JSON, `{"<topic>": {"0": next_offset, ...}}`, plus `"@topic_id"` (the
topic's id, so a recreated topic or a restarted in-memory broker is noticed instead of being read
at stale offsets) and `"@data_loss"` (how many data-loss events the query has met so far, persisted
in the checkpoint and visible in the query progress). Kafka topic names cannot contain "@", so
these keys never clash with the topic. Keys come out sorted because Spark compares offsets as JSON
text. Each micro-batch becomes one `KafkaRange` per partition with a non-empty [start, end), read on
an executor by its own consumer that is assigned at `start` and stops at `end`.

End offsets: Tansu answers ListOffsets(LATEST) with the first offset of the partition's last
record batch + 1 (1 instead of 250 after 1,000 records produced with linger into 4 partitions),
while the high watermark in its fetch replies is right. Trusting ListOffsets would hold the tail
of the last producer batch back until more records arrive, forever if production stops. So the
driver learns end offsets from a fetch reply: a probe consumer is assigned at OFFSET_END (librdkafka
resolves that through ListOffsets), waits for the first message or end-of-partition event of each
partition, and reads librdkafka's cached high watermark, which that fetch reply has just set.
- Apache Kafka: ListOffsets(LATEST) is the high watermark; the fetch there is empty and the reply
  carries the same high watermark, so the result equals what Spark's own source computes.
- Tansu: the fetch starts inside the last batch, returns its tail and the true high watermark.
Either way the probe moves at most one producer batch per partition and costs about one round
trip (10-35 ms for 4 partitions on Tansu); `fetch.wait.max.ms` is low so that an empty fetch at the
end of the log comes back at once. Consumers read uncommitted records, like Spark's source by
default, so the high watermark is the right end. Checked by tests/test_kafka_source.py: with
ListOffsets trusted instead, 1,000 batched records read back as 4.

Measured (2 cores shared by Spark local[2] and Tansu, 1 KB values, 4 partitions): 100-120k rows/s
per 100k-row micro-batch once Python workers are up (the first batch of a query pays ~2-4 s of
worker start-up); one executor-side reader alone does ~155k rows/s.

Data loss (topic recreated, offsets gone backwards, partitions gone, records expired before they
were read): with failOnDataLoss=false it is logged as a WARNING with details and reading
continues from what exists; with failOnDataLoss=true the query fails with `DataLossError`.
Events seen on the driver are counted in `@data_loss`; expired records are noticed by the executor
reading them, which can only log them.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Iterator, Mapping

import pyarrow as pa
from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

logger = logging.getLogger(__name__)

SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
    ]
)
# Spark rejects Arrow batches whose schema differs in any way, time zone included.
ARROW_SCHEMA = to_arrow_schema(SCHEMA, timezone="UTC")

EARLIEST, LATEST = -2, -1  # startingOffsets JSON sentinels, as in Spark
TOPIC_ID_KEY = "@topic_id"
DATA_LOSS_KEY = "@data_loss"
BATCH_ROWS = 10_000  # rows per consume() call, hence per Arrow batch
REQUEST_TIMEOUT_S = 30.0


class DataLossError(RuntimeError):
    """Records the query should have read are gone, and failOnDataLoss is true."""


@dataclass(frozen=True)
class SourceOptions:
    bootstrap_servers: str
    topic: str
    starting_offsets: str | dict[int, int]  # "earliest", "latest" or partition -> offset
    max_offsets_per_trigger: int | None
    fail_on_data_loss: bool
    poll_timeout_s: float
    client_config: Mapping[str, str]  # the other kafka.* options, for librdkafka

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> SourceOptions:
        # Spark hands data source options over lower-cased; callers may not.
        opts = {key.lower(): value for key, value in options.items()}
        client = {k[len("kafka.") :]: v for k, v in opts.items() if k.startswith("kafka.")}
        bootstrap = client.pop("bootstrap.servers", "")
        topic = opts.get("subscribe", "").strip()
        if not bootstrap:
            raise ValueError("option kafka.bootstrap.servers is required")
        if not topic or "," in topic:
            raise ValueError(f"option subscribe must name exactly one topic, got {topic!r}")
        max_offsets = opts.get("maxoffsetspertrigger")
        if max_offsets is not None and int(max_offsets) < 1:
            raise ValueError(f"maxOffsetsPerTrigger must be >= 1, got {max_offsets}")
        fail = opts.get("failondataloss", "false").strip().lower()
        if fail not in ("true", "false"):
            raise ValueError(f"failOnDataLoss must be true or false, got {fail!r}")
        starting = _parse_starting_offsets(opts.get("startingoffsets", "earliest"), topic)
        return cls(
            bootstrap_servers=bootstrap,
            topic=topic,
            starting_offsets=starting,
            max_offsets_per_trigger=int(max_offsets) if max_offsets is not None else None,
            fail_on_data_loss=fail == "true",
            poll_timeout_s=int(opts.get("kafkaconsumer.polltimeoutms", "120000")) / 1000,
            client_config=client,
        )

    def consumer_config(self, **overrides: object) -> dict:
        return {
            # librdkafka insists on a group; partitions are assigned, the group is never joined.
            "group.id": "tweetlake-spark-source",
            **self.client_config,
            **overrides,
            "bootstrap.servers": self.bootstrap_servers,
            "enable.auto.commit": False,  # progress lives in Spark's checkpoint only
            "enable.partition.eof": True,  # tells a reader the log ends before its range does
            "isolation.level": "read_uncommitted",  # ends are high watermarks, as in Spark
            "logger": logger,
        }

    def admin_config(self) -> dict:
        return {**self.client_config, "bootstrap.servers": self.bootstrap_servers, "logger": logger}


def _parse_starting_offsets(spec: str, topic: str) -> str | dict[int, int]:
    spec = spec.strip()
    if spec.lower() in ("earliest", "latest"):
        return spec.lower()
    doc = json.loads(spec)
    if set(doc) != {topic}:
        raise ValueError(f"startingOffsets JSON must have exactly the topic {topic!r}: {spec}")
    return {int(p): int(offset) for p, offset in doc[topic].items()}


@dataclass(frozen=True)
class KafkaOffset:
    """A position in the topic: what the checkpoint stores between micro-batches."""

    topic_id: str | None  # None while the topic does not exist
    positions: dict[int, int]  # partition -> next offset to read
    data_loss: int = 0

    def to_json(self, topic: str) -> dict:
        doc = {
            DATA_LOSS_KEY: self.data_loss,
            TOPIC_ID_KEY: self.topic_id,
            topic: {str(p): self.positions[p] for p in sorted(self.positions)},
        }
        return {key: doc[key] for key in sorted(doc)}

    @classmethod
    def from_json(cls, doc: dict, topic: str) -> KafkaOffset:
        positions = {int(p): int(offset) for p, offset in doc.get(topic, {}).items()}
        return cls(doc.get(TOPIC_ID_KEY), positions, int(doc.get(DATA_LOSS_KEY, 0)))


@dataclass
class KafkaRange(InputPartition):
    """Offsets [start, end) of one partition: the work of one Spark task."""

    topic: str
    partition: int
    start: int
    end: int


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: SourceOptions) -> None:
        self.options = options
        self._target: KafkaOffset | None = None  # the end fixed by Trigger.AvailableNow
        self._admin: AdminClient | None = None
        self._probe: Consumer | None = None

    def __getstate__(self) -> dict:
        # The reader is pickled to executors; Kafka clients cannot be, and executors make their own.
        return {**self.__dict__, "_admin": None, "_probe": None}

    # --- driver side -------------------------------------------------------------------------

    def initialOffset(self) -> dict:
        latest = self._latest()
        spec = self.options.starting_offsets
        if spec == "latest":
            positions = latest.positions
        elif spec == "earliest":
            positions = self._earliest(list(latest.positions))
        else:
            positions = self._resolve(spec, latest)
        return KafkaOffset(latest.topic_id, positions).to_json(self.options.topic)

    def getDefaultReadLimit(self) -> ReadLimit:
        limit = self.options.max_offsets_per_trigger
        return ReadAllAvailable() if limit is None else ReadMaxRows(limit)

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = self._latest()

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        topic = self.options.topic
        begin = KafkaOffset.from_json(start, topic)
        latest = self._target or self._latest()
        if latest.topic_id is None:
            if begin.topic_id is not None:
                gone = f"topic {topic} is gone; records from {begin.positions} on were not read"
                if self.options.fail_on_data_loss:
                    raise DataLossError(f"{gone}. Set failOnDataLoss=false to wait for it instead.")
                # Counted once it comes back, as a recreated topic.
                logger.warning("%s; waiting for it to come back", gone)
            return start
        events = self._data_loss_events(begin, latest)
        self._data_loss(events, begin.data_loss)
        ends = latest.positions
        if isinstance(limit, ReadMaxRows):
            ends = _cap(self._bases(begin, latest), ends, limit.max_rows)
        return KafkaOffset(latest.topic_id, ends, begin.data_loss + len(events)).to_json(topic)

    def partitions(self, start: dict, end: dict) -> list[KafkaRange]:
        topic = self.options.topic
        until = KafkaOffset.from_json(end, topic)
        bases = self._bases(KafkaOffset.from_json(start, topic), until)
        # A partition whose offsets went backwards has bases > end: reported, skipped.
        return [
            KafkaRange(topic, p, bases[p], until.positions[p])
            for p in sorted(until.positions)
            if bases[p] < until.positions[p]
        ]

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.close()
        self._probe = self._admin = None  # the admin client has no close(); dropping it closes it

    def _data_loss_events(self, begin: KafkaOffset, latest: KafkaOffset) -> list[str]:
        topic = self.options.topic
        if begin.topic_id is None:
            return []
        if begin.topic_id != latest.topic_id:
            return [
                f"topic {topic} was recreated (id {begin.topic_id} -> {latest.topic_id}); records"
                f" of the old topic from offsets {begin.positions} on were not read"
            ]
        events = [
            f"partition {topic}-{p} is gone; its records from offset {offset} on were not read"
            for p, offset in sorted(begin.positions.items())
            if p not in latest.positions
        ]
        events += [
            f"offsets of {topic}-{p} went backwards from {offset} to {latest.positions[p]}"
            " (broker restarted or log truncated)"
            for p, offset in sorted(begin.positions.items())
            if latest.positions.get(p, offset) < offset
        ]
        return events

    def _data_loss(self, events: list[str], seen: int) -> None:
        for number, event in enumerate(events, start=seen + 1):
            if self.options.fail_on_data_loss:
                raise DataLossError(f"{event}. Set failOnDataLoss=false to log this and go on.")
            logger.warning(
                "data loss #%d: %s (failOnDataLoss=false: going on from what exists)", number, event
            )

    def _bases(self, begin: KafkaOffset, latest: KafkaOffset) -> dict[int, int]:
        """Where reading resumes in each partition of `latest`: the checkpointed offset, or the
        earliest offset for partitions (or a recreated topic) this query has not read yet."""
        known = begin.positions if begin.topic_id == latest.topic_id else {}
        new = [p for p in latest.positions if p not in known]
        return {**self._earliest(new), **{p: known[p] for p in latest.positions if p in known}}

    def _resolve(self, spec: dict[int, int], latest: KafkaOffset) -> dict[int, int]:
        missing = set(latest.positions) - set(spec)
        if missing:
            raise ValueError(
                f"startingOffsets lacks partitions {sorted(missing)} of {self.options.topic}"
            )
        earliest = self._earliest([p for p, offset in spec.items() if offset == EARLIEST])
        resolved = {**spec, **earliest}
        resolved.update({p: latest.positions[p] for p, offset in spec.items() if offset == LATEST})
        return {p: offset for p, offset in resolved.items() if p in latest.positions}

    def _latest(self) -> KafkaOffset:
        """The topic's id and end offsets now; described again after probing so that a topic
        recreated meanwhile is not given the other topic's offsets."""
        described = self._describe()
        while described[0] is not None:
            ends = self._probe_ends(described[1])
            again = self._describe()
            if again == described:
                return KafkaOffset(described[0], ends)
            described = again
        return KafkaOffset(None, {})

    def _describe(self) -> tuple[str | None, list[int]]:
        topic = self.options.topic
        future = self._admin_client().describe_topics(
            TopicCollection([topic]), request_timeout=REQUEST_TIMEOUT_S
        )[topic]
        try:
            description = future.result()
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None, []
            raise
        return str(description.topic_id), sorted(p.id for p in description.partitions)

    def _earliest(self, partitions: list[int]) -> dict[int, int]:
        if not partitions:
            return {}
        # ListOffsets(EARLIEST) is right on Tansu too; only LATEST is broken there.
        futures = self._admin_client().list_offsets(
            {TopicPartition(self.options.topic, p): OffsetSpec.earliest() for p in partitions},
            request_timeout=REQUEST_TIMEOUT_S,
        )
        return {tp.partition: future.result().offset for tp, future in futures.items()}

    def _probe_ends(self, partitions: list[int]) -> dict[int, int]:
        """High watermarks taken from fresh fetch replies (see the module docstring)."""
        topic = self.options.topic
        probe = self._probe_consumer()
        probe.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
        try:
            waiting = set(partitions)
            deadline = time.monotonic() + REQUEST_TIMEOUT_S
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no fetch reply for {topic} partitions {sorted(waiting)}"
                        f" within {REQUEST_TIMEOUT_S} s"
                    )
                message = probe.poll(left)
                if message is None:
                    continue
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("probing end offsets of %s: %s", topic, error)
                    continue
                waiting.discard(message.partition())
            ends = {
                p: probe.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]
                for p in partitions
            }
        finally:
            probe.unassign()
        if min(ends.values(), default=0) < 0:
            raise RuntimeError(f"no high watermark cached for {topic} after fetching: {ends}")
        return ends

    def _admin_client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self.options.admin_config())
        return self._admin

    def _probe_consumer(self) -> Consumer:
        if self._probe is None:
            # A short fetch wait: on Apache Kafka the probe fetches at the very end of the log.
            self._probe = Consumer(self.options.consumer_config(**{"fetch.wait.max.ms": 10}))
            # Without the partition leaders known, librdkafka retries the OFFSET_END lookup
            # only after 500 ms: learn them first.
            self._probe.list_topics(self.options.topic, timeout=REQUEST_TIMEOUT_S)
        return self._probe

    # --- executor side -----------------------------------------------------------------------

    def read(self, partition: KafkaRange) -> Iterator[pa.RecordBatch]:
        consumer = Consumer(self.options.consumer_config(**{"auto.offset.reset": "error"}))
        try:
            yield from _read_range(consumer, partition, self.options)
        finally:
            consumer.close()


def _read_range(
    consumer: Consumer, part: KafkaRange, options: SourceOptions
) -> Iterator[pa.RecordBatch]:
    tp = TopicPartition(part.topic, part.partition, part.start)
    consumer.assign([tp])
    position = part.start
    deadline = time.monotonic() + options.poll_timeout_s
    while position < part.end:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no record of {part.topic}-{part.partition} at offset {position} (reading up"
                f" to {part.end}) within kafkaConsumer.pollTimeoutMs"
                f"={options.poll_timeout_s * 1000:.0f}"
            )
        columns = _Columns(part)
        # Ask for exactly what is left: consume() waits its whole timeout when fewer arrive.
        messages = consumer.consume(min(part.end - position, BATCH_ROWS), timeout=1.0)
        # Tansu answers a fetch past the end of its log with no records rather than with
        # OFFSET_OUT_OF_RANGE; the high watermark of that answer shows it.
        if not messages and 0 <= consumer.get_watermark_offsets(tp, cached=True)[1] < position:
            _log_cut_short(part, position, options)
            return
        for message in messages:
            error = message.error()
            if error is None:
                if message.offset() >= part.end:
                    position = part.end
                    break
                columns.add(message)
                position = message.offset() + 1
            elif error.code() == KafkaError._PARTITION_EOF:
                # Offsets skipped at the end (transaction markers) are no loss; a log that now
                # ends before the range does (topic recreated, log truncated) is.
                if message.offset() < part.end:
                    _executor_data_loss(
                        f"{part.topic}-{part.partition} now ends at {message.offset()}; offsets up"
                        f" to {part.end} were expected, records in between are gone", options
                    )
                position = part.end
                break
            elif error.code() == KafkaError._AUTO_OFFSET_RESET:
                low, _ = consumer.get_watermark_offsets(tp, timeout=REQUEST_TIMEOUT_S)
                if low > position:  # expired (retention): what is left starts at `low`
                    _executor_data_loss(
                        f"offsets {position}-{low - 1} of {part.topic}-{part.partition} expired"
                        " before they were read", options
                    )
                    position = low
                    consumer.assign([TopicPartition(part.topic, part.partition, low)])
                else:
                    _log_cut_short(part, position, options)
                    position = part.end
                break
            elif error.fatal() or not error.retriable():
                raise KafkaException(error)
            else:
                logger.warning("reading %s-%s: %s", part.topic, part.partition, error)
        if columns.offsets:
            yield columns.batch()
            deadline = time.monotonic() + options.poll_timeout_s


def _log_cut_short(part: KafkaRange, position: int, options: SourceOptions) -> None:
    _executor_data_loss(
        f"offset {position} of {part.topic}-{part.partition} is beyond the end of the log;"
        f" offsets up to {part.end} were expected", options
    )


def _executor_data_loss(event: str, options: SourceOptions) -> None:
    if options.fail_on_data_loss:
        raise DataLossError(f"{event}. Set failOnDataLoss=false to log this and go on.")
    logger.warning("data loss: %s (failOnDataLoss=false: going on from what exists)", event)


class _Columns:
    """Rows of one partition, gathered column by column for one Arrow batch."""

    def __init__(self, part: KafkaRange) -> None:
        self.part = part
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.offsets: list[int] = []
        self.timestamps: list[int | None] = []
        self.types: list[int] = []

    def add(self, message: Message) -> None:
        kind, millis = message.timestamp()
        self.keys.append(message.key())
        self.values.append(message.value())
        self.offsets.append(message.offset())
        # librdkafka counts timestamp types from 0 = none; Kafka's Java client, and Spark, from -1.
        self.types.append(kind - 1)
        self.timestamps.append(millis * 1000 if kind else None)

    def batch(self) -> pa.RecordBatch:
        rows = len(self.offsets)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(self.keys, pa.binary()),
                pa.array(self.values, pa.binary()),
                pa.array([self.part.topic] * rows, pa.string()),
                pa.array([self.part.partition] * rows, pa.int32()),
                pa.array(self.offsets, pa.int64()),
                pa.array(self.timestamps, ARROW_SCHEMA.field("timestamp").type),
                pa.array(self.types, pa.int32()),
            ],
            schema=ARROW_SCHEMA,
        )


def _cap(bases: dict[int, int], ends: dict[int, int], max_rows: int) -> dict[int, int]:
    """Ends that read at most `max_rows`, shared between partitions in proportion to their
    backlog (as Spark's source does), rounding so that exactly `max_rows` are read."""
    backlog = {p: max(0, end - bases[p]) for p, end in ends.items()}
    total = sum(backlog.values())
    if total <= max_rows:
        return ends
    share = {p: max_rows * size // total for p, size in backlog.items()}
    remainder = {p: max_rows * size % total for p, size in backlog.items()}
    # Rows left by rounding down go first to partitions that would get none, so a small
    # partition next to a busy one is not starved, then to the largest remainders.
    rounded_down = sorted(
        (p for p in backlog if remainder[p]), key=lambda p: (share[p] > 0, -remainder[p], p)
    )
    for p in rounded_down[: max_rows - sum(share.values())]:
        share[p] += 1
    return {p: bases[p] + share[p] if backlog[p] else end for p, end in ends.items()}


class KafkaDataSource(DataSource):
    """`spark.readStream.format("tweetlake_kafka")`: Kafka without Spark's Kafka jar."""

    @classmethod
    def name(cls) -> str:
        return "tweetlake_kafka"

    def schema(self) -> StructType:
        return SCHEMA

    def streamReader(self, schema: StructType) -> KafkaStreamReader:
        return KafkaStreamReader(SourceOptions.parse(self.options))
