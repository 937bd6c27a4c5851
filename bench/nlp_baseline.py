"""What silver's NLP costs next to bare spaCy NER, in tweets/s and CPU-s per 1,000 tweets on one core.

    .venv/bin/python bench/nlp_baseline.py [--seed-file PATH] [--rounds 3]

nlp.pipe (tok2vec + ner only) against tweets.enrich.Enricher over the same tweets; `main` says which.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

# The checkout instead of bench/ itself: bench/profile.py would shadow the standard library's
# profile module, which spaCy imports.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import psutil  # noqa: E402

from tweets.enrich import Enricher  # noqa: E402
from tweets.entities import MODEL_NAME, UNUSED_PIPES  # noqa: E402
from tweets.normalizer import Accepted, FilterPolicy, normalize  # noqa: E402
from tweets.relevance_training import DEFAULT_SEED_FILE  # noqa: E402
from tweets.text import clean_text, tweet_content  # noqa: E402

_WARM_UP = [f"Warm-up tweet {i}: Google researchers in Toronto train a model on {i} GPUs" for i in range(64)]
_BATCH_SIZE = 256


def bare_nlp():
    """en_core_web_sm with tok2vec and ner only, no vocabulary: the baseline, warmed up."""
    import spacy

    nlp = spacy.load(MODEL_NAME, exclude=list(UNUSED_PIPES))
    list(nlp.pipe(_WARM_UP, batch_size=_BATCH_SIZE))
    return nlp


def nlp_pipe_seconds(texts: Sequence[str]) -> dict:
    """CPU and wall seconds of bare nlp.pipe over the texts (docs consumed, entities read), with
    a fresh pipeline: spaCy keeps every word it saw, and a second pass over the same texts
    would skip that work (~0.25 ms a tweet) which the fresh Enricher has to do."""
    nlp = bare_nlp()
    cpu, wall = time.process_time(), time.perf_counter()
    for doc in nlp.pipe(texts, batch_size=_BATCH_SIZE):
        doc.ents  # noqa: B018 - what a caller would read
    return _timing(len(texts), time.process_time() - cpu, time.perf_counter() - wall)


def enrich_seconds(texts_or_rows: Sequence[str] | Sequence[dict], enricher: Enricher | None = None) -> dict:
    """CPU and wall seconds of one Enricher.enrich() over the input (texts become rows with
    only a text), with a fresh Enricher, warmed up on other texts, unless one is given."""
    rows = [row if isinstance(row, dict) else {"text": row} for row in texts_or_rows]
    if enricher is None:
        enricher = Enricher()
        enricher.enrich([{"text": text} for text in _WARM_UP])
    cpu, wall = time.process_time(), time.perf_counter()
    enricher.enrich(rows)
    return _timing(len(rows), time.process_time() - cpu, time.perf_counter() - wall)


def _timing(count: int, cpu: float, wall: float) -> dict:
    return {
        "tweets": count,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "tweets_per_s": round(count / wall, 1),
        "cpu_s_per_1000": round(cpu * 1000 / count, 3),
    }


def seed_rows(seed_file: Path) -> list[dict]:
    """The seed file's tweets as bronze rows (every tweet kept, as with FILTER=none)."""
    policy = FilterPolicy(matcher=None, languages=None)
    outcomes = (normalize(line, policy=policy) for line in seed_file.read_bytes().splitlines() if line.strip())
    return [outcome.row for outcome in outcomes if isinstance(outcome, Accepted)]


def compare(rows: list[dict], rounds: int) -> dict:
    """Bare NER over each tweet's content, bare NER over the cleaned texts the Enricher feeds
    it (shorter: no links or mentions), and the Enricher; best CPU time of the rounds each."""
    contents = [tweet_content(row["text"], row["retweeted_text"]) for row in rows]
    cleaned = [clean_text(content) for content in contents]
    bare = min((nlp_pipe_seconds(contents) for _ in range(rounds)), key=lambda t: t["cpu_s"])
    bare_cleaned = min((nlp_pipe_seconds(cleaned) for _ in range(rounds)), key=lambda t: t["cpu_s"])
    enriched = min((enrich_seconds(rows) for _ in range(rounds)), key=lambda t: t["cpu_s"])
    return {
        "nlp_pipe": bare,
        "nlp_pipe_cleaned_texts": bare_cleaned,
        "enrich": enriched,
        "cpu_ratio": round(enriched["cpu_s"] / bare["cpu_s"], 3),
        "cpu_ratio_to_cleaned_texts": round(enriched["cpu_s"] / bare_cleaned["cpu_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-file", type=Path, default=DEFAULT_SEED_FILE)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, as one Spark task runs on one
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rows = seed_rows(args.seed_file)
    by_text = {clean_text(tweet_content(row["text"], row["retweeted_text"])): row for row in rows}
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    loaded = Enricher()
    load_s = time.perf_counter() - started
    rss_loaded = process.memory_info().rss
    loaded.enrich(rows)
    report = {
        "seed_file": str(args.seed_file),
        "tweets": len(rows),
        "distinct_texts": len(by_text),
        "enricher_load_s": round(load_s, 2),
        "rss_mb_python_before_enricher": round(rss_before / 2**20, 1),
        "rss_mb_enricher_loaded": round(rss_loaded / 2**20, 1),
        "rss_mb_after_seed_cached": round(process.memory_info().rss / 2**20, 1),
        # The seed file's tweets as the job gets them: bare NER reads each tweet's content (the
        # retweeted text for a retweet), the Enricher runs NER once per distinct cleaned text.
        "seed": compare(rows, args.rounds),
        # Only tweets whose cleaned texts differ, so the cache saves nothing: next to bare NER over
        # the same cleaned texts, the ratio is the Enricher's own overhead (cleaning, ruler,
        # conversion, features, scoring).
        "distinct": compare(list(by_text.values()), args.rounds),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
