"""`lake`: look into the parquet lake and keep it tidy, without Spark (pyarrow reads the files).

    lake [--lake-root PATH] ls [ZONE] [--dt YYYY-MM-DD]   zones, partitions, files, sizes, rows
    lake stats [--json]                                   rows, files, time range (--json: last line)
    lake show [--zone silver] [--limit N] [--where EXPR]  the most recent tweets, as a table
    lake verify                                           keys unique, files readable, partitions right
    lake compact --dt YYYY-MM-DD [--hour HH] [--target-mb N]   merge small files (datalake/compact.py)
    lake replay [--reason R] [--dt YYYY-MM-DD] [--dry-run]   dead letters through the pipeline again
    lake forget [--users] [--wait S] FILE...              tweets deleted on X leave every zone

`replay` sends the original bytes of quarantined dead letters through the filter/normalize agent
and the sink again, on a broker, worker and sink of its own (pipeline/replay.py): what is accepted
now lands in bronze once, what fails again replaces its letter, and the replayed letters leave
quarantine in one journaled step (datalake/landing.py), so a second replay adds nothing.

The lake root is LAKE_ROOT (a folder, file:// or hdfs://, read through WebHDFS at HDFS_NAMENODE_URL,
by default the root's host on HDFS_HTTP_PORT) unless --lake-root is given. Exit codes: 0 fine, 1 a
problem in the lake (an unreadable file, a failed check, a held lock), 2 a bad request (bad option,
missing path, unknown zone).
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.settings import Settings, get_settings
from datalake import compact as lake_compact
from datalake import layout
from datalake.errors import BadInput, LakeError, UnreadableFile
from datalake.files import DataFile, Lake, as_zone, by_partition, column_range, human_size, iso_utc, journals, plural
from datalake.forget import count_forgotten
from datalake.forgotten import read_log
from datalake.fs import LakeFS, lake_fs_for
from datalake.layout import BRONZE, GOLD_TABLES, QUARANTINE_DEAD_LETTERS, QUARANTINE_ZONES, REPLAY_JOURNALS, SILVER, ZONES
from datalake.where import Where

REPLAY_DESCRIPTION = """\
Send the original bytes of quarantined dead letters (quarantine/dead_letter/) through the
pipeline again: raw topic -> the Faust filter/normalize agent -> the Spark sink, on a broker,
worker and sink of the replay's own (as `python -m pipeline.backfill` runs them; about 30 s of
start-up). Use it after a normalizer fix, or with a larger MAX_PAYLOAD_BYTES.

Each replayed letter leaves quarantine: a tweet accepted now is in bronze (once: repeated ids
among the letters count as duplicates), a filtered one is counted, and one that fails again is
replaced by its new dead letter (new reason and message). A second replay therefore re-sends
only the letters that still fail and changes nothing. Landing and removal are one journaled step
(LAKE/_replays/<run>.json; see datalake/landing.py): after a crash, the next `lake replay`
finishes it first, so every row ends up in the lake exactly once. The replay holds the
compaction lock of quarantine/dead_letter while it runs; the live sink may keep writing.

Not replayed, left as they are: letters whose original bytes quarantine does not hold (a
too_large letter keeps only its first 65536 bytes), letters larger than MAX_PAYLOAD_BYTES now
(their new dead letter would keep only a preview), and letters in files of sink batches not yet
committed (the sink may still replace those files; their commit log is in CHECKPOINT_ROOT, or
--checkpoints).

Progress goes to stderr; the last stdout line is one JSON object: replayed (letters sent), the
backfill's counts (read = accepted + filtered + duplicates + rejected, bronze_rows,
quarantine_rows: rows this run added), quarantine_removed (old letters removed),
replayed_by_reason and recovered_by_reason (by their old reason: all sent, and those that no
longer fail), still_failing (= rejected, by new reason), not_replayable (by reason),
uncommitted_left, lake_root. Exit 0 when the counts add up (accepted = new bronze rows,
rejected = new quarantine rows); otherwise 1, and the lake is left as it was.
Only without KAFKA_BOOTSTRAP_SERVERS: removing a letter needs its outcome, which only the
replay's own worker and sink report.
"""

SHOW_COLUMNS = ["created_at", "author_username", "lang", "topics", "text"]


def footers(lake: Lake, files: list[DataFile], problems: list[str]) -> dict[str, pq.FileMetaData]:
    """Each readable file's footer by path; an unreadable file becomes a problem naming it."""
    found = {}
    for file in files:
        try:
            found[file.path] = lake.metadata(file)
        except UnreadableFile as error:
            problems.append(str(error))
    return found


def report_problems(problems: list[str]) -> int:
    for problem in problems:
        print(f"lake: error: {problem}", file=sys.stderr)
    return 1 if problems else 0


# --- ls ----------------------------------------------------------------------------------------


def ls(lake: Lake, args: argparse.Namespace) -> int:
    problems: list[str] = []
    if args.zone is None:
        print(f"{'PARTITIONS':>10} {'FILES':>7} {'SIZE':>10} {'ROWS':>10}  ZONE")
        for zone in ZONES:
            files = lake.files(zone, args.dt)
            rows = sum(m.num_rows for m in footers(lake, files, problems).values())
            print(f"{len(by_partition(files)):>10} {len(files):>7} {human_size(sum(f.size for f in files)):>10} "
                  f"{rows:>10}  {zone}")
        return report_problems(problems)
    lake.zone_path(args.zone)
    files = lake.files(args.zone, args.dt)
    metadata = footers(lake, files, problems)
    rows = {path: m.num_rows for path, m in metadata.items()}
    print(f"{args.zone}: {plural(len(by_partition(files)), 'partition')}, {plural(len(files), 'file')}, "
          f"{human_size(sum(f.size for f in files))}, {plural(sum(rows.values()), 'row')}")
    print(f"{'SIZE':>10} {'ROWS':>10}  PATH")
    for key, group in by_partition(files).items():
        print(f"{human_size(sum(f.size for f in group)):>10} {sum(rows.get(f.path, 0) for f in group):>10}  "
              f"{args.zone}/{key}/ ({plural(len(group), 'file')})")
        for file in group:
            print(f"{human_size(file.size):>10} {rows.get(file.path, '?'):>10}  {file.relative}")
    return report_problems(problems)


# --- stats -------------------------------------------------------------------------------------


def stats(lake: Lake, args: argparse.Namespace) -> int:
    problems: list[str] = []
    summary: dict[str, dict] = {}
    low = high = None
    for zone in ZONES:
        files = lake.files(zone)
        metadata = footers(lake, files, problems)
        summary[zone] = {"rows": sum(m.num_rows for m in metadata.values()), "files": len(files),
                         "partitions": len(by_partition(files)), "bytes": sum(f.size for f in files)}
        if zone == BRONZE:
            low, high = created_at_range(lake, files, metadata)
    if problems:
        return report_problems(problems)
    print(f"lake {lake.shown_root}")
    for zone, numbers in summary.items():
        print(f"  {zone}: {plural(numbers['rows'], 'row')} in {plural(numbers['files'], 'file')}, "
              f"{plural(numbers['partitions'], 'partition')}, {human_size(numbers['bytes'])}")
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


def created_at_range(lake: Lake, files: list[DataFile], metadata: dict[str, pq.FileMetaData]
                     ) -> tuple[datetime | None, datetime | None]:
    """From the footers' statistics; a file without them has its created_at column read."""
    lows, highs = [], []
    for file in files:
        if file.path not in metadata or metadata[file.path].num_rows == 0:
            continue
        found = column_range(metadata[file.path], "created_at")
        if found is None:
            extremes = pc.min_max(lake.read(file, ["created_at"]).column("created_at"))
            found = (extremes["min"].as_py(), extremes["max"].as_py())
        lows.append(found[0])
        highs.append(found[1])
    return (min(lows), max(highs)) if lows else (None, None)


# --- show --------------------------------------------------------------------------------------


def show(lake: Lake, args: argparse.Namespace) -> int:
    zone = as_zone(args.zone)
    partitions = by_partition(lake.files(zone))
    if not partitions:
        print(f"{zone} is empty")
        return 0
    first = next(iter(partitions.values()))[0]
    where = Where.parse(args.where, lake.metadata(first).schema.to_arrow_schema()) if args.where else None
    filters_rows = where is not None and not where.on_partition
    columns = SHOW_COLUMNS + ([where.column] if filters_rows and where.column not in SHOW_COLUMNS else [])
    found: list[pa.Table] = []
    for key in sorted(partitions, reverse=True):  # newest first: partitions follow created_at
        if where and not where.keeps_partition(dict(partitions[key][0].partition)):
            continue
        for file in partitions[key]:
            table = lake.read(file, columns)
            found.append(table.filter(where.mask(table)) if filters_rows else table)
        if sum(t.num_rows for t in found) >= args.limit:
            break
    if sum(t.num_rows for t in found) == 0:
        print("no tweets match")
        return 0
    table = pa.concat_tables(found, promote_options="default").sort_by([("created_at", "descending")])
    print_tweets(table.slice(0, args.limit).to_pylist())
    return 0


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


# --- verify ------------------------------------------------------------------------------------


def verify(lake: Lake, args: argparse.Namespace) -> int:
    problems: list[str] = []
    checked = [check_keyed_zone(lake, zone, problems) for zone in (BRONZE, SILVER)]
    quarantine_files = [f for zone in QUARANTINE_ZONES for f in lake.files(zone)]
    for file in quarantine_files:
        try:
            lake.read(file)
        except UnreadableFile as error:
            problems.append(str(error))
    for zone in ZONES:
        problems += [f"interrupted compaction {lake.relative(j)}: run `lake compact` on {zone} to settle it"
                     for j in lake_compact.pending_journals(lake, zone)]
    problems += [f"interrupted replay {lake.relative(j)}: run `lake replay` to finish it"
                 for j in journals(lake, REPLAY_JOURNALS)]
    forgotten = read_log(lake)
    for zone in (BRONZE, SILVER) + QUARANTINE_ZONES:
        try:
            rows = count_forgotten(lake, zone, forgotten)
        except UnreadableFile:
            continue  # reported above
        if rows:
            problems.append(f"{zone} holds {plural(rows, 'row')} of forgotten tweets (LAKE/{layout.FORGOTTEN.path}): "
                            "`lake forget` with no files removes them")
    if problems:
        for problem in problems:
            print(problem)
        print(f"verify FAILED: {len(problems)} problem(s) in {lake.shown_root}")
        return 1
    zones = [f"{zone} has {plural(rows, 'row')} in {plural(len(files), 'file')} "
             f"({plural(len(by_partition(files)), 'partition')}), every {zone.key} once, every row in its "
             f"created_at partition" for zone, rows, files in checked if zone == BRONZE or files]
    forgetting = f"; none of the {plural(len(forgotten), 'forgotten id')} in any zone" if forgotten else ""
    print(f"OK: {'; '.join(zones)}; {plural(len(quarantine_files), 'quarantine file')} readable{forgetting}")
    return 0


def check_keyed_zone(lake: Lake, zone: layout.Zone, problems: list[str]) -> tuple[layout.Zone, int, list[DataFile]]:
    """Every file of `zone` readable, its key once across the zone, every row in the partition of
    its created_at; problems are added to `problems`. The zone, its rows and its files."""
    keys: list[pa.Table] = []
    files = lake.files(zone)
    for index, file in enumerate(files):
        try:
            table = lake.read(file, list(dict.fromkeys([zone.key, "tweet_id", "created_at"])))
        except UnreadableFile as error:
            problems.append(str(error))
            continue
        problems += misplaced_rows(file, table)
        keys.append(pa.table({"key": table.column(zone.key), "file": pa.array([index] * table.num_rows, pa.int32())}))
    problems += duplicate_keys(zone.key, pa.concat_tables(keys) if keys else None, [f.relative for f in files])
    return zone, sum(t.num_rows for t in keys), files


def misplaced_rows(file: DataFile, table: pa.Table) -> list[str]:
    """Rows whose created_at (UTC) does not give the dt/hour of the file's folder."""
    values = dict(file.partition)
    if "dt" not in values or "hour" not in values:
        return [f"{file.relative}: not in a dt=YYYY-MM-DD/hour=HH partition"]
    created = table.column("created_at")
    dt, hour = pc.strftime(created, "%Y-%m-%d"), pc.strftime(created, "%H")
    wrong = pc.fill_null(pc.or_(pc.not_equal(dt, values["dt"]), pc.not_equal(hour, values["hour"])), True)
    bad = table.filter(wrong)
    if bad.num_rows == 0:
        return []
    example = bad.slice(0, 1).to_pylist()[0]
    return [f"{file.relative}: {bad.num_rows} of {table.num_rows} rows have created_at outside "
            f"{file.partition_key} (e.g. tweet {example['tweet_id']} created {iso_utc(example['created_at'])})"]


def duplicate_keys(key: str, ids: pa.Table | None, names: list[str], shown: int = 20) -> list[str]:
    """Each key found more than once, with the files it is in (`ids` has file indexes into `names`)."""
    if ids is None:
        return []
    counts = pc.value_counts(ids.column("key").combine_chunks())
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    if len(repeated) == 0:
        return []
    places: dict[str, list[str]] = {}
    for row in ids.filter(pc.is_in(ids.column("key"), value_set=repeated)).to_pylist():
        places.setdefault(row["key"], []).append(names[row["file"]])
    problems = [f"{key} {value} appears {len(files)} times: {', '.join(files)}"
                for value, files in list(places.items())[:shown]]
    if len(places) > shown:
        problems.append(f"... and {len(places) - shown} more repeated {key}s")
    return problems


# --- compact -----------------------------------------------------------------------------------


def compact(lake: Lake, args: argparse.Namespace, settings: Settings) -> int:
    zone = as_zone(args.zone)
    latest = latest_batch(args, settings, zone, required=True)
    progress(f"newest committed batch of the sink's query {zone.query!r}: {'none yet' if latest is None else latest}")
    outcomes = lake_compact.compact(lake, zone, args.dt, args.hour, latest, int(args.target_mb * 2**20), progress)
    for outcome in outcomes:
        print(outcome.summary())
    return 0


def latest_batch(args: argparse.Namespace, settings: Settings, zone: layout.Zone, required: bool) -> int | None:
    """The newest committed batch of the query that writes `zone`, from the sink's checkpoint,
    which may live elsewhere; without that checkpoint, None if not `required`."""
    checkpoints = args.checkpoints or layout.checkpoints(args.lake_root, settings.checkpoint_root)
    fs, checkpoint_root = open_fs(checkpoints, settings)
    checkpoint = f"{checkpoint_root}/{zone.query}"
    if not required and not fs.exists(checkpoint):
        return None
    return lake_compact.latest_committed_batch(fs, checkpoint)


# --- replay ------------------------------------------------------------------------------------


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
    latest = latest_batch(args, settings, QUARANTINE_DEAD_LETTERS, required=False)
    shown = Progress()
    if args.dry_run:
        selection = replaying.select(lake, args.reason, args.dt, latest, settings.max_payload_bytes)
        print(json.dumps(replaying.dry_run(lake, selection, shown)))
        return 0
    run = settings.model_copy(update={"lake_root": args.lake_root, "filter": args.filter or settings.filter})
    try:
        report = replaying.replay(lake, run, args.reason, args.dt, latest, shown)
    except BackfillError as error:
        print(f"lake: error: replay failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lake: replay interrupted: its broker, worker and sink are stopped; a journal in "
              "_replays/, if any, is finished by the next `lake replay`", file=sys.stderr)
        return 130
    print(json.dumps(report))
    if "error" in report:
        print(f"lake: error: replay incomplete: {report['error']}", file=sys.stderr)
        return 1
    return 0


# --- forget ------------------------------------------------------------------------------------


def forget(lake: Lake, args: argparse.Namespace, settings: Settings) -> int:
    """The orchestrator (pipeline/forget.py) may start the refine Spark job: imported here, so
    every other subcommand starts without it."""
    from datalake.forget import Checkpoints
    from pipeline import forget as forgetting
    from pipeline.progress import Progress
    from tweets.compliance import ComplianceFileError

    fs, root = open_fs(args.checkpoints or layout.checkpoints(args.lake_root, settings.checkpoint_root), settings)
    run = settings.model_copy(update={"lake_root": args.lake_root})
    try:
        report = forgetting.forget(lake, args.files, "user" if args.users else "tweet", Checkpoints(fs, root), run,
                                   args.wait, Progress())
    except ComplianceFileError as error:
        raise BadInput(str(error)) from error
    return forgetting.print_report(report)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- command line ------------------------------------------------------------------------------


def open_fs(root: str, settings: Settings) -> tuple[LakeFS, str]:
    try:
        return lake_fs_for(root, settings.hdfs_namenode_url, settings.hdfs_user, settings.hdfs_http_port)
    except ValueError as error:
        raise BadInput(str(error)) from error


def day(text: str) -> str:
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def hour(text: str) -> str:
    if not text.isdigit() or not 0 <= int(text) <= 23:
        raise argparse.ArgumentTypeError(f"expected an hour 0-23, got {text!r}")
    return f"{int(text):02d}"


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

    def command(name: str, run, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=summary, description=summary)
        sub.set_defaults(run=run)
        return sub

    sub = command("ls", ls, "List zones, or a zone's partitions and files, with sizes and row counts "
                            "(from the parquet footers).")
    sub.add_argument("zone", nargs="?", help=f"one of: {', '.join(map(str, ZONES))}")
    sub.add_argument("--dt", type=day, metavar="YYYY-MM-DD", help="only partition dt=YYYY-MM-DD")

    sub = command("stats", stats, "Rows, files and partitions of every zone, the created_at range of bronze.")
    sub.add_argument("--json", action="store_true", help="end with one JSON line (bronze's rows, files, partitions, "
                                                         "min_created_at, max_created_at; quarantine_rows, "
                                                         "silver_rows, ...)")

    sub = command("show", show, "The most recent tweets of bronze (or silver: one row per post) as a table.")
    sub.add_argument("--zone", choices=(BRONZE.path, SILVER.path), default=BRONZE.path,
                     help=f"{BRONZE} (default) or {SILVER}")
    sub.add_argument("--limit", type=positive(int), default=20, metavar="N", help="how many tweets (default 20)")
    sub.add_argument("--where", metavar="EXPR", help=Where.HELP)

    command("verify", verify, "Check every bronze tweet_id and every silver edit_root_id appears once in its zone, "
                              "every file is readable, every row is in the dt/hour partition of its created_at and "
                              "no zone holds a tweet of the forgotten log; exit 1 with a report otherwise.")

    sub = command("compact", partial(compact, settings=settings),
                  "Merge a partition's small files of committed batches into files of about --target-mb, "
                  "safely while the sink runs (see datalake/compact.py for what readers see).")
    sub.add_argument("--dt", type=day, required=True, metavar="YYYY-MM-DD", help="the partition dt=YYYY-MM-DD")
    sub.add_argument("--hour", type=hour, metavar="HH", help="only hour=HH of that day (default: every hour)")
    sub.add_argument("--target-mb", type=positive(float), default=128.0, metavar="N",
                     help="output file size in MiB (default 128)")
    sub.add_argument("--zone", default=BRONZE.path, help=f"one of: {', '.join(map(str, ZONES))} (default {BRONZE})")
    sub.add_argument("--checkpoints", metavar="PATH", help="the sink's checkpoint root, for its commit log "
                                           "(default CHECKPOINT_ROOT, else LAKE_ROOT/_checkpoints)")

    sub = commands.add_parser("replay", parents=[common], help="Send quarantined dead letters through the "
                              "pipeline again; what passes now leaves quarantine.", description=REPLAY_DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.set_defaults(run=partial(replay, settings=settings))
    sub.add_argument("--reason", metavar="R", help="only letters of this reason, e.g. too_large, not_json "
                                                   "(default: every reason)")
    sub.add_argument("--dt", type=day, metavar="YYYY-MM-DD", help="only letters of partition dt=YYYY-MM-DD "
                                                                  "(the day they failed, UTC)")
    sub.add_argument("--filter", choices=("topics", "none"), help="the worker's filter: topics (on-topic tweets "
                     "in LANGUAGES) or none (every valid tweet); default: the FILTER setting")
    sub.add_argument("--dry-run", action="store_true", help="only count what would be replayed, by reason "
                                                            "(last stdout line JSON), and change nothing")
    sub.add_argument("--checkpoints", metavar="PATH", help="the sink's checkpoint root: letters in files of "
                     "its uncommitted batches are left alone (default CHECKPOINT_ROOT, else LAKE_ROOT/_checkpoints)")
    sub = commands.add_parser("forget", parents=[common], help="Remove tweets deleted on X from every zone, "
                              "from compliance files; the ids are logged so they never come back.",
                              description=FORGET_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.set_defaults(run=partial(forget, settings=settings))
    sub.add_argument("files", nargs="*", type=Path, metavar="FILE",
                     help="compliance files (plain or gzip), one JSON object a line: batch compliance job results, "
                          "v1.1 stream delete messages, v2 compliance stream events (none: only finish what the log "
                          "asks, e.g. after an interrupted run)")
    sub.add_argument("--users", action="store_true", help="the batch job results are of a users job: each id is a "
                                                          "user id, and all of that user's tweets go")
    sub.add_argument("--wait", type=positive(float), default=300.0, metavar="SECONDS",
                     help="how long to wait for a running sink, silver or gold job to catch up (default 300)")
    sub.add_argument("--checkpoints", metavar="PATH", help="the sink's checkpoint root: files of its uncommitted "
                     "batches wait for their commit (default CHECKPOINT_ROOT, else LAKE_ROOT/_checkpoints)")
    return main_parser


FORGET_DESCRIPTION = """\
Remove the tweets X says were deleted (or whose users were deleted, protected or suspended) from
every zone: their ids go to the forgotten log (LAKE/_forgotten) first, so the sink, the silver job
and later backfills leave them out; then the files of bronze and quarantine that hold them are
rewritten without them (crash-safe, safe while the sink runs), and silver and gold are brought up
to the log by the refine job, or by the running silver and gold jobs. A bad line is reported and
skipped. The last stdout line is JSON: ids_asked, tweet_ids, user_ids, bad_lines, ignored_lines,
rows_removed per zone, files_rewritten, pending, seconds. Exit 0 when every zone is clean, 1 if
something is still pending (run it again), 2 for a file that cannot be read.
"""


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    args = parser(settings).parse_args(argv)
    args.lake_root = getattr(args, "lake_root", settings.lake_root)
    try:
        fs, root = open_fs(args.lake_root, settings)
        return args.run(Lake(fs, root, shown_root=args.lake_root), args)
    except LakeError as error:
        print(f"lake: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"lake: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
