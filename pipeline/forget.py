"""`lake forget FILE...`: apply X's compliance files to every zone of the lake: the ids go to the
forgotten log first, then one Delta DELETE per table (no JVM), gold recomputed from silver, and
the replaced files VACUUMed; run again, it finishes what a crash left. The steps, the JSON and
the exit codes: docs/compliance.md.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from config.settings import Settings
from datalake import forgotten_log as log
from datalake.commits import commit_metadata
from datalake.display import iso_utc
from datalake.table_deletes import delete_forgotten
from datalake.forgotten_log import Forgotten
from datalake.lake import Lake
from datalake.layout import BRONZE, GOLD_TABLES, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, SILVER
from pipeline.backfill import refine
from pipeline.progress import Progress
from tweets.compliance import Deletion, Ignored, read_compliance_file

SHOWN_BAD_LINES = 20
POLL_SECONDS = 1.0
# The tables `lake forget` deletes from itself, in this order (gold follows silver).
FORGET_ZONES = (BRONZE, QUARANTINE_DEAD_LETTERS, QUARANTINE_UNREADABLE, SILVER)


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


def forget(lake: Lake, paths: list[Path], batch_kind: str, settings: Settings, wait_seconds: float,
           progress: Progress) -> dict:
    started = time.monotonic()
    deadline = started + wait_seconds
    note = lambda text: progress.show(text, permanent=True)  # noqa: E731
    request = read_requests(paths, batch_kind, progress)
    asked = request.forgotten
    log.append(lake, request.rows, {"query": "lake forget"})
    everything = log.read_log(lake)
    note(f"forget: {len(asked.tweets)} tweet id(s) and {len(asked.users)} user id(s) logged "
         f"({len(everything)} in the log)")
    gold_before = {table: lake.rows(table) for table in GOLD_TABLES}
    removed = {zone: delete_forgotten(lake, zone, everything, note) for zone in FORGET_ZONES}
    pending, refined = [], False
    if removed[SILVER].version is not None:
        pending, refined = refresh_gold(lake, settings, removed[SILVER].version, deadline, progress)
    rows_removed = {str(zone): removed[zone].rows for zone in FORGET_ZONES}
    rows_removed |= {str(table): before - lake.rows(table) for table, before in gold_before.items()}
    report = {
        "ids_asked": len(asked),
        "tweet_ids": len(asked.tweets),
        "user_ids": len(asked.users),
        "bad_lines": request.bad_lines,
        "ignored_lines": request.ignored_lines,
        "rows_removed": rows_removed,
        "files_rewritten": sum(r.files_rewritten for r in removed.values()),
        "pending": pending,
        "purge": purge(lake, [zone for zone, r in removed.items() if r.version is not None], refined, settings, note),
        "seconds": round(time.monotonic() - started, 1),
    }
    if pending:
        report["error"] = "; ".join(pending) + ": run `lake forget` again (with no files it applies the log)"
    return report


def refresh_gold(lake: Lake, settings: Settings, silver_version: int, deadline: float,
                 progress: Progress) -> tuple[list[str], bool]:
    """Gold recomputed from silver as of `silver_version` (its DELETE): by the refine job (which
    then VACUUMs silver, see `purge`), or by the running gold job. What is still awaited at the
    deadline, and whether the refine job ran."""
    silver_rows, _ = refine(settings, lake, progress, vacuum=(SILVER,))
    if silver_rows is not None:
        return [], True
    while gold_read_up_to(lake) < silver_version:
        if time.monotonic() >= deadline:
            return [f"gold: the running gold job has not read silver's version {silver_version} yet"], False
        progress.show(f"forget: waiting for the running gold job to read silver's version {silver_version}")
        time.sleep(POLL_SECONDS)
    return [], False


def gold_read_up_to(lake: Lake) -> int:
    """The newest silver version every gold table has been recomputed from (-1 if none): a gold
    batch commits its four tables one after the other."""
    return min(table_read_up_to(lake, table) for table in GOLD_TABLES)


def table_read_up_to(lake: Lake, zone) -> int:
    table = lake.table(zone)
    for commit in table.history(20) if table is not None else []:
        version = commit_metadata(commit).get("silver_version")
        if version is not None:
            return int(version)
    return -1


def purge(lake: Lake, changed: list, refined: bool, settings: Settings, note) -> dict:
    """VACUUM the tables whose rows were deleted, with LAKE_RETENTION_HOURS: the files the DELETEs
    replaced (with the deleted text, for time travel) go once that old. Bronze and quarantine are
    VACUUMed here (deltalake); silver by the refine job (only Spark's VACUUM removes the change
    data files its feed keeps), or, while `make run`'s silver job holds the lake, by that job's
    scheduled VACUUM. `purged`: tables whose deleted text has left the disk; `awaiting`: when it
    leaves the others'."""
    retention = settings.lake_retention_hours
    hours = int(-(-retention // 1))
    purged, awaiting = [], {}
    soon = datetime.now(timezone.utc) + timedelta(hours=retention)
    for zone in changed:
        if zone == SILVER and not refined:
            awaiting[str(zone)] = iso_utc(soon + timedelta(seconds=settings.lake_maintenance_seconds))
            continue
        if zone != SILVER:
            lake.table(zone).vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
        if retention == 0:
            purged.append(str(zone))
        else:
            awaiting[str(zone)] = iso_utc(soon)
    if changed:
        note(f"purge: deleted text gone from disk in {', '.join(purged) or 'no table yet'}"
             + (f"; VACUUM removes it from {', '.join(f'{t} after {w}' for t, w in awaiting.items())}" if awaiting else ""))
    return {"retention_hours": retention, "purged": purged, "awaiting": awaiting}


def print_report(report: dict) -> int:
    print(json.dumps(report))
    if "error" in report:
        print(f"lake: error: forget incomplete: {report['error']}", file=sys.stderr)
        return 1
    return 0
