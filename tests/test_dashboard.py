"""The dashboard end to end: the real `python -m dashboard` process over a small silver + gold lake
of Delta tables (silver appended an hour a commit with deltalake, gold written from silver's change
feed by the real gold job), driven in Debian's headless Chromium through Playwright. The page
loads nothing from outside the app and logs no console error, its chart renders a trace per topic,
its numbers are gold's (every tweet, or the relevant ones with the switch), a topic filter shows
that topic's newest relevant silver tweets, and with no worker and no Kafka the health panel says
so; at 1024 and 1400 px wide no panel or table overlaps another and no cell's text overflows. The
numbers the tests expect are read apart from the dashboard, through each table's Delta log into
DuckDB. Screenshots are saved in tests/output/dashboard-1024.png and dashboard-1400.png."""
from __future__ import annotations

import json
import os
import random
import re
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer
from deltalake import write_deltalake

from engines.broker import create_topics
from config.settings import Settings
from dashboard import health as dashboard_health
from dashboard.views import Views
from datalake import layout
from datalake.lake import Lake
from datalake.layout import SILVER
from engines.chromium import launch
from spark_sink.metrics import QueryMetrics, start_metrics_server
from spark_sink.schema import silver_arrow_schema
from tests.support.gold_lake import assert_gold_equals_silver, duck, lake_settings, old_gold, run_job
from tests.support.metrics import kafka_progress
from tests.support.processes import REPO, Process, settings_env, wait_for
from tests.support.settings import isolated_settings
from pipeline.processes import free_port
from tweets.entities import load_pipeline, load_vocabulary
from tweets.relevance import NOT_RELEVANT, RELEVANT

pytestmark = pytest.mark.integration

NEWEST_HOUR = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
HOURS = 30
TOPICS = ("ai", "machine_learning", "data_science", "big_data")
OUTPUT = Path(__file__).resolve().parent / "output"
NEWEST = "dt = '2024-05-01' and hour = '12'"
# Entity labels trends leave out by default: numbers, dates and times.
NUMBER_LABELS = {"DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY"}


def silver_post(rng: random.Random, n: int, created_at: datetime, hours_before_newest: int) -> dict:
    """A post whose topics, hashtags, domains and entities make the trends worth looking at:
    LLM surges in the newest hour, rstats and a new domain appear in it, big data is rare lately;
    a date and a number among the entities (trends leave those labels out), long names that must
    wrap in their cells."""
    pool = ["ai", "ai", "machine_learning", "data_science"] + (["big_data"] * 3 if hours_before_newest > 6 else [])
    topics = sorted(set(rng.sample(pool, rng.choice((1, 1, 2)))))
    hashtags = [rng.choice(["AI", "MachineLearning", "DataScience", "BigData"])]
    if hours_before_newest == 0 and rng.random() < 0.6:
        hashtags.append("LLM")
    elif rng.random() < 0.05:
        hashtags.append("LLM")
    if hours_before_newest == 0 and rng.random() < 0.3:
        hashtags.append("rstats")
    domains = [rng.choice(["arxiv.org", "github.com", "huggingface.co", "blog.research.google.example.com"])]
    if hours_before_newest == 0 and rng.random() < 0.4:
        domains = ["kaggle.com"]
    entities = [{"text": rng.choice(["OpenAI", "Spark", "PyTorch", "Stanford Institute for Human-Centered AI"]),
                 "label": rng.choice(["ORG", "PRODUCT"]), "start": 0, "end": 5}]
    entities += [{"text": text, "label": label, "start": 0, "end": 4}
                 for text, label, every in (("2024", "DATE", 3), ("three", "CARDINAL", 5)) if n % every == 0]
    kind = rng.choice(["original"] * 5 + ["retweet", "quote", "reply"])
    relevance = rng.random()
    author = f"author{rng.randrange(25)}"
    return {
        "edit_root_id": f"{n}", "tweet_id": f"{n}", "created_at": created_at,
        "text": f"post {n} about {' and '.join(topics)} #{' #'.join(hashtags)}", "text_clean": f"post {n}",
        "lang": "en", "entities": entities, "hashtags": hashtags, "domains": domains, "topics": topics,
        "relevance": relevance, "relevance_label": RELEVANT if relevance >= 0.25 else NOT_RELEVANT,
        "author_id": author.replace("author", "9"), "author_username": author,
        "is_retweet": kind == "retweet", "is_quote": kind == "quote", "is_reply": kind == "reply",
        "source_format": "v2", "schema_version": 1,
    }


def hour_partition(moment: datetime) -> dict[str, str]:
    return {"dt": moment.strftime("%Y-%m-%d"), "hour": moment.strftime("%H")}


@pytest.fixture(scope="module")
def dashboard_lake(tmp_path_factory) -> Path:
    """Silver as a Delta table (30 hours, one deltalake commit per hour, with silver's table
    properties: its change feed on), and gold written from it by the gold job, which follows
    silver's change feed from a new checkpoint (the feed starts with silver's snapshot, every hour
    of it). Then a parquet file in silver's newest hour that no commit names (a writer that died
    before its commit): readers of the table must not see its tweets."""
    root = tmp_path_factory.mktemp("dashboard") / "lake"
    rng = random.Random(7)
    schema = silver_arrow_schema()
    lake = Lake(str(root), must_exist=False)
    posts = []
    for back in range(HOURS - 1, -1, -1):
        start = NEWEST_HOUR - timedelta(hours=back)
        count = 20 + 3 * (HOURS - back) + (40 if back == 0 else 0)
        hour_posts = [silver_post(rng, len(posts) + i, start + timedelta(seconds=rng.randrange(3600)), back)
                      | hour_partition(start) for i in range(count)]
        posts += hour_posts
        lake.append(SILVER, pa.Table.from_pylist(hour_posts, schema=schema))
    assert lake.table(SILVER).version() == HOURS - 1
    run_job(lake_settings(root).model_copy(update={"gold_max_files_per_trigger": 1000}), root.parent, "gold")
    # Gold is silver's, counted again with DuckDB, and its last commit says it read silver's
    # change feed up to silver's last version.
    assert assert_gold_equals_silver(root)[layout.GOLD_TOPIC_HOURLY] > 0
    for table in layout.GOLD_TABLES:
        commit = lake.table(table).history(1)[0]
        assert json.loads(commit["userMetadata"])["silver_version"] == HOURS - 1, (table, commit)
    orphan = silver_post(rng, 10**6, NEWEST_HOUR + timedelta(minutes=59, seconds=59), 0) | {"topics": ["big_data"]}
    orphan |= {"relevance": 0.99, "relevance_label": "relevant"} | hour_partition(NEWEST_HOUR)
    pq.write_table(pa.Table.from_pylist([orphan], schema=schema),
                   root / SILVER.path / layout.partition_path(hour_partition(NEWEST_HOUR)) / "part-uncommitted.parquet")
    return root


def gold(lake: Path, zone, select: str, where: str = "true") -> list[tuple]:
    """`select` over a gold table's current version (its Delta log, into DuckDB), apart from the
    dashboard's reading of it."""
    name = zone.path.rsplit("/", 1)[-1]
    return duck(lake, zone).execute(f"select {select} from {name} where {where}").fetchall()


def silver_count(lake: Path) -> int:
    return duck(lake, SILVER).execute("select count(*) from silver").fetchall()[0][0]


def within_hours(hours: int) -> str:
    first = NEWEST_HOUR - timedelta(hours=hours - 1)
    return f"strptime(dt || ' ' || hour, '%Y-%m-%d %H') >= TIMESTAMP '{first:%Y-%m-%d %H:%M:%S}'"


def gold_topic_totals(lake: Path, hours: int | None, count: str = "tweets") -> dict[str, int]:
    where = within_hours(hours) if hours else "true"
    return {topic: int(tweets) for topic, tweets in
            gold(lake, layout.GOLD_TOPIC_HOURLY, f"topic, sum({count})", f"{where} group by topic")}


def gold_newest_hashtags(lake: Path, count: str = "tweets") -> dict[str, int]:
    """Each hashtag's `count` in the newest hour, those above 0 (the ones that trend)."""
    return dict(gold(lake, layout.GOLD_HASHTAGS_HOURLY, f"hashtag, {count}", f"{NEWEST} and {count} > 0"))


def newest_relevant(lake: Path, topic: str | None, limit: int = 20) -> list[str]:
    where = "relevance_label = 'relevant'" + (f" and list_contains(topics, '{topic}')" if topic else "")
    return [row[0] for row in duck(lake, SILVER).execute(
        f"select tweet_id from silver where {where} "
        f"order by created_at desc, tweet_id desc limit {limit}").fetchall()]


@pytest.fixture(scope="module")
def dashboard(dashboard_lake, tmp_path_factory):
    """`python -m dashboard` on a free port over the lake, with no worker and no broker to reach."""
    workdir = tmp_path_factory.mktemp("dashboard-process")
    port = free_port()
    settings = Settings(_env_file=None, lake_root=str(dashboard_lake), faust_web_port=free_port(),
                        broker_port=free_port(), dashboard_refresh_seconds=2.0)
    env = settings_env(settings)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "dashboard", "--port", str(port), "--lake-root", str(dashboard_lake)]
    with Process("dashboard", command, env, workdir) as process:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{base}/api/topics"), 60, "the dashboard to answer", (process,))
        yield base, process


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_endpoints_return_gold_and_silver_numbers(dashboard, dashboard_lake):
    base, _ = dashboard
    for range_name, hours in (("hour", 1), ("day", 24), ("week", 168), ("all", None)):
        status, topics = get_json(f"{base}/api/topics?range={range_name}")
        assert status == 200
        assert {t["topic"]: t["tweets"] for t in topics["topics"]} == gold_topic_totals(dashboard_lake, hours)
        status, relevant = get_json(f"{base}/api/topics?range={range_name}&relevant=1")
        assert status == 200 and relevant["relevant"] is True
        assert ({t["topic"]: t["tweets"] for t in relevant["topics"]}
                == gold_topic_totals(dashboard_lake, hours, "relevant_tweets"))
        assert all(sum(t["tweets_per_hour"]) == t["tweets"] and t["originals"] is None for t in relevant["topics"])
    assert topics["newest_hour"] == "2024-05-01T12:00:00Z"
    assert len(topics["hour_starts"]) == HOURS
    # Not every tweet is relevant: the switch changes the numbers.
    everything = {t["topic"]: t["tweets"] for t in topics["topics"]}
    assert all(t["tweets"] < everything[t["topic"]] for t in relevant["topics"])
    assert get_json(f"{base}/api/topics?range=month")[0] == 400

    for count, relevant in (("tweets", "0"), ("relevant_tweets", "1")):
        status, trends = get_json(f"{base}/api/trending?relevant={relevant}")
        assert status == 200 and trends["last_hour"] == "2024-05-01T12:00:00Z"
        llm = next(t for t in trends["hashtags"] if t["hashtag"] == "LLM")
        ((last,),) = gold(dashboard_lake, layout.GOLD_HASHTAGS_HOURLY, f"sum({count})", f"{NEWEST} and hashtag = 'LLM'")
        ((prior,),) = gold(dashboard_lake, layout.GOLD_HASHTAGS_HOURLY, f"sum({count})",
                           f"not ({NEWEST}) and {within_hours(25)} and hashtag = 'LLM'")
        assert (llm["tweets"], llm["prior_hourly_mean"]) == (last, round(prior / 24, 3)), count
        assert {t["hashtag"]: t["tweets"] for t in trends["hashtags"]} == gold_newest_hashtags(dashboard_lake, count)
        assert next(t for t in trends["hashtags"] if t["hashtag"] == "rstats")["new"] is True
        assert {t["domain"] for t in trends["domains"]} >= {"kaggle.com"}
        # Gold has dates and numbers among the newest hour's entities; trends leave them out.
        assert {t["label"] for t in trends["entities"]} == {"ORG", "PRODUCT"}
    newest_labels = {label for (label,) in gold(dashboard_lake, layout.GOLD_ENTITIES_HOURLY, "distinct label", NEWEST)}
    assert newest_labels == {"ORG", "PRODUCT", "DATE", "CARDINAL"}
    assert get_json(f"{base}/api/trending?relevant=yes")[0] == 400

    status, tweets = get_json(f"{base}/api/tweets?topic=big_data&limit=5")
    assert status == 200 and [t["tweet_id"] for t in tweets["tweets"]] == newest_relevant(dashboard_lake, "big_data", 5)

    status, health = get_json(f"{base}/api/health")
    assert status == 200 and health["worker"]["reachable"] is False
    zones = {zone["zone"]: zone for zone in health["zones"]}
    assert list(zones) == [zone.path for zone in layout.ZONES]
    assert zones["silver"]["rows"] == silver_count(dashboard_lake) == 20 * HOURS + 3 * HOURS * (HOURS + 1) // 2 + 40
    assert zones["gold/topic_hourly"]["rows"] == gold(dashboard_lake, layout.GOLD_TOPIC_HOURLY, "count(*)")[0][0]
    assert zones["silver"]["newest_partition"] == "dt=2024-05-01/hour=12"
    # Each table's version as its log says (silver: one commit an hour); no table yet: null.
    lake = Lake(str(dashboard_lake))
    assert zones["silver"]["version"] == HOURS - 1
    for table in layout.GOLD_TABLES:
        assert zones[table.path]["version"] == lake.table(table).version() >= 1, table
    assert [zones[zone.path]["version"] for zone in (layout.BRONZE, *layout.QUARANTINE_ZONES)] == [None] * 3
    assert zones["bronze"]["rows"] == 0
    # No Kafka answers: both lags are unavailable, each with its reason.
    for lag in (health["consumer_lag"]["worker"], health["consumer_lag"]["bronze_sink"]):
        assert lag["available"] is False and lag["error"]
    assert health["quarantine"] == {"rows": 0, "files": 0}


def test_the_page_in_chromium(dashboard, dashboard_lake):
    from playwright.sync_api import expect, sync_playwright

    base, process = dashboard
    problems: list[str] = []
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}")
                    if request.url.startswith(base) else None)

            def only_the_app(route):
                if route.request.url.startswith(base):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_app)
            page.goto(base + "/")

            traces = page.locator("#topics-chart .scatterlayer .trace")
            expect(traces).to_have_count(len(TOPICS), timeout=20_000)
            assert page.locator("#topics-chart svg.main-svg").count() >= 1
            assert page.locator("#topics-chart .scatterlayer .trace path.js-line").count() == len(TOPICS)

            day = gold_topic_totals(dashboard_lake, 24)
            expect(page.locator("#topic-totals tr[data-topic]")).to_have_count(len(day))
            assert shown_totals(page) == day
            page.locator("#range label", has_text="All").click()
            everything = gold_topic_totals(dashboard_lake, None)
            wait_for(lambda: shown_totals(page) == everything, 10, "the totals of all of gold", (process,))

            expect(page.locator("#trending-hashtags tbody tr").first).to_be_visible()
            assert shown_hashtags(page) == gold_newest_hashtags(dashboard_lake)
            assert page.locator("#trending-hashtags td.growth", has_text="new").count() >= 1
            assert NUMBER_LABELS.isdisjoint(page.locator("#trending-entities td.label").all_inner_texts())

            expect(page.locator("#worker-status")).to_contain_text("worker not reachable")
            expect(page.locator("#lag-worker")).to_contain_text("unavailable")
            expect(page.locator("#lag-bronze-sink")).to_have_class(re.compile(r"\bproblem\b"))
            expect(page.locator('#zones tr[data-zone="silver"] td.rows')).to_have_text(f"{silver_count(dashboard_lake):,}")
            expect(page.locator("#quarantine-rows")).to_have_text("0")

            expect(page.locator("#tweets li.tweet")).to_have_count(20)
            assert shown_tweets(page) == newest_relevant(dashboard_lake, None)
            page.locator("#topic-filter label", has_text="Big Data").click()
            big_data = newest_relevant(dashboard_lake, "big_data")
            assert big_data != newest_relevant(dashboard_lake, None)
            wait_for(lambda: shown_tweets(page) == big_data, 10, "the newest big data tweets", (process,))
            assert all("big_data" in topics.split() for topics in
                       page.locator("#tweets li.tweet").evaluate_all("items => items.map(i => i.dataset.topics)"))
            assert page.locator("#tweets li.tweet a").first.get_attribute("href").startswith("https://x.com/")

            first_update = page.locator("#updated-at").inner_text()
            wait_for(lambda: page.locator("#updated-at").inner_text() != first_update, 10,
                       "the page to refresh itself", (process,))

            OUTPUT.mkdir(exist_ok=True)
            for width in (1024, 1400):
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_function(CHART_FITS)
                assert layout_problems(page) == [], f"at {width} px"
                screenshot = OUTPUT / f"dashboard-{width}.png"
                page.screenshot(path=str(screenshot), full_page=True)
                print(f"dashboard screenshot: {screenshot}")

            # The switch: the chart, the totals (range "all" still) and the trends count relevant tweets only.
            page.locator("#relevance-switch label", has_text="Relevant only").click()
            expect(page.locator("#relevance-switch")).to_have_attribute("data-relevant", "1")
            relevant = gold_topic_totals(dashboard_lake, None, "relevant_tweets")
            assert relevant != everything
            wait_for(lambda: shown_totals(page) == relevant, 10, "the totals of relevant tweets", (process,))
            assert page.locator("#topic-totals td.originals").all_inner_texts() == ["–"] * len(relevant)
            relevant_hashtags = gold_newest_hashtags(dashboard_lake, "relevant_tweets")
            assert relevant_hashtags != gold_newest_hashtags(dashboard_lake)
            wait_for(lambda: shown_hashtags(page) == relevant_hashtags, 10, "the trends of relevant tweets",
                       (process,))
            expect(page.locator("#topics-chart .ytitle")).to_have_text("relevant tweets per hour")
            assert layout_problems(page) == []
        finally:
            browser.close()
    assert outside == [], f"the page loaded from outside the app: {outside}"
    assert problems == [], "\n".join(problems)


def shown_totals(page) -> dict[str, int]:
    rows = page.locator("#topic-totals tr[data-topic]").evaluate_all(
        "rows => rows.map(r => [r.dataset.topic, r.querySelector('td.tweets').textContent])")
    return {topic: int(text.replace(",", "")) for topic, text in rows}


def shown_hashtags(page) -> dict[str, int]:
    rows = page.locator("#trending-hashtags tbody tr").evaluate_all(
        "rows => rows.map(r => [r.querySelector('td.hashtag').textContent, r.querySelector('td.tweets').textContent])")
    return {tag: int(text.replace(",", "")) for tag, text in rows}


# What "lays out cleanly" means: no two of the page's panels, tables, charts and header items
# overlap unless one holds the other, none sticks out of its section, no cell's text runs past the
# cell, and the page does not scroll sideways.
LAYOUT_PROBLEMS = """() => {
    const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')
        + ' "' + e.textContent.trim().slice(0, 30) + '"';
    const boxes = [...document.querySelectorAll(
        'header > *, section, .trends > div, table, #topics-chart, .stats > div')];
    const problems = [];
    for (const [i, a] of boxes.entries()) {
        const r = a.getBoundingClientRect();
        for (const b of boxes.slice(i + 1)) {
            const s = b.getBoundingClientRect();
            if (a.contains(b) || b.contains(a)) continue;
            if (r.left < s.right - 0.5 && s.left < r.right - 0.5 && r.top < s.bottom - 0.5 && s.top < r.bottom - 0.5)
                problems.push(name(a) + ' overlaps ' + name(b));
        }
        const section = a.parentElement && a.parentElement.closest('section');
        if (section) {
            const s = section.getBoundingClientRect();
            if (r.left < s.left - 0.5 || r.right > s.right + 0.5)
                problems.push(name(a) + ' sticks out of ' + name(section));
        }
    }
    for (const cell of document.querySelectorAll('td, th'))
        if (cell.scrollWidth > cell.clientWidth) problems.push('text overflows ' + name(cell));
    const page = document.documentElement;
    if (page.scrollWidth > page.clientWidth) problems.push('the page scrolls sideways: ' + page.scrollWidth + ' px');
    return problems;
}"""


# Plotly follows a new window width on a timer: until then its chart is as wide as before.
CHART_FITS = """() => {
    const chart = document.querySelector('#topics-chart'), svg = chart.querySelector('svg.main-svg');
    return svg !== null && Math.abs(svg.getBoundingClientRect().width - chart.getBoundingClientRect().width) < 2;
}"""


def layout_problems(page) -> list[str]:
    return page.evaluate(LAYOUT_PROBLEMS)


def shown_tweets(page) -> list[str]:
    return page.locator("#tweets li.tweet").evaluate_all("items => items.map(i => i.dataset.tweetId)")


def test_trending_entities_show_the_labels_trend_entity_labels_names(dashboard_lake):
    settings = Settings(_env_file=None, lake_root=str(dashboard_lake), trend_entity_labels=" DATE, ORG ,")
    assert settings.trend_entity_label_list == ["DATE", "ORG"]
    entities = Views(settings).trending()["entities"]
    expected = gold(dashboard_lake, layout.GOLD_ENTITIES_HOURLY, "entity, label, tweets",
                    f"{NEWEST} and label in ('DATE', 'ORG')")
    assert {(t["entity"], t["label"], t["tweets"]) for t in entities} == set(expected)
    assert {"DATE", "ORG"} == {t["label"] for t in entities}


def test_trend_entity_labels_are_the_models_but_numbers_dates_and_times():
    vocabulary = load_vocabulary()
    labels = set(load_pipeline(vocabulary).get_pipe("ner").labels) | set(vocabulary.labels)
    assert NUMBER_LABELS <= labels
    assert set(Settings(_env_file=None).trend_entity_label_list) == labels - NUMBER_LABELS


def test_a_gold_written_before_relevant_tweets_counts_no_relevant_tweet_until_recomputed(tmp_path):
    """Gold tables without relevant_tweets (tests/gold_lake.old_gold: a "stale" term in 2024-03-01
    00:00), then topic_hourly with the column added by a later hour (as the gold job's mergeSchema
    adds it): the old hour reads 0 relevant tweets, the new hour its own."""
    old_gold(tmp_path)
    newer = pa.table({"topic": ["ai"], "tweets": pa.array([5], pa.int64()),
                      "relevant_tweets": pa.array([3], pa.int64()), "dt": ["2024-03-01"], "hour": ["01"]})
    views = Views(Settings(_env_file=None, lake_root=str(tmp_path)))
    relevant = views.topics("all", relevant=True)["topics"]
    assert {t["topic"]: t["tweets"] for t in relevant} == {"stale": 0}
    assert views.trending(relevant=True)["hashtags"] == []
    write_deltalake(str(tmp_path / layout.GOLD_TOPIC_HOURLY.path), newer, mode="append", schema_mode="merge")
    counts = {relevant: {t["topic"]: t["tweets_per_hour"] for t in views.topics("all", relevant=relevant)["topics"]}
              for relevant in (False, True)}
    assert counts == {False: {"ai": [0, 5], "stale": [1, 0]}, True: {"ai": [0, 3], "stale": [0, 0]}}


def test_the_sink_lag_comes_from_the_sinks_metrics_and_is_unavailable_without_them(session_kafka):
    """The health panel's lags with Kafka up and no worker: the worker's is its group's (nothing
    committed: all of the raw topic); the bronze sink's is the typed topic's end offsets minus the
    offsets its metrics say its last micro-batch read to (tweetlake_spark_kafka_end_offset, as the
    sink's metrics server serves them), and unavailable while no sink metrics answer."""
    host, port = session_kafka.split(":")
    settings = isolated_settings(broker_host=host, broker_port=int(port), topic_partitions=2,
                                 spark_metrics_port=free_port())
    create_topics(settings)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "log_level": 2})
    for topic, partition, count in ((settings.topic_raw, 0, 3), (settings.topic_typed, 0, 5),
                                    (settings.topic_typed, 1, 2)):
        for n in range(count):
            producer.produce(topic, value=b"{}", key=str(n).encode(), partition=partition)
    assert producer.flush(30) == 0

    # A broker started moments ago answers "not coordinator" until its offsets topic is ready.
    wait_for(lambda: dashboard_health.consumer_lag(settings, timeout=5)["worker"]["available"], 60,
               "the group coordinator")
    lag = dashboard_health.consumer_lag(settings, timeout=5)
    assert lag["worker"] == {"available": True, "topic": settings.topic_raw, "lag": 3,
                             "partitions": {"0": 3, "1": 0}, "group": settings.faust_app_id}
    assert lag["bronze_sink"]["available"] is False and lag["bronze_sink"]["error"]

    metrics = QueryMetrics()
    metrics.record(kafka_progress(4, 6, end={settings.topic_typed: {"0": 4, "1": 2}},
                                  latest={settings.topic_typed: {"0": 5, "1": 2}}))
    metrics.record(kafka_progress(2, 1, end={settings.topic_dead_letter: {"0": 1, "1": 0}},
                                  latest={settings.topic_dead_letter: {"0": 1, "1": 0}}, name="dead_letters"))
    start_metrics_server(settings, "bronze", metrics)
    lag = dashboard_health.consumer_lag(settings, timeout=5)
    assert lag["bronze_sink"] == {"available": True, "topic": settings.topic_typed, "lag": 1,
                                  "partitions": {"0": 1, "1": 0}}
