"""A lake whose silver and gold the real jobs wrote from bronze with repeats, an edited post that
moves to the next hour, and a late hour a month back, over gold tables as a lake written before
relevant_tweets left them; and gold's counts computed again straight from silver with DuckDB, to
hold gold to."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import random
import time

import duckdb
import pyarrow as pa

from config.settings import Settings
from datalake.commits import commit_metadata
from datalake.lake import Lake
from datalake.layout import GOLD_COLUMNS, GOLD_DOMAINS_HOURLY, GOLD_ENTITIES_HOURLY, GOLD_HASHTAGS_HOURLY, \
    GOLD_TABLES, GOLD_TOPIC_HOURLY, PARTITION_COLUMNS, SILVER, Zone
from tests.support.bronze_files import edited, tweet, write_bronze
from tests.support.processes import start_sink, wait_for
from tweets.relevance import RELEVANT

START = datetime(2024, 5, 1, 7, 5, tzinfo=timezone.utc)
LATE = datetime(2024, 4, 1, 12, 10, tzinfo=timezone.utc)
TEXTS = (
    "Fine-tuning a PyTorch model with OpenAI embeddings for machine learning",
    "Big data pipelines on Apache Spark and Kafka, a data engineering talk",
    "Deep learning with TensorFlow at Google DeepMind: new neural network results",
    "Data science notebook: pandas and scikit-learn for a regression model",
)
HASHTAGS = (["MachineLearning", "AI"], ["BigData"], ["DeepLearning", "AI"], ["DataScience"])
DOMAINS = ("arxiv.org", "github.com", "huggingface.co", "kaggle.com")


def post(moment: datetime, n: int, author: int) -> dict:
    kind = n % 5
    return tweet(moment, f"{TEXTS[n % 4]} (part {n})", sequence=n % 4000, hashtags=HASHTAGS[n % 4],
                 urls=[f"https://{DOMAINS[n % 4]}/item/{n}"], author_id=str(1000 + author),
                 author_username=f"author{author}", is_retweet=kind == 1, is_quote=kind == 2, is_reply=kind == 3)


def first_rows() -> list[dict]:
    """Three hours of posts; a post edited across the hour (07:58, then 08:03); a post whose AI is a
    game's (a topic, but not relevant)."""
    rows = [post(START + timedelta(minutes=3 * n), n, author=n % 7) for n in range(60)]
    crossing = edited(datetime(2024, 5, 1, 7, 58, tzinfo=timezone.utc),
                      ["Machine learning on Spark, first draft", "Machine learning on Apache Spark, edited"])
    game = tweet(START + timedelta(minutes=50), "The game's AI is so dumb, this boss fight is unfair", sequence=3999,
                 hashtags=["gaming"])
    return rows + [game] + crossing


def late_batches(first: list[dict]) -> list[list[dict]]:
    """Bronze commits of one file each: a backfilled hour a month back (in two), more posts in an
    hour gold already has, and repeats."""
    late = [post(LATE + timedelta(minutes=n), 100 + n, author=n % 3) for n in range(12)]
    more = [post(START + timedelta(minutes=1, seconds=n), 200 + n, author=9) for n in range(6)]
    return [late[:6], late[6:], more, first[:4]]


SILVER_START = datetime(2024, 5, 1, 7, 40, tzinfo=timezone.utc)
SILVER_TEXT = "Yann LeCun and Google DeepMind in Vancouver: new PyTorch results &amp; a thread 🚀 @ana https://t.co/abc"


def silver_cases() -> dict:
    """The posts test_silver holds silver to, each version where it arrives: `first` in the first
    bronze batches, `second` (repeats and the other versions of edited posts) later."""
    posts = [tweet(SILVER_START + timedelta(seconds=n), f"Fine-tuning a PyTorch model for NLP, part {n}",
                   sequence=n % 4000, hashtags=["MachineLearning"], urls=[f"https://arxiv.org/abs/2405.{n:05d}"])
             for n in range(30)]
    replaced = edited(SILVER_START + timedelta(minutes=3), ["Gemini review, first take", "Gemini review, corrected"], 25)
    older_later = edited(SILVER_START + timedelta(minutes=4), ["LLaMA notes v1", "LLaMA notes v2"], 10)
    one_batch = edited(SILVER_START + timedelta(minutes=5), ["BERT thread v1", "BERT thread v2", "BERT thread v3"], 5)
    original = posts[0]
    retweet = tweet(SILVER_START + timedelta(minutes=9), f"RT @ana: {original['text']}", sequence=4001,
                    is_retweet=True, retweeted_text=original["text"],
                    referenced_tweets=[{"type": "retweeted", "id": original["tweet_id"]}])
    rich = tweet(SILVER_START + timedelta(minutes=10), SILVER_TEXT, sequence=900, hashtags=["DeepLearning"],
                 urls=["https://www.arxiv.org/abs/2405.1"])
    lateral = tweet(SILVER_START + timedelta(minutes=10), "Grazie ai ragazzi della scuola per la festa di ieri sera",
                    sequence=901, lang=None)
    return {
        "posts": posts, "replaced": replaced, "older_later": older_later, "one_batch": one_batch,
        "retweet": retweet, "rich": rich, "lateral": lateral,
        "first": posts + [replaced[0], older_later[1], one_batch[2], one_batch[0], retweet, rich, lateral],
        "second": posts[:20] + [replaced[1], older_later[0], one_batch[1], retweet],
        "keys": {row["edit_history_tweet_ids"][0] for row in posts + replaced + older_later + one_batch
                 + [retweet, rich, lateral]},
    }


def run_job(settings: Settings, workdir: Path, job: str, name: str | None = None, timeout: float = 240) -> str:
    """A Spark job (silver, gold) with the available-now trigger, to its end; its log."""
    with start_sink(settings, workdir, "--available-now", job=job, name=name or job) as process:
        wait_for(lambda: not process.alive(), timeout, f"the {job} job to finish")
        assert process.popen.returncode == 0, process.log_tail()
        return process.log_text()


def lake_settings(lake: Path) -> Settings:
    return Settings(_env_file=None, lake_root=str(lake), silver_trigger_seconds=1.0, gold_trigger_seconds=1.0,
                    gold_max_files_per_trigger=1, spark_metrics_port=0)


# --- gold again, from silver, without Spark ------------------------------------------------------


def duck(lake: Path, *zones: Zone) -> duckdb.DuckDBPyConnection:
    """DuckDB with each zone's current version as a view, through deltalake's arrow dataset (no
    delta extension loads offline for DuckDB 2.0), named after its last path part."""
    db = duckdb.connect()
    for zone in zones:
        db.register(zone.path.rsplit("/", 1)[-1], Lake(str(lake)).dataset(zone))
    return db


def silver_view(lake: Path) -> duckdb.DuckDBPyConnection:
    return duck(lake, SILVER)


def expected_gold(lake: Path) -> dict[Zone, set[tuple]]:
    """Each gold table's rows as silver says they must be: (dt, hour, group..., counts...)."""
    db = silver_view(lake)
    flags = "coalesce(is_retweet, false) OR coalesce(is_quote, false) OR coalesce(is_reply, false)"
    posts = f"count(DISTINCT edit_root_id), count(DISTINCT edit_root_id) FILTER (WHERE relevance_label = '{RELEVANT}')"
    queries = {
        GOLD_TOPIC_HOURLY: f"""
            SELECT dt, hour, topic, {posts},
                   count(DISTINCT edit_root_id) FILTER (WHERE NOT ({flags})),
                   count(DISTINCT edit_root_id) FILTER (WHERE is_retweet),
                   count(DISTINCT edit_root_id) FILTER (WHERE is_quote),
                   count(DISTINCT edit_root_id) FILTER (WHERE is_reply),
                   count(DISTINCT author_id)
            FROM (SELECT *, unnest(topics) AS topic FROM silver) GROUP BY ALL""",
        GOLD_HASHTAGS_HOURLY: f"""SELECT dt, hour, hashtag, {posts}
            FROM (SELECT *, unnest(hashtags) AS hashtag FROM silver) GROUP BY ALL""",
        GOLD_ENTITIES_HOURLY: f"""SELECT dt, hour, e.text, e.label, {posts}
            FROM (SELECT *, unnest(entities) AS e FROM silver) GROUP BY ALL""",
        GOLD_DOMAINS_HOURLY: f"""SELECT dt, hour, domain, {posts}
            FROM (SELECT *, unnest(domains) AS domain FROM silver) GROUP BY ALL""",
    }
    return {table: set(db.execute(sql).fetchall()) for table, sql in queries.items()}


def gold_rows(lake: Path, table: Zone) -> list[tuple]:
    """A gold table's rows as (dt, hour, group..., counts...), through its Delta log, in DuckDB."""
    groups, counts = GOLD_COLUMNS[table]
    columns = ", ".join(("dt", "hour") + groups + counts)
    return duck(lake, table).execute(f"SELECT {columns} FROM {table.path.rsplit('/', 1)[-1]}").fetchall()


def assert_gold_equals_silver(lake: Path) -> dict[Zone, int]:
    """Every gold count equals the count from silver, no gold key twice; rows per table."""
    expected = expected_gold(lake)
    sizes = {}
    for table, rows in expected.items():
        actual = gold_rows(lake, table)
        keys = [row[: 2 + len(GOLD_COLUMNS[table][0])] for row in actual]
        assert len(keys) == len(set(keys)), f"{table}: a key is in gold twice"
        assert set(actual) == rows, f"{table}: gold {sorted(set(actual) ^ rows)[:5]} differ from silver"
        sizes[table] = len(actual)
    return sizes


@dataclass
class GoldLake:
    """The lake, the jobs' logs (rebuild, killed run, restart), silver's rows after its first run,
    the posts of silver_cases(), and each gold table's version when the live gold job was killed."""

    root: Path
    logs: dict[str, str]
    silver_after_first: list[dict]
    cases: dict
    versions_at_kill: dict[str, int]


def gold_batches(lake: Path, table: Zone = GOLD_TOPIC_HOURLY, after_version: int = -1) -> list[int]:
    """The gold job's micro-batches a gold table's log holds, from its commits' metadata (in the
    order committed), of the versions after `after_version`."""
    history = Lake(str(lake), must_exist=False).table(table)
    commits = [] if history is None else history.history()
    return [commit_metadata(c)["batch"] for c in reversed(commits)
            if c["version"] > after_version and "batch" in commit_metadata(c)]


def build_gold_lake(workdir: Path) -> GoldLake:
    """Bronze with repeats -> silver; gold tables as an older gold job left them (old_gold); the gold
    job started live: its batch 0 rebuilds gold. Then late rows in single-file bronze commits ->
    silver, a batch per commit; the live gold job, following silver's change feed a file a batch,
    SIGKILLed in the middle of those -> gold again, from its checkpoint, which must end equal to
    silver."""
    lake = workdir / "lake"
    settings = lake_settings(lake)
    rows = first_rows()
    cases = silver_cases()
    write_bronze(lake, rows + cases["first"])
    write_bronze(lake, rows[:20] + rows[-1:])  # repeats, the edit among them
    logs = {"silver-0": run_job(settings, workdir, "silver", "silver-0")}
    old_gold(lake)
    silver_after_first = silver_table(lake).to_pylist()
    gold = start_sink(settings, workdir, job="gold", name="gold-1")
    try:
        wait_for(lambda: 0 in gold_batches(lake), 180, "the gold job's rebuild (its batch 0)", (gold,))
        for rows_of_commit in late_batches(rows) + [cases["second"]]:
            write_bronze(lake, rows_of_commit)
        with start_sink(settings.model_copy(update={"silver_max_files_per_trigger": 1}), workdir, "--available-now",
                        job="silver", name="silver-1") as silver:
            wait_for(lambda: len(gold_batches(lake)) >= 3, 240, "gold batches after the rebuild", (gold,))
            time.sleep(random.Random(3).uniform(0.0, 2.0))  # anywhere in a batch: reading, writing, committing
            gold.kill()
            wait_for(lambda: not silver.alive(), 240, "the silver job to finish")
            assert silver.popen.returncode == 0, silver.log_tail()
            logs["silver-1"] = silver.log_text()
    finally:
        gold.kill()
        gold.stop()
    versions_at_kill = {table.path: Lake(str(lake)).table(table).version() for table in GOLD_TABLES}
    logs["gold-1"] = (workdir / "gold-1.log").read_text()
    logs["gold-2"] = run_job(settings.model_copy(update={"gold_max_files_per_trigger": 50}), workdir, "gold", "gold-2")
    return GoldLake(lake, logs, silver_after_first, cases, versions_at_kill)


def old_gold(lake: Path) -> None:
    """Each gold table as a lake written before relevant_tweets holds it: without that column, one
    row in an hour silver never had (the rebuild must clear it)."""
    for table in GOLD_TABLES:
        groups, counts = GOLD_COLUMNS[table]
        schema = pa.schema([(name, pa.string()) for name in groups]
                           + [(name, pa.int64()) for name in counts if name != "relevant_tweets"]
                           + [(name, pa.string()) for name in PARTITION_COLUMNS])
        row = {name: "stale" for name in groups} | {"tweets": 1, "dt": "2024-03-01", "hour": "00"}
        Lake(str(lake), must_exist=False).append(table, pa.Table.from_pylist([row], schema))


def silver_table(lake: Path) -> pa.Table:
    """Silver's current version, through its Delta log."""
    return Lake(str(lake)).read(SILVER)
