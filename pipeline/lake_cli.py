"""`lake`: look into the lake's Delta tables and keep them tidy, without Spark (deltalake reads
every table through its log, on a local folder or on hdfs://).

Each command's options: `lake COMMAND --help`; examples, output and exit codes: docs/lake.md,
"Looking into the lake: `lake`".
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake.exceptions import DeltaError

from config.settings import Settings, get_settings
from datalake import layout
from datalake.display import human_size, iso_utc, plural
from datalake.errors import BadInput, LakeError
from datalake.table_deletes import count_forgotten
from datalake.forgotten_log import Forgotten, read_log
from datalake.lake import Lake, plain, retrying
from datalake.layout import BRONZE, GOLD_TABLES, PARTITION_COLUMNS, QUARANTINE_ZONES, SILVER, ZONES, Zone
from datalake.where import Where

REPLAY_DESCRIPTION = """\
Send the original bytes of quarantined dead letters (quarantine/dead_letter) through the
pipeline again: raw topic -> the Faust filter/normalize agent -> the Spark sink, on a broker,
worker and sink of the replay's own (as `python -m pipeline.backfill` runs them; about 30 s of
start-up). Use it after a normalizer fix, or with a larger MAX_PAYLOAD_BYTES.

Each replayed letter leaves quarantine: a tweet accepted now is in bronze (once: bronze takes a
tweet id once, whoever writes it), a filtered one is counted, and one that fails again is replaced
by its new dead letter (new reason and message). Removing the replayed letters and adding the new
ones is one Delta commit, so a replay interrupted before it changes nothing in quarantine, and a
second replay re-sends only the letters that still fail.

Not replayed, left as they are: letters whose original bytes quarantine does not hold (a
too_large letter keeps only its first 65536 bytes), and letters larger than MAX_PAYLOAD_BYTES now
(their new dead letter would keep only a preview).

Progress goes to stderr; the last stdout line is one JSON object: replayed (letters sent), the
backfill's counts (read = accepted + filtered + duplicates + rejected, bronze_rows,
quarantine_rows: rows this run added, already_in_lake), quarantine_removed (old letters removed),
replayed_by_reason and recovered_by_reason (by their old reason: all sent, and those that no
longer fail), still_failing (= rejected, by new reason), not_replayable (by reason), lake_root.
Exit 0 when the counts add up (accepted = new bronze rows + already there, rejected = new
quarantine rows); otherwise 1, and quarantine is left as it was.
Only without KAFKA_BOOTSTRAP_SERVERS: removing a letter needs its outcome, which only the
replay's own worker and sink report.
"""

FORGET_DESCRIPTION = """\
Remove the tweets X says were deleted (or whose users were deleted, protected or suspended) from
every zone. Their ids go to the forgotten log (LAKE/_forgotten) first, so the sink, the silver job
and later backfills leave them out; then one Delta DELETE per table removes their rows from bronze,
quarantine and silver (safe while the pipeline runs: a writer that read the log before it changed
deletes the new ids itself after its commit), and gold recomputes the hours silver lost, by the
refine job, or by the running gold job. A bad line is reported and skipped.

The deleted rows leave every table's current version at once; their text stays in files older
versions use (and in silver's change feed) until VACUUM removes them after LAKE_RETENTION_HOURS
(time travel can show them until then). The run VACUUMs the tables it changed with that
retention (silver through the refine job, or the running silver job's schedule): 0 purges at once.

The last stdout line is JSON: ids_asked, tweet_ids, user_ids, bad_lines, ignored_lines,
rows_removed per zone, files_rewritten, pending, seconds, and purge: retention_hours, purged (the
tables whose deleted text has left the disk), awaiting (table: the time by which VACUUM removes it
from the others). Exit 0 when every zone is clean, 1 if something is still pending (run it
again), 2 for a file that cannot be read.
"""

SHOW_COLUMNS = ["created_at", "author_username", "lang", "topics", "text"]
# The commands that only read: on hdfs:// (where a missing folder cannot be told from an empty
# one), a root without any table is taken for a mistyped path.
READERS = ("ls", "stats", "show", "history", "verify", "compact")


def table_summary(lake: Lake, zone: Zone) -> dict:
    """Rows, files, partitions and bytes of the zone's current version, from its log."""
    files = lake.files(zone)
    if files is None or files.num_rows == 0:
        return {"rows": 0, "files": 0, "partitions": 0, "bytes": 0, "version": None if files is None else
                lake.table(zone).version()}
    return {"rows": sum(files.column("num_records").to_pylist()), "files": files.num_rows,
            "partitions": len(partitions_of(zone, files)), "bytes": sum(files.column("size_bytes").to_pylist()),
            "version": lake.table(zone).version()}


def partitions_of(zone: Zone, files: pa.Table) -> dict[str, list[dict]]:
    """The files of each partition (dt=…/hour=…), by partition path."""
    found: dict[str, list[dict]] = {}
    for row in files.to_pylist():
        key = layout.partition_path([(column, row[f"partition.{column}"]) for column in zone.partitions])
        found.setdefault(key, []).append(row)
    return found


# --- ls ----------------------------------------------------------------------------------------


def ls(lake: Lake, args: argparse.Namespace) -> int:
    if args.zone is None:
        print(f"{'VERSION':>7} {'PARTITIONS':>10} {'FILES':>7} {'SIZE':>10} {'ROWS':>10}  ZONE")
        for zone in ZONES:
            summary = table_summary(lake, zone)
            version = "-" if summary["version"] is None else summary["version"]
            print(f"{version:>7} {summary['partitions']:>10} {summary['files']:>7} {human_size(summary['bytes']):>10} "
                  f"{summary['rows']:>10}  {zone}")
        return 0
    zone = as_zone(args.zone)
    files = lake.files(zone)
    if files is None:
        print(f"{zone}: no table yet")
        return 0
    groups = partitions_of(zone, files)
    if args.dt:
        groups = {key: rows for key, rows in groups.items() if key.startswith(f"dt={args.dt}")}
    chosen = [row for rows in groups.values() for row in rows]
    print(f"{zone} (version {lake.table(zone).version()}): {plural(len(groups), 'partition')}, "
          f"{plural(len(chosen), 'file')}, {human_size(sum(r['size_bytes'] for r in chosen))}, "
          f"{plural(sum(r['num_records'] or 0 for r in chosen), 'row')}")
    print(f"{'SIZE':>10} {'ROWS':>10}  PATH")
    for key in sorted(groups):
        rows = groups[key]
        print(f"{human_size(sum(r['size_bytes'] for r in rows)):>10} {sum(r['num_records'] or 0 for r in rows):>10}  "
              f"{zone}/{key + '/' if key else ''} ({plural(len(rows), 'file')})")
        for row in sorted(rows, key=lambda r: r["path"]):
            print(f"{human_size(row['size_bytes']):>10} {row['num_records'] or 0:>10}  {zone}/{row['path']}")
    return 0


# --- stats -------------------------------------------------------------------------------------


def stats(lake: Lake, args: argparse.Namespace) -> int:
    summary = {zone: table_summary(lake, zone) for zone in ZONES}
    low, high = created_at_range(lake)
    print(f"lake {lake.shown_root}")
    for zone, numbers in summary.items():
        version = "no table yet" if numbers["version"] is None else f"version {numbers['version']}"
        print(f"  {zone}: {plural(numbers['rows'], 'row')} in {plural(numbers['files'], 'file')}, "
              f"{plural(numbers['partitions'], 'partition')}, {human_size(numbers['bytes'])} ({version})")
    print(f"  bronze created_at: {iso_utc(low) or '-'} .. {iso_utc(high) or '-'}")
    if args.json:
        bronze = summary[BRONZE]
        print(json.dumps({
            "lake_root": lake.shown_root,
            "rows": bronze["rows"],
            "files": bronze["files"],
            "partitions": bronze["partitions"],
            "bytes": bronze["bytes"],
            "min_created_at": iso_utc(low),
            "max_created_at": iso_utc(high),
            "quarantine_rows": sum(summary[zone]["rows"] for zone in QUARANTINE_ZONES),
            "quarantine_files": sum(summary[zone]["files"] for zone in QUARANTINE_ZONES),
            "silver_rows": summary[SILVER]["rows"],
            "silver_files": summary[SILVER]["files"],
            "gold_rows": sum(summary[table]["rows"] for table in GOLD_TABLES),
            "gold_files": sum(summary[table]["files"] for table in GOLD_TABLES),
        }))
    return 0


def created_at_range(lake: Lake) -> tuple[datetime | None, datetime | None]:
    """Bronze's created_at range from the log's file statistics (a file without them is read)."""
    files = lake.files(BRONZE)
    if files is None or files.num_rows == 0:
        return None, None
    lows, highs = files.column("min.created_at"), files.column("max.created_at")
    if lows.null_count or highs.null_count:
        extremes = pc.min_max(lake.read(BRONZE, ["created_at"]).column("created_at"))
        return extremes["min"].as_py(), extremes["max"].as_py()
    return pc.min(lows).as_py(), pc.max(highs).as_py()


# --- show --------------------------------------------------------------------------------------


def show(lake: Lake, args: argparse.Namespace) -> int:
    zone = as_zone(args.zone)
    table = lake.table(zone, as_of=args.as_of)
    if table is None:
        print(f"{zone} is empty")
        return 0
    dataset = table.to_pyarrow_dataset()
    where = Where.parse(args.where, dataset.schema) if args.where else None
    columns = SHOW_COLUMNS + ([where.column] if where and not where.on_partition and where.column not in SHOW_COLUMNS
                              else [])
    partitions = sorted({tuple(p[column] for column in PARTITION_COLUMNS) for p in table.partitions()}, reverse=True)
    if not partitions:
        print(f"{zone} is empty" + (f" at version {args.as_of}" if args.as_of is not None else ""))
        return 0
    found: list[pa.Table] = []
    for dt, hour in partitions:  # newest first: partitions follow created_at
        if where and not where.keeps_partition({"dt": dt, "hour": hour}):
            continue
        part = read_rows(dataset, columns, (ds.field("dt") == dt) & (ds.field("hour") == hour), zone)
        found.append(part.filter(where.mask(part)) if where and not where.on_partition else part)
        if sum(t.num_rows for t in found) >= args.limit:
            break
    if sum(t.num_rows for t in found) == 0:
        print("no tweets match")
        return 0
    rows = pa.concat_tables(found).sort_by([("created_at", "descending")])
    print_tweets(rows.slice(0, args.limit).to_pylist())
    return 0


def read_rows(dataset: ds.Dataset, columns: list[str], where: ds.Expression, zone: Zone) -> pa.Table:
    try:
        return dataset.to_table(columns=columns, filter=where)
    except FileNotFoundError as error:
        raise LakeError(f"{zone}: a file of that version is gone (VACUUM removes files older versions use after "
                        f"LAKE_RETENTION_HOURS): {error}") from error
    except (pa.ArrowException, OSError) as error:
        raise LakeError(f"{zone}: unreadable: {error}") from error


def print_tweets(rows: list[dict]) -> None:
    print(f"{'CREATED_AT (UTC)':<20}  {'AUTHOR':<16}  {'LANG':<4}  {'TOPICS':<24}  TEXT")
    for row in rows:
        created = iso_utc(row["created_at"])[:19].replace("T", " ")
        topics = ",".join(row["topics"] or [])
        text = " ".join((row["text"] or "").split())
        print(f"{created:<20}  {clip(row['author_username'] or '', 16):<16}  {row['lang'] or '':<4}  "
              f"{clip(topics, 24):<24}  {clip(text, 72)}")


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- history -----------------------------------------------------------------------------------

# The operation metric that counts a commit's rows added, and rows removed, by who wrote it
# (Spark's names, then delta-rs's).
ADDED = ("numTargetRowsInserted", "num_target_rows_inserted", "numOutputRows", "num_added_rows")
REMOVED = ("numTargetRowsDeleted", "num_target_rows_deleted", "numDeletedRows", "num_deleted_rows")


def history(lake: Lake, args: argparse.Namespace) -> int:
    zone = as_zone(args.zone)
    table = lake.table(zone)
    if table is None:
        print(f"{zone}: no table yet")
        return 0
    versions = [version_summary(commit) for commit in table.history(args.limit)]
    if args.json:
        for version in versions:
            print(json.dumps(version))
        return 0
    print(f"{'VERSION':>7}  {'TIME (UTC)':<19}  {'OPERATION':<20} {'ADDED':>8} {'REMOVED':>8}  WRITER")
    for version in versions:
        print(f"{version['version']:>7}  {version['timestamp'][:19].replace('T', ' '):<19}  {version['operation']:<20} "
              f"{'' if version['rows_added'] is None else version['rows_added']:>8} "
              f"{'' if version['rows_removed'] is None else version['rows_removed']:>8}  {version['writer']}")
    return 0


def version_summary(commit: dict) -> dict:
    """One commit as `lake history` shows it."""
    metrics = commit.get("operationMetrics") or {}
    operation = commit.get("operation", "?")
    added = first_metric(metrics, ADDED)
    removed = first_metric(metrics, REMOVED)
    if operation in ("WRITE", "STREAMING UPDATE") and added is None:
        added = first_metric(metrics, ("numOutputRows",))
    if operation == "DELETE" and removed is None:
        removed = 0
    return {
        "version": commit.get("version"),
        "timestamp": iso_utc(datetime.fromtimestamp(commit.get("timestamp", 0) / 1000, timezone.utc)),
        "operation": operation,
        "rows_added": None if operation == "OPTIMIZE" else added,
        "rows_removed": None if operation == "OPTIMIZE" else removed,
        "writer": commit.get("engineInfo") or commit.get("clientVersion") or "",
        "metadata": commit.get("userMetadata") or {key: value for key, value in commit.items() if key not in STANDARD}
        or None,
    }


# A commit's own keys; the others are a writer's metadata (delta-rs writes it at the top level).
STANDARD = {"timestamp", "operation", "operationParameters", "operationMetrics", "readVersion", "isolationLevel",
            "isBlindAppend", "engineInfo", "clientVersion", "txnId", "version", "userMetadata", "inCommitTimestamp"}


def first_metric(metrics: dict, names: tuple[str, ...]) -> int | None:
    for name in names:
        if metrics.get(name) is not None:
            return int(metrics[name])
    return None


# --- verify ------------------------------------------------------------------------------------


def verify(lake: Lake, args: argparse.Namespace) -> int:
    problems: list[str] = []
    checked = [check_keyed_zone(lake, zone, problems) for zone in (BRONZE, SILVER)]
    readable = 0
    for zone in QUARANTINE_ZONES + GOLD_TABLES:
        try:
            rows = lake.read(zone)
            readable += 0 if rows is None else 1
        except LakeError as error:
            problems.append(str(error))
    try:
        forgotten = read_log(lake)
    except LakeError as error:
        problems.append(str(error))
        forgotten = Forgotten()
    for zone in (BRONZE, SILVER) + QUARANTINE_ZONES:
        try:
            rows = count_forgotten(lake, zone, forgotten)
        except LakeError:
            continue  # reported above
        if rows:
            problems.append(f"{zone} holds {plural(rows, 'row')} of forgotten tweets (LAKE/{layout.FORGOTTEN.path}): "
                            "`lake forget` with no files removes them")
    if problems:
        for problem in problems:
            print(problem)
        print(f"verify FAILED: {len(problems)} problem(s) in {lake.shown_root}")
        return 1
    zones = [f"{zone} has {plural(rows, 'row')}, every {zone.key} once, every row in its created_at partition"
             for zone, rows in checked if zone == BRONZE or rows]
    forgetting = f"; none of the {plural(len(forgotten), 'forgotten id')} in any zone" if forgotten else ""
    print(f"OK: {'; '.join(zones)}; quarantine and gold readable{forgetting}")
    return 0


def check_keyed_zone(lake: Lake, zone: Zone, problems: list[str]) -> tuple[Zone, int]:
    """The zone's key once across the table, every row in the partition of its created_at;
    problems are added to `problems`. The zone and its rows."""
    try:
        table = lake.read(zone, list(dict.fromkeys([zone.key, "tweet_id", "created_at", *PARTITION_COLUMNS])))
    except LakeError as error:
        problems.append(str(error))
        return zone, 0
    if table is None:
        return zone, 0
    problems += misplaced_rows(zone, table)
    problems += duplicate_keys(zone, table)
    return zone, table.num_rows


def misplaced_rows(zone: Zone, table: pa.Table) -> list[str]:
    """Rows whose created_at (UTC) does not give their dt/hour partition."""
    created = table.column("created_at")
    wrong = pc.fill_null(pc.or_(pc.not_equal(pc.strftime(created, "%Y-%m-%d"), table.column("dt")),
                                pc.not_equal(pc.strftime(created, "%H"), table.column("hour"))), True)
    bad = table.filter(wrong)
    if bad.num_rows == 0:
        return []
    example = bad.slice(0, 1).to_pylist()[0]
    return [f"{zone}: {bad.num_rows} of {table.num_rows} rows have created_at outside their dt/hour partition "
            f"(e.g. tweet {example['tweet_id']} created {iso_utc(example['created_at'])} in "
            f"dt={example['dt']}/hour={example['hour']})"]


def duplicate_keys(zone: Zone, table: pa.Table, shown: int = 20) -> list[str]:
    """Each key found more than once, with the partitions it is in."""
    counts = pc.value_counts(table.column(zone.key).combine_chunks())
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return []
    problems = [f"{zone}: {zone.key} {value['values']} appears {value['counts']} times"
                for value in repeated.to_pylist()[:shown]]
    if len(repeated) > shown:
        problems.append(f"... and {len(repeated) - shown} more repeated {zone.key}s")
    return problems


# --- compact -----------------------------------------------------------------------------------


def compact(lake: Lake, args: argparse.Namespace) -> int:
    zone = as_zone(args.zone)
    table = lake.table(zone)
    if table is None:
        raise BadInput(f"{zone} has no table yet: nothing to compact")
    filters = [(column, "=", value) for column, value in (("dt", args.dt), ("hour", args.hour)) if value is not None]
    for column, _, _ in filters:
        if column not in zone.partitions:
            raise BadInput(f"{zone} is not partitioned by {column}: leave out --{column}")
    where = layout.partition_path([(column, value) for column, _, value in filters])
    if filters and not any(all(row[f"partition.{column}"] == value for column, _, value in filters)
                           for row in lake.files(zone).to_pylist()):
        raise BadInput(f"{zone} has no partition {where}")
    before = lake.files(zone).num_rows

    def optimize() -> dict:
        return lake.table(zone).optimize.compact(partition_filters=filters or None,
                                                 target_size=int(args.target_mb * 2**20))

    metrics = retrying(f"{zone}: OPTIMIZE", optimize, progress)
    after = lake.files(zone).num_rows
    print(f"{zone} ({where or 'every partition'}): {metrics.get('numFilesRemoved', 0)} file(s) merged into {metrics.get('numFilesAdded', 0)}; "
          f"the table has {plural(after, 'file')} (was {before}), version {lake.table(zone).version()}")
    return 0


# --- replay, forget, convert ---------------------------------------------------------------------


def replay(lake: Lake, args: argparse.Namespace, settings: Settings) -> int:
    """Refused with KAFKA_BOOTSTRAP_SERVERS: see pipeline/replay.py. The orchestrator is imported
    here, not above: every other subcommand starts without loading a Kafka client."""
    from pipeline import replay as replaying
    from pipeline.errors import BackfillError
    from pipeline.progress import Progress

    if not settings.embedded_broker:
        raise BadInput("lake replay needs each letter's outcome before it removes the letter from quarantine, "
                       "and only a worker and sink of its own report it: unset KAFKA_BOOTSTRAP_SERVERS "
                       "(the replay starts its own broker; a running pipeline is not needed)")
    shown = Progress()
    if args.dry_run:
        selection = replaying.select(lake, args.reason, args.dt, settings.max_payload_bytes)
        print(json.dumps(replaying.dry_run(lake, selection, shown)))
        return 0
    run = settings.model_copy(update={"lake_root": args.lake_root, "filter": args.filter or settings.filter})
    try:
        report = replaying.replay(lake, run, args.reason, args.dt, shown)
    except BackfillError as error:
        print(f"lake: error: replay failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lake: replay interrupted: its broker, worker and sink are stopped; quarantine is as it was",
              file=sys.stderr)
        return 130
    print(json.dumps(report))
    if "error" in report:
        print(f"lake: error: replay incomplete: {report['error']}", file=sys.stderr)
        return 1
    return 0


def forget(lake: Lake, args: argparse.Namespace, settings: Settings) -> int:
    """The orchestrator (pipeline/forget.py) may start the refine Spark job: imported here, so
    every other subcommand starts without it."""
    from pipeline import forget as forgetting
    from pipeline.progress import Progress
    from tweets.compliance import ComplianceFileError

    run = settings.model_copy(update={"lake_root": args.lake_root})
    try:
        report = forgetting.forget(lake, args.files, "user" if args.users else "tweet", run, args.wait, Progress())
    except ComplianceFileError as error:
        raise BadInput(str(error)) from error
    return forgetting.print_report(report)


def convert(lake: Lake, args: argparse.Namespace, settings: Settings) -> int:
    """Delta's CONVERT TO DELTA runs in Spark (spark_sink/convert.py)."""
    from pipeline.convert import convert as converting

    return converting(settings.model_copy(update={"lake_root": args.lake_root}), progress)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- command line ------------------------------------------------------------------------------


def as_zone(path: str) -> Zone:
    """A zone given by its path (a command's argument); BadInput naming the zones otherwise."""
    try:
        return layout.zone(path)
    except KeyError as error:
        raise BadInput(error.args[0]) from None


def day(text: str) -> str:
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def hour(text: str) -> str:
    if not text.isdigit() or not 0 <= int(text) <= 23:
        raise argparse.ArgumentTypeError(f"expected an hour 0-23, got {text!r}")
    return f"{int(text):02d}"


def version_or_time(text: str) -> int | datetime:
    """--as-of: a version number, or an ISO time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a version number or an ISO time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def parser(settings: Settings) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lake-root", default=argparse.SUPPRESS,
                        help=f"a folder, file:// or hdfs:// URI (default LAKE_ROOT: {settings.lake_root})")
    main_parser = argparse.ArgumentParser(prog="lake", parents=[common], description=__doc__.split("\n\n")[0])
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    zones = ", ".join(map(str, ZONES))

    def command(name: str, run, summary: str, **extra) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=summary, description=extra.pop("description", summary),
                                  **extra)
        sub.set_defaults(run=run)
        return sub

    sub = command("ls", ls, "List the tables, or a table's partitions and files, with sizes and row counts "
                            "(from each table's log).")
    sub.add_argument("zone", nargs="?", help=f"one of: {zones}")
    sub.add_argument("--dt", type=day, metavar="YYYY-MM-DD", help="only partition dt=YYYY-MM-DD")

    sub = command("stats", stats, "Rows, files and partitions of every table, the created_at range of bronze.")
    sub.add_argument("--json", action="store_true", help="end with one JSON line (bronze's rows, files, partitions, "
                                                         "bytes, min_created_at, max_created_at; quarantine_rows, "
                                                         "silver_rows, gold_rows, ...)")

    sub = command("show", show, "The most recent tweets of bronze (or silver: one row per post) as a table, "
                                "now or as an earlier version held them (time travel).")
    sub.add_argument("--zone", choices=(BRONZE.path, SILVER.path), default=BRONZE.path,
                     help=f"{BRONZE} (default) or {SILVER}")
    sub.add_argument("--limit", type=positive(int), default=20, metavar="N", help="how many tweets (default 20)")
    sub.add_argument("--where", metavar="EXPR", help=Where.HELP)
    sub.add_argument("--as-of", type=version_or_time, metavar="VERSION|TIME",
                     help="the table as version VERSION (see `lake history`), or as it was at TIME "
                          "(e.g. 2026-12-07T10:00:00Z), while VACUUM has not removed its files")

    sub = command("history", history, "A table's versions: when, which operation, rows added and removed, "
                                      "and who wrote it.")
    sub.add_argument("zone", help=f"one of: {zones}, {layout.FORGOTTEN}")
    sub.add_argument("--limit", type=positive(int), default=20, metavar="N", help="the newest N versions (default 20)")
    sub.add_argument("--json", action="store_true", help="one JSON object per version instead of a table")

    command("verify", verify, "Check every bronze tweet_id and every silver edit_root_id appears once in its table, "
                              "every row is in the dt/hour partition of its created_at, every table is readable and "
                              "no zone holds a tweet of the forgotten log; exit 1 with a report otherwise.")

    sub = command("compact", compact, "Merge a table's small files (Delta's OPTIMIZE), safely while the jobs write: "
                                      "readers see the same rows before and after.")
    sub.add_argument("--zone", default=BRONZE.path, help=f"one of: {zones} (default {BRONZE})")
    sub.add_argument("--dt", type=day, metavar="YYYY-MM-DD", help="only partition dt=YYYY-MM-DD (default: all)")
    sub.add_argument("--hour", type=hour, metavar="HH", help="only hour=HH (with --dt)")
    sub.add_argument("--target-mb", type=positive(float), default=128.0, metavar="N",
                     help="output file size in MiB (default 128)")

    sub = command("replay", partial(replay, settings=settings), "Send quarantined dead letters through the "
                  "pipeline again; what passes now leaves quarantine.", description=REPLAY_DESCRIPTION,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("--reason", metavar="R", help="only letters of this reason, e.g. too_large, not_json "
                                                   "(default: every reason)")
    sub.add_argument("--dt", type=day, metavar="YYYY-MM-DD", help="only letters of partition dt=YYYY-MM-DD "
                                                                  "(the day they failed, UTC)")
    sub.add_argument("--filter", choices=("topics", "none"), help="the worker's filter: topics (on-topic tweets "
                     "in LANGUAGES) or none (every valid tweet); default: the FILTER setting")
    sub.add_argument("--dry-run", action="store_true", help="only count what would be replayed, by reason "
                                                            "(last stdout line JSON), and change nothing")

    sub = command("forget", partial(forget, settings=settings), "Remove tweets deleted on X from every zone, "
                  "from compliance files; the ids are logged so they never come back.",
                  description=FORGET_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("files", nargs="*", type=Path, metavar="FILE",
                     help="compliance files (plain or gzip), one JSON object a line: batch compliance job results, "
                          "v1.1 stream delete messages, v2 compliance stream events (none: only apply what the log "
                          "holds, e.g. after an interrupted run)")
    sub.add_argument("--users", action="store_true", help="the batch job results are of a users job: each id is a "
                                                          "user id, and all of that user's tweets go")
    sub.add_argument("--wait", type=positive(float), default=300.0, metavar="SECONDS",
                     help="how long to wait for a running gold job to recompute the hours (default 300)")

    command("convert", partial(convert, settings=settings),
            "Turn a lake of plain parquet folders (this project before Delta Lake) into Delta tables in place: "
            "Delta's CONVERT TO DELTA for bronze, quarantine and the forgotten log, silver and gold rebuilt by their "
            "jobs. Idempotent: a table already in Delta is left alone. Last stdout line: JSON.")
    return main_parser


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    args = parser(settings).parse_args(argv)
    args.lake_root = getattr(args, "lake_root", settings.lake_root)
    try:
        lake = Lake.of(settings, args.lake_root, must_exist=args.command not in ("convert",))
        if args.command in READERS and not lake.local and not any(lake.has(zone) for zone in layout.TABLES):
            raise BadInput(f"no Delta table under {lake.shown_root}: check the path (or nothing was written yet)")
        return args.run(lake, args)
    except LakeError as error:
        print(f"lake: error: {error}", file=sys.stderr)
        return error.exit_code
    except (OSError, DeltaError) as error:
        print(f"lake: error: {args.lake_root}: {plain(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
