"""Backfill: ingest archived tweets through the same path as the live stream (raw topic -> the
filter/normalize agent -> typed topic -> the Spark sink), so archived and live tweets are decided,
deduplicated and laid out by the same code.

Without KAFKA_BOOTSTRAP_SERVERS the backfill runs that whole path itself, apart from a running
`make run`: its own embedded broker on a free port, a Faust worker of its own, then the sink once
with the available-now trigger. With KAFKA_BOOTSTRAP_SERVERS it only publishes to that Kafka's
raw topic; the workers and sink already running there do the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from agents.counters import worker_counters
from agents.sources.archive import ArchiveError, ArchiveFile, RawMessage
from engines.broker import Broker, wait_for_broker
from config.settings import Settings, get_settings
from datalake import layout
from datalake.commits import RunCounts, run_counts
from datalake.errors import LakeError
from datalake.lake import Lake
from datalake.layout import GOLD_TABLES, SILVER, Zone
from pipeline.errors import BackfillError
from pipeline.processes import Process, free_port, start_sink, start_worker
from datalake.layout import LAKE_BUSY
from pipeline.progress import Progress
from tweets.oversize import for_raw_topic

DESCRIPTION = """\
Ingest archived tweets (one JSON document a line, plain or gzip) through the same path as the
live stream: raw topic -> the Faust filter/normalize agent -> typed topic -> the Spark sink ->
bronze parquet (rejected lines: the dead-letter topic -> quarantine/dead_letter).

Lines may be X API v2 stream messages, X API v2 pages ({"data": [...], "includes": ...,
"meta": ...}, as twarc2 and the search/timeline endpoints write them; split into one message per
tweet with the expansions it refers to), bare v2 tweets (twarc2 flattened) or v1.1 statuses.
Lines that hold no tweet (not JSON, truncated, errors, empty pages) are published too, so they
end up in quarantine with a reason; blank lines are skipped.

KAFKA_BOOTSTRAP_SERVERS unset (the default): the backfill runs everything itself, isolated from a
running `make run`: an embedded Kafka on free ports (its data in a temporary folder), the
project's topics, a Faust worker (SOURCE=none, FILTER from --filter, its own state in a
temporary folder), then
`spark-submit spark_sink/bronze.py --available-now` with its checkpoints in
LAKE/_checkpoints/backfill-<UTC time> (the offsets belong to this run's broker). The sink writes
into the lake's Delta tables as the live sink does (bronze by an insert-only MERGE on tweet_id),
each commit naming the run, so the counts below come from the tables' logs. Each run pays the
start-up of its broker, worker and Spark (about 30 s on two cores). Progress goes to stderr. The
last stdout line is one JSON object:
read (raw messages the worker read = published, pages split), accepted, filtered, duplicates,
rejected (read = accepted + filtered + duplicates + rejected), bronze_rows (rows this run added
to bronze), quarantine_rows, forgotten, already_in_lake, deletions_logged, silver_rows (rows silver gained: after landing, the silver job and
then the gold job run with the available-now trigger, in one Spark application,
spark_sink/refine.py; null when a running `make run` holds the lake's silver and gold and refines
them itself, or with --no-silver), gold_rows (rows of the gold tables once gold has recomputed the
hours silver changed; null likewise), files, lines, seconds, tweets_per_s. Exit 0 when every accepted
tweet is in bronze and every rejected message in quarantine, 1 otherwise.

KAFKA_BOOTSTRAP_SERVERS set: only publish to that Kafka's raw topic (keyed by tweet id); the
workers and sink running there filter, deduplicate and write. The JSON then has read and
published, and null for the counts only those processes know. --filter and --lake-root do not
apply: the running processes use their own settings.

Deduplication: within one backfill, a repeated tweet id is counted once (duplicates). Bronze takes
a tweet id once whoever writes it: tweet ids bronze holds already (an archive backfilled twice,
tweets the live stream stored, even while this runs) are not written again (already_in_lake), and
the tweets the lake's forgotten log names (deleted on X, `lake forget`) are left out (forgotten);
delete messages met in the archives join that log (deletions_logged) and leave the lake's zones
too. So bronze_rows + typed_unreadable rows + forgotten + already_in_lake = accepted. Silver holds
each post once.
"""

WORKER_STALL_SECONDS = 120.0
SINK_SECONDS = 600.0
SILVER_SECONDS = 3600.0


# --- publishing ---------------------------------------------------------------------------------


class Outgoing(NamedTuple):
    """A raw message to publish and where it came from (named in errors and progress lines)."""

    message: RawMessage
    origin: str


@dataclass
class Publication:
    """What reached the raw topic: how many messages, and the end offset of each partition."""

    published: int = 0
    ends: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def delivered(self, error, message) -> None:
        if error is not None:
            self.errors.append(str(error))
            return
        self.published += 1
        self.ends[message.partition()] = max(self.ends.get(message.partition(), 0), message.offset() + 1)


def publish(outgoing: Iterable[Outgoing], bootstrap_servers: str, topic: str, rate: float | None,
            progress: Progress, max_payload_bytes: int) -> Publication:
    """Every message to `topic` (from archive files, or a lake's dead letters), in batches, at most
    `rate` a second if given; a message over `max_payload_bytes` as its preview, for the worker to
    reject as too large."""
    producer = Producer({
        "bootstrap.servers": bootstrap_servers,
        # Every in-sync replica has a message before it counts as delivered, and a retried send is
        # written once (librdkafka keeps the order with up to 5 requests in flight).
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "batch.size": 1 << 20,
        "queue.buffering.max.kbytes": 1 << 18,
        "log_level": 2,
    })
    publication = Publication()
    started = time.monotonic()
    sent = 0
    for message, origin in outgoing:
        value, headers = for_raw_topic(message.payload, max_payload_bytes)
        _produce(producer, topic, message.key, value, headers, publication, origin)
        sent += 1
        elapsed = time.monotonic() - started
        if rate and sent / rate > elapsed:
            producer.poll(sent / rate - elapsed)
        progress.show(f"published {sent} messages ({sent / max(elapsed, 1e-3):.0f}/s), now {origin}")
    remaining = producer.flush(60)
    publication.seconds = time.monotonic() - started
    if remaining or publication.errors:
        shown = "; ".join(sorted(set(publication.errors))[:5])
        raise BackfillError(f"{remaining + len(publication.errors)} of {sent} messages not delivered to {topic}: {shown}")
    progress.show(f"published {sent} messages in {publication.seconds:.1f}s "
                  f"({sent / max(publication.seconds, 1e-3):.0f}/s)", permanent=True)
    return publication


def archive_messages(archives: list[ArchiveFile], progress: Progress) -> Iterator[Outgoing]:
    """The files' raw messages, with a line of counts on stderr as each file is done."""
    for archive in archives:
        for message in archive.messages():
            yield Outgoing(message, f"{archive.path}:{archive.counts.lines}")
        counts = archive.counts
        cut = ", GZIP CUT SHORT: the rest of the file is missing" if counts.gzip_cut_short else ""
        progress.show(f"{archive.path}: {counts.lines} lines, {counts.blank} blank, {counts.pages} pages, "
                      f"{counts.tweets} tweets, {counts.not_tweets} without a tweet{cut}", permanent=True)


def _produce(producer: Producer, topic: str, key: bytes | None, payload: bytes, headers: list,
             publication: Publication, where: str) -> None:
    while True:
        try:
            producer.produce(topic, payload, key, headers=headers or None, on_delivery=publication.delivered)
            producer.poll(0)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
        except KafkaException as error:
            raise BackfillError(f"{where}: cannot publish this message ({len(payload)} bytes): {error}") from error


# --- the worker ---------------------------------------------------------------------------------


def wait_for_worker(worker: Process, settings: Settings, publication: Publication, progress: Progress) -> dict:
    """Until the worker has read every published message and committed its offsets: Faust flushes
    its producer before it commits, so the typed and dead-letter records are then all on the broker."""
    last_read, changed_at = -1, time.monotonic()
    while True:
        if not worker.alive():
            raise BackfillError(f"the Faust worker exited (code {worker.popen.returncode}) before reading "
                                f"everything; its log ends with:\n{worker.log_tail()}")
        counters = worker_counters(settings.faust_web_port)
        read = counters.get("read", 0)
        if read != last_read:
            last_read, changed_at = read, time.monotonic()
        status = (f"worker: read {read} of {publication.published}, accepted {counters.get('accepted', 0)}, "
                  f"filtered {counters.get('filtered', 0)}, duplicates {counters.get('duplicates', 0)}, "
                  f"rejected {counters.get('rejected', 0)}")
        if counters and read >= publication.published and committed(settings, publication.ends):
            progress.show(status, permanent=True)
            return counters
        progress.show(status)
        if time.monotonic() - changed_at > WORKER_STALL_SECONDS:
            raise BackfillError(f"the Faust worker read nothing new for {WORKER_STALL_SECONDS:.0f}s ({read} of "
                                f"{publication.published} messages); its log ends with:\n{worker.log_tail()}")
        time.sleep(0.5)


def committed(settings: Settings, ends: dict[int, int]) -> bool:
    """Whether the worker's consumer group has committed every partition up to its end."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.faust_app_id,
                         "enable.auto.commit": False, "log_level": 2})
    try:
        offsets = consumer.committed([TopicPartition(settings.topic_raw, p) for p in ends], timeout=5)
    except KafkaException:
        return False
    finally:
        consumer.close()
    return all(tp.offset >= ends[tp.partition] for tp in offsets)


# --- the sink and the lake ----------------------------------------------------------------------


def run_spark_job(settings: Settings, workdir: Path, progress: Progress, *args: str, job: str = "bronze",
                  limit: float = SINK_SECONDS) -> int:
    """A Spark job (spark_sink.submit) with the available-now trigger, to its end; its exit code:
    0, or LAKE_BUSY when a running silver or gold job holds the lake."""
    started = time.monotonic()
    with start_sink(settings, workdir, "--available-now", *args, job=job, name=job) as process:
        while process.alive():
            elapsed = time.monotonic() - started
            if elapsed > limit:
                raise BackfillError(f"the Spark {job} job did not finish within {limit:.0f}s; "
                                    f"its log ends with:\n{process.log_tail()}")
            progress.show(f"{job}: spark-submit spark_sink/{job}.py --available-now running for {elapsed:.0f}s")
            time.sleep(1)
        code = process.popen.returncode
        if code not in (0, LAKE_BUSY):
            raise BackfillError(f"the Spark {job} job failed (exit code {code}); its log ends with:\n{process.log_tail()}")
    progress.show(f"{job}: done in {time.monotonic() - started:.0f}s", permanent=True)
    return code


def refine(settings: Settings, lake: Lake, progress: Progress, vacuum: tuple[Zone, ...] = ()
           ) -> tuple[int | None, int | None]:
    """Bring silver up to date with bronze (the run's rows landed there), then gold with silver
    (spark_sink/refine.py, one Spark application, no metrics port: a running `make run` has
    those), then VACUUM `vacuum`. The rows silver gained and gold's rows (every table); (None,
    None) when a running silver or gold job (`make run`) holds the lake and refines them itself."""
    before = lake.rows(SILVER)
    arguments = ["--vacuum", *(zone.path for zone in vacuum)] if vacuum else []
    with tempfile.TemporaryDirectory(prefix="tweetlake-refine-") as workdir:
        code = run_spark_job(settings.model_copy(update={"lake_root": lake.shown_root, "spark_metrics_port": 0}),
                             Path(workdir), progress, *arguments, job="refine", limit=SILVER_SECONDS)
    if code == LAKE_BUSY:
        progress.show("silver, gold: the running silver and gold jobs hold the lake and refine the new bronze rows "
                      "themselves", permanent=True)
        return None, None
    return lake.rows(SILVER) - before, sum(lake.rows(table) for table in GOLD_TABLES)


# --- the two ways to run ------------------------------------------------------------------------


def run_settings(settings: Settings, workdir: Path, lake_root: str, run_name: str) -> Settings:
    """The settings of this run's broker, worker and sink: nothing shared with a running `make run`
    but the lake's tables; the sink's checkpoints are the run's own."""
    return settings.model_copy(update={
        "kafka_bootstrap_servers": None,
        "broker_host": "127.0.0.1",
        "broker_port": free_port(),
        "kafka_controller_port": free_port(),
        "kafka_data_dir": workdir / "kafka",
        "faust_web_port": free_port(),
        "faust_data_dir": workdir / "faust",
        "spark_metrics_port": 0,
        "source": "none",
        "lake_root": lake_root,
        "checkpoint_root": f"{layout.checkpoints(lake_root)}/{run_name}",
    })


def open_lake(settings: Settings) -> Lake:
    """LAKE_ROOT (a local folder is created if missing), shown as an absolute path or URI."""
    lake_root = settings.lake_root.rstrip("/") if "://" in settings.lake_root else os.path.abspath(settings.lake_root)
    if "://" not in lake_root:
        os.makedirs(lake_root, exist_ok=True)
    try:
        return Lake.of(settings, lake_root)
    except LakeError as error:
        raise BackfillError(str(error)) from error


@dataclass
class PipelineRun:
    """A run of the whole path whose sink has finished: what it wrote, from the tables' logs."""

    name: str
    settings: Settings
    lake: Lake
    publication: Publication
    counters: dict
    counts: RunCounts
    stage_seconds: dict[str, float]
    started: float


@contextmanager
def pipeline_run(outgoing: Iterable[Outgoing], settings: Settings, rate: float | None, progress: Progress,
                 kind: str = "backfill", dead_letters_to: str | None = None) -> Iterator[PipelineRun]:
    """The whole path on a broker, worker and sink of this run's own, writing into the lake's
    tables (dead letters into `dead_letters_to` instead, if given)."""
    started = time.monotonic()
    started_ms = int(time.time() * 1000) - 1000
    run_name = f"{kind}-{layout_stamp()}"
    lake = open_lake(settings)
    with ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix=f"tweetlake-{kind}-")))
        run = run_settings(settings, workdir, lake.shown_root, run_name)
        progress.show(f"{run_name}: broker on {run.bootstrap_servers}, FILTER={run.filter}, lake {lake.shown_root}",
                      permanent=True)
        broker = Broker(run)
        cleanup.callback(broker.stop)
        broker.start()
        worker = cleanup.enter_context(start_worker(run, workdir))

        publication = publish(outgoing, run.bootstrap_servers, run.topic_raw, rate, progress, run.max_payload_bytes)
        worker_started = time.monotonic()
        counters = wait_for_worker(worker, run, publication, progress)
        worker.stop()
        worker_seconds = time.monotonic() - worker_started

        sink_started = time.monotonic()
        arguments = ["--run", run_name] + (["--dead-letters-to", dead_letters_to] if dead_letters_to else [])
        run_spark_job(run, workdir, progress, *arguments)
        seconds = {"publish": round(publication.seconds, 1), "worker": round(worker_seconds, 1),
                   "sink": round(time.monotonic() - sink_started, 1)}
    counts = run_counts(lake, run_name, started_ms, dead_letters_to)
    yield PipelineRun(run_name, run, lake, publication, counters, counts, seconds, started)


def layout_stamp() -> str:
    """A sortable UTC time for a run's name: 20240501T070000123456Z."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def run_report(run: PipelineRun) -> dict:
    """The counts of a run (the backfill's JSON, and the start of the replay's), with `error`
    when they do not add up."""
    seconds = time.monotonic() - run.started
    counters, counts = run.counters, run.counts
    report = {
        "read": counters["read"],
        "published": run.publication.published,
        **{key: counters[key] for key in ("accepted", "filtered", "duplicates", "rejected")},
        "bronze_rows": counts.bronze_rows,
        "quarantine_rows": counts.quarantine_rows,
        "forgotten": counts.forgotten_tweets + counts.forgotten_letters,
        "already_in_lake": counts.already_in_lake,
        "deletions_logged": counts.deletions_logged,
        "lake_files_added": counts.files_added,
        "filtered_by_reason": counters["filtered_by_reason"],
        "rejected_by_reason": counters["rejected_by_reason"],
        "seconds": round(seconds, 1),
        "tweets_per_s": round(run.publication.published / seconds, 1),
        "stage_seconds": run.stage_seconds,
        "lake_root": run.lake.shown_root,
        "checkpoints": run.settings.checkpoint_root,
    }
    problems = _problems(report, counts)
    if problems:
        report["error"] = "; ".join(problems)
    return report


def run_embedded(paths: list[Path], settings: Settings, rate: float | None, progress: Progress,
                 silver: bool = True) -> dict:
    """The whole path on a broker, worker and sink of this run's own."""
    archives = [ArchiveFile(path) for path in paths]
    with pipeline_run(archive_messages(archives, progress), settings, rate, progress) as run:
        report = run_report(run) | _archive_summary(archives)
    started = time.monotonic()
    report["silver_rows"], report["gold_rows"] = refine(settings, run.lake, progress) if silver else (None, None)
    report["stage_seconds"]["silver_gold"] = round(time.monotonic() - started, 1)
    return report


def run_external(paths: list[Path], settings: Settings, rate: float | None, progress: Progress) -> dict:
    """Only publish: the processes on that Kafka decide and write; their counts are theirs."""
    started = time.monotonic()
    wait_for_broker(settings.bootstrap_servers, timeout=30)
    archives = [ArchiveFile(path) for path in paths]
    publication = publish(archive_messages(archives, progress), settings.bootstrap_servers, settings.topic_raw,
                          rate, progress, settings.max_payload_bytes)
    seconds = time.monotonic() - started
    unknown = dict.fromkeys(("accepted", "filtered", "duplicates", "rejected", "bronze_rows", "quarantine_rows",
                             "silver_rows", "gold_rows"))
    return {
        "read": publication.published,
        "published": publication.published,
        **unknown,
        **_archive_summary(archives),
        "seconds": round(seconds, 1),
        "tweets_per_s": round(publication.published / seconds, 1),
        "bootstrap_servers": settings.bootstrap_servers,
        "topic": settings.topic_raw,
    }


def _archive_summary(archives: list[ArchiveFile]) -> dict:
    counts = [archive.counts for archive in archives]
    return {
        "files": len(archives),
        "lines": sum(c.lines for c in counts),
        "blank_lines": sum(c.blank for c in counts),
        "pages": sum(c.pages for c in counts),
        "gzip_cut_short": [str(a.path) for a in archives if a.counts.gzip_cut_short],
    }


def _problems(report: dict, counts: RunCounts) -> list[str]:
    """Every message must be accounted for, by the worker and again by the sink's commits: every
    accepted tweet in bronze (added now, or there already) or left out as forgotten, every
    rejected message in quarantine or left out as forgotten."""
    problems = []
    if report["read"] != report["published"]:
        problems.append(f"the worker read {report['read']} messages, {report['published']} were published")
    decided = sum(report[key] for key in ("accepted", "filtered", "duplicates", "rejected"))
    if decided != report["read"]:
        problems.append(f"accepted + filtered + duplicates + rejected = {decided}, not read = {report['read']}")
    if counts.tweets_read + counts.unreadable_read != report["accepted"]:
        problems.append(f"{report['accepted']} tweets accepted, the sink read {counts.tweets_read} "
                        f"(+ {counts.unreadable_read} it could not read)")
    landed = counts.bronze_rows + counts.already_in_lake + counts.unreadable_rows + counts.forgotten_tweets
    if landed != report["accepted"]:
        problems.append(f"{report['accepted']} tweets accepted, {counts.bronze_rows} bronze rows added "
                        f"(+ {counts.already_in_lake} in the lake already, {counts.unreadable_rows} in "
                        f"quarantine/typed_unreadable, {counts.forgotten_tweets} forgotten)")
    if counts.dead_letter_rows + counts.forgotten_letters != report["rejected"]:
        problems.append(f"{report['rejected']} messages rejected, {counts.dead_letter_rows} quarantine rows "
                        f"(+ {counts.forgotten_letters} forgotten)")
    return problems


# --- command line -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m pipeline.backfill", description=DESCRIPTION,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("files", metavar="FILE", nargs="+", type=Path, help="archive files (JSON lines, plain or gzip)")
    cli.add_argument("--filter", choices=("topics", "none"),
                     help="topics: keep on-topic tweets in LANGUAGES; none: keep every valid tweet "
                          "(default: the FILTER setting)")
    cli.add_argument("--lake-root", metavar="PATH", help="the lake to write to (default: the LAKE_ROOT setting)")
    cli.add_argument("--no-silver", action="store_true",
                     help="land bronze only and leave silver and gold as they are (silver_rows, gold_rows null); the "
                          "next backfill or the running silver and gold jobs refine the new rows, e.g. after a "
                          "series of backfills")
    cli.add_argument("--rate", metavar="N", type=float,
                     help="publish at most N raw messages per second (default: as fast as the broker takes them)")
    return cli


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    settings = get_settings()
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        cli.error(f"no such file: {', '.join(missing)}")
    if args.rate is not None and args.rate <= 0:
        cli.error("--rate must be positive")
    progress = Progress()
    try:
        if settings.embedded_broker:
            overrides = {"filter": args.filter or settings.filter, "lake_root": args.lake_root or settings.lake_root}
            report = run_embedded(args.files, settings.model_copy(update=overrides), args.rate, progress,
                                  silver=not args.no_silver)
        else:
            if args.filter or args.lake_root:
                cli.error("--filter and --lake-root apply only without KAFKA_BOOTSTRAP_SERVERS: the workers "
                          "and sink on that Kafka use their own settings")
            report = run_external(args.files, settings, args.rate, progress)
    except (BackfillError, ArchiveError, TimeoutError, OSError) as error:
        print(f"backfill failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("backfill interrupted: its broker, worker and sink are stopped", file=sys.stderr)
        return 130
    print(json.dumps(report))
    if "error" in report:
        print(f"backfill incomplete: {report['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
