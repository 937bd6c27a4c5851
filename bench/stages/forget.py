"""`lake forget` on a lake of 1,000,000 tweets: bronze over a week of hour partitions (three files
an hour, as a busy sink leaves them), silver and gold built from it by the refine job, then two
compliance files of 1,000 tweet ids each, timed end to end (the DELETEs of bronze, quarantine and
silver, the refine job that recomputes gold, the purge): ids spread over the whole week (nearly
every file holds one), then ids of the newest hour alone (a few files). Then `lake verify`.

Bronze's texts repeat (2,000 distinct), so silver's entity recognition meets its cache and the
build takes minutes, not the hour spaCy would need for a million distinct texts; the forget step
never enriches anything, so its cost does not depend on that.
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from bench.harness import Bench, wait_for
from datalake.lake import Lake
from datalake.layout import BRONZE

ROWS = 1_000_000
QUICK_ROWS = 100_000
FORGET = 1_000
HOURS = 7 * 24
FILES_PER_HOUR = 3
TEXTS = 2_000
NEWEST_HOUR = datetime(2024, 5, 7, 23, tzinfo=timezone.utc)
SNOWFLAKE_EPOCH_MS = 1_288_834_974_657


def run(bench: Bench) -> dict:
    rows = QUICK_ROWS if bench.config.quick else ROWS
    settings = bench.stage_settings("forget")
    lake = Path(settings.lake_root)
    began = time.monotonic()
    ids, files = build_bronze(lake, rows)
    bronze_s = time.monotonic() - began
    bench.log(f"  {rows:,} bronze rows in {files} files ({bronze_s:.1f} s); silver and gold by the refine job ...")
    refine_s, silver_batch_s = run_job(bench, settings, "refine-build", "-m", "spark_sink.submit", "refine")
    bench.log(f"  silver and gold built in {refine_s:.0f} s")

    rng = np.random.default_rng(7)
    spread = sorted(rng.choice(ids, FORGET, replace=False).tolist())
    newest = ids[-rows // HOURS:]
    recent = sorted(rng.choice(newest, min(FORGET, len(newest)), replace=False).tolist())
    results = {"bronze_rows": rows, "bronze_files": files, "build_bronze_s": round(bronze_s, 1),
               "build_silver_gold_s": refine_s, "build_silver_batch_s": silver_batch_s}
    for name, chosen in (("spread", spread), ("newest_hour", recent)):
        path = lake.parent / f"forget-{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps({"id": i, "action": "delete", "reason": "deleted"}) + b"\n"
                                  for i in chosen))
        results[f"forget_{name}_ids"] = len(chosen)
        wall, report = forget(bench, settings, lake, path, name)
        results[f"forget_{name}"] = {"wall_s": wall, "seconds": report["seconds"],
                                     "files_rewritten": report["files_rewritten"],
                                     "rows_removed": report["rows_removed"], "pending": report["pending"]}
        bench.log(f"  forget {len(chosen):,} ids ({name}): {wall:.1f} s, {report['files_rewritten']} files rewritten (every table), "
                  f"removed {report['rows_removed']['bronze']} bronze / {report['rows_removed']['silver']} silver rows")
    began = time.monotonic()
    verify = bench.start_python(settings, "verify", "-m", "pipeline.lake_cli", "--lake-root", str(lake), "verify")
    wait_for(lambda: not verify.alive(), 600, "lake verify", interval=0.2)
    results["verify_s"] = round(time.monotonic() - began, 1)
    results["verify_ok"] = verify.popen.returncode == 0
    bench.stop(verify)
    bench.delete_stage_topics(settings)
    return results


def forget(bench: Bench, settings, lake: Path, path: Path, name: str) -> tuple[float, dict]:
    began = time.monotonic()
    process = bench.start_python(settings, f"forget-{name}", "-m", "pipeline.lake_cli", "--lake-root", str(lake),
                                 "forget", str(path))
    wait_for(lambda: not process.alive(), 3600, f"lake forget ({name})", interval=0.2)
    wall = round(time.monotonic() - began, 1)
    lines = [line for line in process.log_text().splitlines() if line.startswith("{")]
    bench.stop(process)
    if process.popen.returncode != 0 or not lines:
        raise RuntimeError(f"lake forget ({name}) failed:\n{process.log_tail()}")
    return wall, json.loads(lines[-1])


def run_job(bench: Bench, settings, name: str, *args: str) -> tuple[float, float | None]:
    began = time.monotonic()
    job = bench.start_python(settings, name, *args, "--available-now")
    wait_for(lambda: not job.alive(), 7200, f"the {name} job to finish", interval=0.5)
    wall = round(time.monotonic() - began, 1)
    if job.popen.returncode != 0:
        raise RuntimeError(f"the {name} job failed:\n{job.log_tail()}")
    batch = re.search(r"silver: batch \d+ read \d+ rows in ([\d.]+) s", job.log_text())
    bench.stop(job)
    return wall, float(batch.group(1)) if batch else None


def build_bronze(lake: Path, rows: int, seed: int = 42) -> tuple[list[str], int]:
    """`rows` bronze tweets over HOURS hours ending at NEWEST_HOUR, in FILES_PER_HOUR commits an
    hour, through deltalake with bronze's table properties; their ids, oldest first, and the
    number of files."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from spark_sink.schema import bronze_schema

    schema = to_arrow_schema(bronze_schema(), timezone="UTC")
    bronze = Lake(str(lake), must_exist=False)
    rng = np.random.default_rng(seed)
    texts = np.array([f"New paper on machine learning and LLM evaluation, part {n} #AI #MachineLearning"
                      for n in range(TEXTS)])
    per_hour = np.full(HOURS, rows // HOURS)
    per_hour[-1] += rows - per_hour.sum()
    all_ids: list[str] = []
    files = 0
    for back, count in zip(range(HOURS - 1, -1, -1), per_hour):
        start = NEWEST_HOUR - timedelta(hours=int(back))
        offsets_ms = np.sort(rng.integers(0, 3_600_000, int(count)))
        moments_ms = int(start.timestamp() * 1000) + offsets_ms
        ids = (((moments_ms - SNOWFLAKE_EPOCH_MS) << 22) | np.arange(int(count)) % 4096).astype(str)
        all_ids += ids.tolist()
        table = bronze_hour(rng, schema, ids, moments_ms, texts, start)
        bounds = np.linspace(0, count, FILES_PER_HOUR + 1).astype(int)
        for index in range(FILES_PER_HOUR):
            bronze.append(BRONZE, table.slice(bounds[index], bounds[index + 1] - bounds[index]))
            files += 1
    return all_ids, files


def bronze_hour(rng: np.random.Generator, schema: pa.Schema, ids: np.ndarray, moments_ms: np.ndarray,
                texts: np.ndarray, start: datetime) -> pa.Table:
    count = len(ids)
    authors = rng.integers(0, 50_000, count).astype(str)
    columns = {
        "tweet_id": pa.array(ids),
        "text": pa.array(texts[rng.integers(0, len(texts), count)]),
        "created_at": pa.array(moments_ms * 1000, pa.timestamp("us", tz="UTC")),
        "source_format": pa.array(np.full(count, "v2")),
        "raw": pa.array(np.full(count, "{}")),
        "schema_version": pa.array(np.ones(count, np.int64)),
        "lang": pa.array(np.full(count, "en")),
        "author_id": pa.array(authors),
        "author_username": pa.array(np.char.add("user", authors)),
        "edit_history_tweet_ids": pa.ListArray.from_arrays(pa.array(np.arange(count + 1, dtype=np.int32)), pa.array(ids)),
        "is_retweet": pa.array(np.zeros(count, bool)), "is_quote": pa.array(np.zeros(count, bool)),
        "is_reply": pa.array(np.zeros(count, bool)),
        "ingested_at": pa.array(moments_ms * 1000 + 2_000_000, pa.timestamp("us", tz="UTC")),
        "dt": pa.array(np.full(count, f"{start:%Y-%m-%d}")), "hour": pa.array(np.full(count, f"{start:%H}")),
    }
    empty = pa.ListArray.from_arrays(pa.array(np.zeros(count + 1, dtype=np.int32)), pa.array([], pa.string()))
    for name in ("hashtags", "mentions", "cashtags", "urls", "topics"):
        columns[name] = empty
    return pa.table([columns[f.name].cast(f.type) if f.name in columns else pa.nulls(count, f.type) for f in schema],
                    schema=schema)
