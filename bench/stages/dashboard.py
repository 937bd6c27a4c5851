"""The dashboard over a big lake: 1,000,000 silver rows over a week of hour partitions (three
commits an hour, as a busy stream's silver job leaves them), gold computed from them, `python -m
dashboard` started on it, and in Debian's headless Chromium (Playwright) the time until the page
shows its chart, numbers, tweets and health: the first load after the start (server and browser
cold), a reload (both warm), and a new browser on the warm server. Then each JSON endpoint's
latency, first call and median of the next ones.

Gold comes from the gold job (spark_sink/gold.py), which the stage times too: its rebuild of the
whole week from a new checkpoint, then one hour recomputed after one more silver commit.
"""
from __future__ import annotations

import re
import statistics
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.harness import Bench, wait_for
from bench.monitor import TreeMonitor
from datalake import layout
from datalake.lake import Lake
from datalake.layout import SILVER
from engines.chromium import launch
from spark_sink.schema import silver_arrow_schema
from pipeline.processes import free_port

ROWS = 1_000_000
QUICK_ROWS = 200_000
HOURS = 7 * 24
FILES_PER_HOUR = 3
NEWEST_HOUR = datetime(2024, 5, 7, 23, tzinfo=timezone.utc)
TOPICS = np.array(["ai", "machine_learning", "data_science", "big_data"])
TOPIC_WEIGHTS = np.array([0.45, 0.3, 0.2, 0.05])
HASHTAGS = np.array(["ai", "machinelearning", "datascience", "bigdata", "llm", "genai", "python", "deeplearning",
                     "nlp", "mlops", "pytorch", "rstats", "dataviz", "chatgpt", "spark", "kaggle"] +
                    [f"tag{n}" for n in range(200)])
DOMAINS = np.array(["arxiv.org", "github.com", "huggingface.co", "medium.com", "kaggle.com", "youtube.com"] +
                   [f"site{n}.example" for n in range(100)])
ENTITIES = [("OpenAI", "ML_ORG"), ("PyTorch", "ML_FRAMEWORK"), ("Spark", "ML_FRAMEWORK"), ("GPT-4", "ML_MODEL"),
            ("Google", "ORG"), ("Yann LeCun", "ML_PERSON"), ("Python", "PRODUCT")] + [(f"Org{n}", "ORG") for n in range(100)]
ENDPOINT_CALLS = 5
# Rows of the silver file added to the newest hour before gold recomputes that hour alone.
ONE_HOUR_ROWS = 2_000


def run(bench: Bench) -> dict:
    rows = QUICK_ROWS if bench.config.quick else ROWS
    settings = bench.stage_settings("dashboard")
    lake = Path(settings.lake_root)
    began = time.monotonic()
    files = build_silver(lake, rows)
    silver_s = time.monotonic() - began
    began = time.monotonic()
    gold_times = build_gold(bench, settings, lake)
    gold_s = time.monotonic() - began
    gold_rows = {zone.path: Lake(str(lake)).rows(zone) for zone in layout.GOLD_TABLES}
    bench.log(f"  {rows:,} silver rows in {files} files ({silver_s:.1f} s), gold in {gold_s:.1f} s: {gold_rows}")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    dashboard = bench.start_python(settings, "dashboard", "-m", "dashboard", "--port", str(port), "--lake-root", str(lake))
    try:
        wait_for(lambda: _answers(f"{base}/_dash-layout"), 120, "the dashboard to answer", (dashboard,), interval=0.05)
        start_s = time.monotonic() - started
        with TreeMonitor(dashboard.popen.pid) as monitor:
            loads = page_loads(base, rows + ONE_HOUR_ROWS)
            latencies = endpoint_latencies(base)
        rss = monitor.peak_rss_mb()
    finally:
        bench.stop(dashboard)
    bench.delete_stage_topics(settings)
    return {
        "silver_rows": rows + ONE_HOUR_ROWS,
        "silver_files": files,
        "silver_hours": HOURS,
        "gold_rows": gold_rows,
        "build_silver_s": round(silver_s, 1),
        "build_gold_s": round(gold_s, 1),
        **gold_times,
        "dashboard_start_s": round(start_s, 2),
        **loads,
        "endpoint_ms": latencies,
        "dashboard_peak_rss_mb": rss,
    }


def page_loads(base: str, rows: int) -> dict:
    """Seconds from navigation until the chart has a trace per topic and the topic totals, the
    newest tweets and the health panel (silver's row count, from the footers) are on the page."""
    from playwright.sync_api import expect, sync_playwright

    def load(page, navigate) -> float:
        began = time.monotonic()
        navigate()
        expect(page.locator("#topics-chart .scatterlayer .trace")).to_have_count(len(TOPICS), timeout=120_000)
        expect(page.locator("#topic-totals tr[data-topic]")).to_have_count(len(TOPICS), timeout=120_000)
        expect(page.locator("#tweets li.tweet").first).to_be_visible(timeout=120_000)
        expect(page.locator('#zones tr[data-zone="silver"] td.rows')).to_have_text(f"{rows:,}", timeout=120_000)
        return round(time.monotonic() - began, 2)

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            cold = load(page, lambda: page.goto(base + "/"))
            warm = load(page, page.reload)
            page.close()
            fresh = browser.new_context().new_page()
            new_browser = load(fresh, lambda: fresh.goto(base + "/"))
        finally:
            browser.close()
    return {"page_load_cold_s": cold, "page_load_warm_reload_s": warm, "page_load_new_browser_warm_server_s": new_browser}


def endpoint_latencies(base: str) -> dict:
    """Milliseconds of each JSON endpoint: its first call here, then the median and the slowest of
    the next ones (the page's loads have warmed the caches by then, except for the rare topic)."""
    endpoints = {f"topics_{name}": f"/api/topics?range={name}" for name in ("hour", "day", "week", "all")}
    endpoints |= {"trending": "/api/trending", "tweets": "/api/tweets", "tweets_big_data": "/api/tweets?topic=big_data",
                  "health": "/api/health"}
    measured = {}
    for name, path in endpoints.items():
        times = []
        for _ in range(1 + ENDPOINT_CALLS):
            began = time.monotonic()
            with urllib.request.urlopen(base + path, timeout=60) as reply:
                reply.read()
            times.append((time.monotonic() - began) * 1000)
        measured[name] = {"first": round(times[0], 1), "p50": round(statistics.median(times[1:]), 1),
                          "max": round(max(times[1:]), 1)}
    return measured


def build_silver(lake: Path, rows: int, seed: int = 42) -> int:
    """`rows` synthetic silver posts over HOURS hour partitions ending at NEWEST_HOUR, busier
    towards the end, in FILES_PER_HOUR commits (files) each, through deltalake with silver's table
    properties (its change feed on); returns the number of files."""
    rng = np.random.default_rng(seed)
    schema = silver_arrow_schema()
    silver = Lake(str(lake), must_exist=False)
    weights = np.linspace(0.5, 1.5, HOURS)
    per_hour = np.floor(weights / weights.sum() * rows).astype(int)
    per_hour[-1] += rows - per_hour.sum()
    first_id = 10**18
    files = 0
    for back, count in zip(range(HOURS - 1, -1, -1), per_hour):
        start = NEWEST_HOUR - timedelta(hours=int(back))
        table = silver_hour(rng, schema, start, int(count), first_id)
        first_id += int(count)
        bounds = np.linspace(0, count, FILES_PER_HOUR + 1).astype(int)
        for index in range(FILES_PER_HOUR):
            silver.append(SILVER, table.slice(bounds[index], bounds[index + 1] - bounds[index]))
            files += 1
    return files


def silver_hour(rng: np.random.Generator, schema: pa.Schema, start: datetime, count: int, first_id: int) -> pa.Table:
    ids = np.arange(first_id, first_id + count).astype(str)
    created = np.sort(rng.integers(0, 3_600_000_000, count)) + int(start.timestamp() * 1_000_000)
    kinds = rng.choice(4, count, p=[0.6, 0.25, 0.08, 0.07])  # original, retweet, quote, reply
    relevance = rng.random(count)
    authors = rng.integers(0, 50_000, count).astype(str)
    topics = string_lists(rng, TOPICS, count, TOPIC_WEIGHTS, most=2)
    hashtags = string_lists(rng, HASHTAGS, count, zipf_weights(len(HASHTAGS)), most=3)
    domains = string_lists(rng, DOMAINS, count, zipf_weights(len(DOMAINS)), most=1)
    picked = rng.choice(len(ENTITIES), count, p=zipf_weights(len(ENTITIES)))
    entity_values = pa.StructArray.from_arrays(
        [pa.array([ENTITIES[i][0] for i in picked]), pa.array([ENTITIES[i][1] for i in picked]),
         pa.array(np.zeros(count, np.int32)), pa.array(np.full(count, 5, np.int32))],
        fields=list(schema.field("entities").type.value_type))
    columns = {
        "edit_root_id": pa.array(ids), "tweet_id": pa.array(ids),
        "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
        "text": pa.array(np.char.add("Benchmark post about models, data and pipelines, number ", ids)),
        "text_clean": pa.array(np.char.add("benchmark post ", ids)),
        "lang": pa.array(np.full(count, "en")),
        "entities": pa.ListArray.from_arrays(pa.array(np.arange(count + 1, dtype=np.int32)), entity_values),
        "hashtags": hashtags, "domains": domains, "topics": topics,
        "relevance": pa.array(relevance), "relevance_label": pa.array(np.where(relevance >= 0.4, "relevant", "not_relevant")),
        "author_id": pa.array(authors), "author_username": pa.array(np.char.add("user", authors)),
        "is_retweet": pa.array(kinds == 1), "is_quote": pa.array(kinds == 2), "is_reply": pa.array(kinds == 3),
        "source_format": pa.array(np.full(count, "v2")), "schema_version": pa.array(np.ones(count, np.int32)),
        "dt": pa.array(np.full(count, f"{start:%Y-%m-%d}")), "hour": pa.array(np.full(count, f"{start:%H}")),
    }
    return pa.table([columns[f.name].cast(f.type) if f.name in columns else pa.nulls(count, f.type) for f in schema],
                    schema=schema)


def zipf_weights(size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1)
    return weights / weights.sum()


def string_lists(rng: np.random.Generator, pool: np.ndarray, count: int, weights: np.ndarray, most: int) -> pa.ListArray:
    """A list of 1..`most` distinct values of `pool` per row, drawn by `weights`."""
    drawn = pool[rng.choice(len(pool), (count, most), p=weights)]
    wanted = rng.integers(1, most + 1, count)
    keep = np.arange(most)[None, :] < wanted[:, None]
    for column in range(1, most):
        keep[:, column] &= ~(drawn[:, :column] == drawn[:, column:column + 1]).any(axis=1)
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(drawn[keep]))


def build_gold(bench: Bench, settings, lake: Path) -> dict:
    """Gold by the gold job (spark_sink/gold.py) over this silver: from a new checkpoint (silver's
    whole snapshot: a rebuild of every hour), with the available-now trigger. Then one more silver
    commit in the newest hour, as a live silver batch leaves it, and the job again: one hour
    recomputed from the change feed. The wall time of each run (with the JVM's start-up) and of
    its micro-batch."""
    rebuild = run_gold(bench, settings, "gold-rebuild")
    Lake(str(lake)).append(SILVER, silver_hour(np.random.default_rng(7), silver_arrow_schema(), NEWEST_HOUR,
                                              ONE_HOUR_ROWS, 10**9))
    one_hour = run_gold(bench, settings, "gold-one-hour")
    return {"gold_rebuild_s": rebuild[0], "gold_rebuild_batch_s": rebuild[1],
            "gold_one_hour_s": one_hour[0], "gold_one_hour_batch_s": one_hour[1]}


def run_gold(bench: Bench, settings, name: str) -> tuple[float, float | None]:
    began = time.monotonic()
    gold = bench.start_python(settings, name, "-m", "spark_sink.submit", "gold", "--available-now")
    wait_for(lambda: not gold.alive(), 1200, f"the gold job ({name}) to finish", interval=0.5)
    wall = time.monotonic() - began
    if gold.popen.returncode != 0:
        raise RuntimeError(f"the gold job failed:\n{gold.log_tail()}")
    batch = re.search(r"gold: batch \d+ read \d+ rows in ([\d.]+) s", gold.log_text())
    bench.stop(gold)
    return round(wall, 1), float(batch.group(1)) if batch else None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False
