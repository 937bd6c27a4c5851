"""`lake forget FILE...`: apply X's compliance files to every zone of the lake.

  1. The files' deletions (tweets.compliance: batch job results, v1.1 and v2 stream deletes; a bad
     line is reported, counted and skipped) are appended to the forgotten log (LAKE/_forgotten),
     before anything is removed: from then on the sink, the silver job and every backfill leave
     those tweets out, and a crash below is finished by running the command again.
  2. Bronze and quarantine: their files holding forgotten rows are rewritten without them
     (datalake/forget.py), waiting up to --wait for a sink batch that was in flight.
  3. Silver and gold: with no silver job running, the refine job (silver, then gold, available-now)
     runs; silver's stream sees the new log file, rewrites the silver files holding those posts,
     and gold recomputes their hours. With the jobs of `make run` running, they do the same at
     their next batches, and this waits up to --wait for silver to be clean and gold to follow.
The last stdout line is one JSON object: ids_asked, tweet_ids, user_ids, bad_lines, ignored_lines,
rows_removed (per zone; for gold tables the aggregate rows that vanished), files_rewritten,
pending (what was still awaited), seconds. Exit 0 when every zone is clean, 1 otherwise.
"""
from __future__ import annotations

import json
import posixpath
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from app.settings import Settings
from datalake import forgotten as log
from datalake.files import Lake
from datalake.forget import Checkpoints, Sweeper, count_forgotten
from datalake.forgotten import Forgotten
from datalake.layout import GOLD, GOLD_TABLES, JOB_LOCKS, SILVER, SINK_ZONES, ZoneLayout
from datalake.locks import abandoned
from pipeline.backfill import refine, zone_rows
from pipeline.progress import Progress
from tweets.compliance import Deletion, Ignored, read_compliance_file

SHOWN_BAD_LINES = 20
POLL_SECONDS = 1.0


@dataclass
class Request:
    """What the compliance files ask: log rows for every deletion, and what was not one."""

    rows: list[dict] = field(default_factory=list)
    bad_lines: int = 0
    ignored_lines: int = 0

    @property
    def forgotten(self) -> Forgotten:
        return Forgotten(frozenset(r["id"] for r in self.rows if r["kind"] == log.TWEET),
                         frozenset(r["id"] for r in self.rows if r["kind"] == log.USER))


def read_requests(paths: list[Path], batch_kind: str, progress: Progress) -> Request:
    request = Request()
    for path in paths:
        for number, outcome in read_compliance_file(path, batch_kind):
            if isinstance(outcome, Deletion):
                request.rows.append({"id": outcome.id, "kind": outcome.kind, "reason": outcome.reason,
                                     "source": outcome.source, "requested_at": parse_time(outcome.requested_at)})
            elif isinstance(outcome, Ignored):
                request.ignored_lines += 1
            else:
                request.bad_lines += 1
                if request.bad_lines <= SHOWN_BAD_LINES:
                    progress.show(f"{path}:{number}: skipped, {outcome.reason}: {outcome.message}", permanent=True)
    if request.bad_lines > SHOWN_BAD_LINES:
        progress.show(f"... and {request.bad_lines - SHOWN_BAD_LINES} more bad lines", permanent=True)
    return request


def parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def forget(lake: Lake, paths: list[Path], batch_kind: str, checkpoints: Checkpoints, settings: Settings,
           wait_seconds: float, progress: Progress) -> dict:
    started = time.monotonic()
    deadline = started + wait_seconds
    request = read_requests(paths, batch_kind, progress)
    asked = request.forgotten
    log.append(lake, request.rows)
    everything = log.read_log(lake)
    silver_before = count_forgotten(lake, SILVER, everything)
    gold_before = {table: zone_rows(lake, table) for table in GOLD_TABLES}
    progress.show(f"forget: {len(asked.tweets)} tweet id(s) and {len(asked.users)} user id(s) logged "
                  f"({len(everything)} in the log); {silver_before} silver row(s) to go", permanent=True)

    sweeper = Sweeper(lake, checkpoints, lambda text: progress.show(text, permanent=True))
    while True:
        sweeper.tick(wait_seconds=max(0.0, deadline - time.monotonic()))
        if sweeper.settled or time.monotonic() >= deadline:
            break
        progress.show(f"forget: waiting for {sweeper.waiting_for()}")
        time.sleep(POLL_SECONDS)
    pending = [] if sweeper.settled else [f"bronze, quarantine: waiting for {sweeper.waiting_for()}"]

    pending += refine_silver_and_gold(lake, settings, everything, deadline, progress)
    rows_removed = {str(zone): sweeper.totals[zone].rows_removed for zone in SINK_ZONES}
    rows_removed[str(SILVER)] = silver_before - count_forgotten(lake, SILVER, everything)
    rows_removed |= {str(table): before - zone_rows(lake, table) for table, before in gold_before.items()}
    report = {
        "ids_asked": len(asked),
        "tweet_ids": len(asked.tweets),
        "user_ids": len(asked.users),
        "bad_lines": request.bad_lines,
        "ignored_lines": request.ignored_lines,
        "rows_removed": rows_removed,
        "files_rewritten": sum(sweeper.totals[zone].files_rewritten for zone in SINK_ZONES),
        "pending": pending,
        "seconds": round(time.monotonic() - started, 1),
    }
    if pending:
        report["error"] = "; ".join(pending) + ": run `lake forget` again (with no files it only finishes the log)"
    return report


def refine_silver_and_gold(lake: Lake, settings: Settings, everything: Forgotten, deadline: float,
                           progress: Progress) -> list[str]:
    """Silver and gold brought up to the log: by the refine job, or by the running jobs; what is
    still awaited at the deadline. A lake without silver has nothing to refine."""
    if not lake.files(SILVER):
        return []
    if not job_running(lake, SILVER.query):
        silver_rows, _ = refine(settings, lake, progress)
        if silver_rows is not None:
            return []
    while count_forgotten(lake, SILVER, everything):
        if time.monotonic() >= deadline:
            return ["silver: the running silver job has not removed the forgotten posts yet"]
        progress.show("forget: waiting for the running silver job to remove the forgotten posts")
        time.sleep(POLL_SECONDS)
    newest_silver = newest_batch(lake, SILVER)
    while job_running(lake, GOLD.query) and newest_silver is not None and gold_read_up_to(lake) < newest_silver:
        if time.monotonic() >= deadline:
            return [f"gold: the running gold job has not recomputed silver's batch {newest_silver} yet"]
        progress.show("forget: waiting for the running gold job to recompute the hours silver changed")
        time.sleep(POLL_SECONDS)
    return []


def job_running(lake: Lake, name: str) -> bool:
    """Whether a silver or gold job holds the lake (its lock file, of a process that still runs)."""
    lock = lake.path(f"{JOB_LOCKS}/{name}.json")
    try:
        with lake.fs.open(lock) as stream:
            holder = json.loads(stream.read())
    except FileNotFoundError:
        return False
    except ValueError:
        return True
    return not abandoned(holder)


def newest_batch(lake: Lake, zone) -> int | None:
    folder = ZoneLayout(lake.root, zone).manifests
    if not lake.fs.exists(folder):
        return None
    ids = [int(e.name[:-5]) for e in lake.fs.list(folder) if e.name.endswith(".json") and e.name[:-5].isdigit()]
    return max(ids, default=None)


def gold_read_up_to(lake: Lake) -> int:
    """The newest silver batch gold's newest journal recomputed (-1 if none)."""
    batch = newest_batch(lake, GOLD)
    if batch is None:
        return -1
    with lake.fs.open(posixpath.join(ZoneLayout(lake.root, GOLD).manifests, f"{batch:012d}.json")) as stream:
        return max(json.loads(stream.read()).get("silver_batches") or [-1])


def print_report(report: dict) -> int:
    print(json.dumps(report))
    if "error" in report:
        print(f"lake: error: forget incomplete: {report['error']}", file=sys.stderr)
        return 1
    return 0
