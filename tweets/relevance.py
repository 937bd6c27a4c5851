"""How likely a tweet is about the field: a score in [0, 1] and a label, past the keyword rules.

A logistic regression over a few interpretable features (FEATURE_NAMES), trained offline by
tweets.relevance_training (scikit-learn) and scored here with a dot product, so the silver job
imports no scikit-learn. Why, the threshold and the figures: docs/lake.md, "Silver", Relevance.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from tweets.config_files import config_file
from tweets.entities import Vocabulary
from tweets.topics import TopicMatcher

# Each feature is in [0, 1]. One indicator for all vocabulary labels, not one each: the seed has 5
# vocabulary hits in the 310 labelled tweets, too few to weigh labels apart. Left out because they
# did not help by cross-validation: one indicator per topic, NER labels (+0.01 F1, noise), "only an
# acronym matched". No cue for lower-case "ai" in other languages: the topic rules already ignore
# it, and the labelled tweets are all English.
FEATURE_NAMES = (
    "keyword_topic",  # the keyword rules find a topic (text, hashtags or link paths)
    "topic_in_words",  # ... in the text's own words, not only in its hashtags or links
    "topical_hashtag_share",  # share of the tweet's hashtags that are topic hashtags
    "off_topic_hashtags",  # hashtags that are not topic hashtags (count / 10, at most 1)
    "field_words",  # the field's broad words ("data", "model", "research"; count / 5)
    "other_sense_words",  # words of an ambiguous term's other sense ("game", "law"; count / 2)
    "field_entities",  # a vocabulary entity (ML_FRAMEWORK, ML_MODEL, ML_ORG, ML_PERSON)
    "field_domain",  # a link to a host of the field (arxiv.org, github.com, huggingface.co)
)
RELEVANT = "relevant"
NOT_RELEVANT = "not_relevant"
_VOCABULARY_PREFIX = "ML_"
_HASHTAG = re.compile(r"[#＃]\w+")


def default_model_path() -> Path:
    """config/relevance_model.json of the checkout this package runs from."""
    return config_file("relevance_model.json")


class RelevanceFeatures:
    """The features of a tweet, built once from the topic rules and the field's vocabulary;
    training (tweets/relevance_training.py) and scoring share it, so they cannot drift."""

    def __init__(self, matcher: TopicMatcher, vocabulary: Vocabulary):
        self._matcher = matcher
        self._domains = vocabulary.domains
        self._field_words = _cue_regex(vocabulary.field_words)
        self._other_senses = _cue_regex(vocabulary.other_senses)
        self._is_topical = lru_cache(maxsize=4096)(self._hashtag_is_topical)

    def topics(self, content: str, hashtags: Sequence[str], urls: Sequence[str]) -> list[str]:
        return self._matcher.match(content, hashtags, urls)

    def values(
        self,
        *,
        content: str,
        text_clean: str,
        hashtags: Sequence[str],
        domains: Iterable[str],
        topics: Sequence[str],
        entity_labels: Iterable[str],
    ) -> list[float]:
        """The features in FEATURE_NAMES order. content is the raw text the topics were found
        in, text_clean its tweets.text.clean_text, hashtags as bronze has them."""
        topical = sum(map(self._is_topical, hashtags))
        words = _HASHTAG.sub(" ", text_clean).lower() if "#" in text_clean else text_clean.lower()
        return [
            1.0 if topics else 0.0,
            1.0 if topics and self._matcher.match(_HASHTAG.sub(" ", content)) else 0.0,
            topical / len(hashtags) if hashtags else 0.0,
            min(len(hashtags) - topical, 10) / 10,
            min(_count(self._field_words, words), 5) / 5,
            min(_count(self._other_senses, words), 2) / 2,
            1.0 if any(label.startswith(_VOCABULARY_PREFIX) for label in entity_labels) else 0.0,
            1.0 if not self._domains.isdisjoint(domains) else 0.0,
        ]

    def _hashtag_is_topical(self, hashtag: str) -> bool:
        return bool(self._matcher.match("", (hashtag,)))


def _cue_regex(cues: Sequence[str]) -> re.Pattern[str]:
    """Whole words or phrases in lower-cased text, longest first, optional plural "s"."""
    alternatives = sorted((re.escape(cue.lower()).replace(r"\ ", r"\s+") for cue in cues), key=len, reverse=True)
    return re.compile(r"(?<![^\W_])(?:" + "|".join(alternatives) + r")s?(?![^\W_])")


def _count(regex: re.Pattern[str], text: str) -> int:
    return sum(1 for _ in regex.finditer(text))


@dataclass(frozen=True)
class RelevanceModel:
    """The trained weights (config/relevance_model.json) and the label's threshold."""

    weights: tuple[float, ...]
    intercept: float
    threshold: float

    @classmethod
    def from_file(cls, path: Path | str | None = None) -> RelevanceModel:
        """Read the model; one trained on other features fails here, naming the retraining."""
        path = Path(path) if path is not None else default_model_path()
        document = json.loads(path.read_text())
        names = tuple(document.get("feature_names", ()))
        if names != FEATURE_NAMES:
            raise ValueError(
                f"{path}: trained on features {list(names)}, this code computes {list(FEATURE_NAMES)}:"
                " retrain with python -m tweets.relevance_training"
            )
        return cls(
            weights=tuple(float(w) for w in document["coefficients"]),
            intercept=float(document["intercept"]),
            threshold=float(document["threshold"]),
        )

    def score(self, values: Sequence[float]) -> float:
        logit = self.intercept + sum(w * v for w, v in zip(self.weights, values))
        return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))

    def label(self, score: float) -> str:
        return RELEVANT if score >= self.threshold else NOT_RELEVANT
