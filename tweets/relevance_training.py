"""Train the relevance model on the hand labels and write config/relevance_model.json.

Offline only (scikit-learn, spaCy for the entity feature): `python -m tweets.relevance_training
[--seed-file PATH] [--labels PATH] [--out PATH]`. How the figures are made out of fold, and why
they are an upper bound: docs/lake.md, "Silver", Relevance.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from tweets.entities import EntityFinder, default_vocabulary_path, load_pipeline, load_vocabulary
from tweets.normalizer import Accepted, FilterPolicy, normalize
from tweets.payloads import tweet_id_of
from tweets.relevance import FEATURE_NAMES, RelevanceFeatures, default_model_path
from tweets.text import clean_text, tweet_content, url_domains
from tweets.topics import TopicMatcher, default_rules_path

_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = _ROOT / "tests" / "data" / "relevance_labels.csv"
DEFAULT_SEED_FILE = Path(os.environ.get("TWEETLAKE_SEED_FILE") or _ROOT.parent / "shared/data/seed-stream-v1.jsonl")
FOLDS = 5
REPEATS = 10
RANDOM_STATE = 0
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
THRESHOLD_GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))  # 0.10 ... 0.90


@dataclass(frozen=True)
class LabelledSet:
    features: np.ndarray  # one row of FEATURE_NAMES per tweet
    relevant: np.ndarray  # 1 relevant, 0 not
    keyword_kept: np.ndarray  # the keyword rules' decision
    data_sha256: str


def read_labels(path: Path) -> dict[str, int]:
    lines = path.read_text().splitlines()
    rows = (line.split(",") for line in lines if line and not line.startswith(("#", "tweet_id")))
    return {tweet_id: int(relevant) for tweet_id, relevant in rows}


def labelled_set(
    seed_file: Path = DEFAULT_SEED_FILE,
    labels_file: Path = DEFAULT_LABELS,
    vocabulary_file: Path | None = None,
    rules_file: Path | None = None,
    nlp=None,
) -> LabelledSet:
    """Features of the labelled seed tweets, computed as the silver job computes them."""
    vocabulary_file = Path(vocabulary_file or default_vocabulary_path())
    rules_file = Path(rules_file or default_rules_path())
    labels = read_labels(labels_file)
    matcher = TopicMatcher.from_file(rules_file)
    vocabulary = load_vocabulary(vocabulary_file)
    policy = FilterPolicy(matcher=matcher, languages=None, require_topic=False)
    lines = {}
    for line in seed_file.read_bytes().splitlines():
        if (tweet_id := tweet_id_of(line)) in labels:
            lines[tweet_id] = line
    if missing := sorted(set(labels) - set(lines)):
        raise ValueError(f"{seed_file}: {len(missing)} labelled tweets are not in it, e.g. {missing[0]}")
    ids = sorted(lines)
    rows = []
    for tweet_id in ids:
        outcome = normalize(lines[tweet_id], policy=policy)
        if not isinstance(outcome, Accepted):
            raise ValueError(f"{seed_file}: labelled tweet {tweet_id} is not a bronze row: {outcome}")
        rows.append(outcome.row)
    contents = [tweet_content(row["text"], row["retweeted_text"]) for row in rows]
    texts = [clean_text(content) for content in contents]
    entities = EntityFinder(nlp if nlp is not None else load_pipeline(vocabulary)).find(texts)
    features = RelevanceFeatures(matcher, vocabulary)
    matrix, kept = [], []
    for row, content, text, found in zip(rows, contents, texts, entities):
        topics = features.topics(content, row["hashtags"], row["urls"])
        kept.append(bool(topics))
        matrix.append(
            features.values(
                content=content,
                text_clean=text,
                hashtags=row["hashtags"],
                domains=url_domains(row["urls"]),
                topics=topics,
                entity_labels=[entity.label for entity in found],
            )
        )
    return LabelledSet(
        features=np.array(matrix, dtype=float),
        relevant=np.array([labels[tweet_id] for tweet_id in ids]),
        keyword_kept=np.array(kept),
        data_sha256=data_sha256([lines[i] for i in ids], labels, vocabulary_file, rules_file),
    )


def data_sha256(tweet_lines: list[bytes], labels: dict[str, int], *toml_files: Path) -> str:
    """What the weights depend on: the labelled tweets, the labels, the vocabulary and the
    topic rules, as data (a comment edited in a file changes nothing). A change to any of them
    means the shipped model is stale."""
    digest = hashlib.sha256()
    for line in tweet_lines:
        digest.update(hashlib.sha256(line).digest())
    digest.update(json.dumps(sorted(labels.items())).encode())
    for path in toml_files:
        with path.open("rb") as file:
            digest.update(json.dumps(tomllib.load(file), sort_keys=True).encode())
    return digest.hexdigest()


def figures(predicted: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1; precision is NaN where nothing was predicted relevant."""
    true_positives = int(np.sum(predicted & (relevant == 1)))
    kept = int(np.sum(predicted))
    precision = true_positives / kept if kept else float("nan")
    recall = true_positives / max(int(np.sum(relevant)), 1)
    f1 = 2 * precision * recall / (precision + recall) if kept and precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _fit(features: np.ndarray, relevant: np.ndarray, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=5000).fit(features, relevant)


def choose_settings(features: np.ndarray, relevant: np.ndarray) -> tuple[float, float]:
    """C and threshold with the best F1 over an inner cross-validation of these rows alone."""
    inner = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=RANDOM_STATE)
    best = (-1.0, 0.0, 0.0)
    for c in C_GRID:
        scores = np.zeros(len(relevant))
        for train, test in inner.split(features, relevant):
            scores[test] = _fit(features[train], relevant[train], c).predict_proba(features[test])[:, 1]
        for threshold in THRESHOLD_GRID:
            f1 = figures(scores >= threshold, relevant)["f1"]
            if f1 > best[0]:
                best = (f1, c, threshold)
    return best[1], best[2]


def cross_validate(data: LabelledSet) -> dict:
    """The model's and the keyword rules' figures on the same folds: pooled over each repeat's
    out-of-fold predictions (mean and range over the repeats), and per fold (mean)."""
    outer = RepeatedStratifiedKFold(n_splits=FOLDS, n_repeats=REPEATS, random_state=RANDOM_STATE)
    x, y, rules = data.features, data.relevant, data.keyword_kept
    predicted = np.zeros((REPEATS, len(y)), dtype=bool)
    model_folds, rules_folds = [], []
    for split, (train, test) in enumerate(outer.split(x, y)):
        c, threshold = choose_settings(x[train], y[train])
        predicted[split // FOLDS, test] = _fit(x[train], y[train], c).predict_proba(x[test])[:, 1] >= threshold
        model_folds.append(figures(predicted[split // FOLDS, test], y[test]))
        rules_folds.append(figures(rules[test], y[test]))
    # The rules are not fitted: pooled over any repeat's folds they score the whole set.
    return {
        "method": f"stratified {FOLDS}-fold, repeated {REPEATS} times (random_state {RANDOM_STATE});"
        f" C and threshold chosen inside each training fold by an inner {FOLDS}-fold CV (best F1)",
        "model": {"pooled": _summary([figures(p, y) for p in predicted]), "per_fold_mean": _means(model_folds)},
        "keyword_rules": {"pooled": _summary([figures(rules, y)]), "per_fold_mean": _means(rules_folds)},
    }


def _summary(per_repeat: list[dict[str, float]]) -> dict:
    return {
        name: {
            "mean": round(float(np.mean([f[name] for f in per_repeat])), 4),
            "min": round(float(np.min([f[name] for f in per_repeat])), 4),
            "max": round(float(np.max([f[name] for f in per_repeat])), 4),
        }
        for name in ("precision", "recall", "f1")
    }


def _means(per_fold: list[dict[str, float]]) -> dict[str, float]:
    return {name: round(float(np.nanmean([f[name] for f in per_fold])), 4) for name in ("precision", "recall", "f1")}


def train(data: LabelledSet) -> dict:
    """The model document: weights fitted on all labels with settings chosen by CV on them."""
    # 1,500 fits of a 310 x 8 matrix: a second BLAS thread doubled the CPU time (4.9 vs 2.6 s)
    # and gained no wall time.
    with threadpool_limits(limits=1, user_api="blas"):
        c, threshold = choose_settings(data.features, data.relevant)
        model = _fit(data.features, data.relevant, c)
        cross_validation = cross_validate(data)
    return {
        "model": "logistic regression (scikit-learn, L2, lbfgs)",
        "feature_names": list(FEATURE_NAMES),
        "coefficients": [round(float(w), 6) for w in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
        "threshold": threshold,
        "regularisation_c": c,
        "trained_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data_sha256": data.data_sha256,
        "labelled_tweets": int(len(data.relevant)),
        "relevant_tweets": int(np.sum(data.relevant)),
        "cross_validation": cross_validation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-file", type=Path, default=DEFAULT_SEED_FILE)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--out", type=Path, default=default_model_path())
    args = parser.parse_args()
    document = train(labelled_set(args.seed_file, args.labels))
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps({"written": str(args.out), **document["cross_validation"]}, indent=2))


if __name__ == "__main__":
    main()
