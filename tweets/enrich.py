"""Bronze rows to the silver zone's NLP columns: the one entry point of the silver Spark job
(called inside mapInArrow on batches of a few thousand rows).

Pure apart from reading the config files and the spaCy model once, at construction. Never
raises on a row: a None, empty, huge or oddly encoded field gives empty values, not an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pyarrow as pa

from tweets.entities import DEFAULT_CACHE_SIZE, EntityFinder, load_pipeline, load_vocabulary
from tweets.language import tweet_language
from tweets.relevance import RelevanceFeatures, RelevanceModel
from tweets.text import clean_text, folded_hashtags, tweet_content, url_domains
from tweets.topics import TopicMatcher

ENTITY_ARROW_TYPE = pa.struct(
    [("text", pa.string()), ("label", pa.string()), ("start", pa.int32()), ("end", pa.int32())]
)
# Nullable throughout, as Spark declares columns by default; enrich() never returns a null.
ENRICHMENT_ARROW_SCHEMA = pa.schema(
    [
        ("text_clean", pa.string()),
        ("lang", pa.string()),
        ("entities", pa.list_(ENTITY_ARROW_TYPE)),
        ("hashtags", pa.list_(pa.string())),
        ("domains", pa.list_(pa.string())),
        ("topics", pa.list_(pa.string())),
        ("relevance", pa.float64()),
        ("relevance_label", pa.string()),
    ]
)


class Enricher:
    """Loads the NLP once (~1 s: spaCy's import 0.7 s, the model and vocabulary 0.3 s), then
    enriches batch after batch; its entity cache lives as long as it does."""

    def __init__(
        self,
        *,
        rules_path: Path | str | None = None,
        vocabulary_path: Path | str | None = None,
        model_path: Path | str | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        nlp=None,
    ):
        """Paths default to config/stream_rules.toml, config/field_vocabulary.toml and
        config/relevance_model.json; nlp defaults to tweets.entities.load_pipeline's."""
        vocabulary = load_vocabulary(vocabulary_path)
        self._model = RelevanceModel.from_file(model_path)
        self._features = RelevanceFeatures(TopicMatcher.from_file(rules_path), vocabulary)
        self._entities = EntityFinder(nlp if nlp is not None else load_pipeline(vocabulary), cache_size)

    def enrich(self, rows: Sequence[dict]) -> list[dict]:
        """The silver columns of each bronze row, in order: one nlp.pipe call for the batch's
        distinct texts not seen before.

        text_clean is built from the retweeted text when bronze has it (tweets.text.tweet_content
        says why), so is_retweet is not needed. topics are found again with the current rules,
        as the relevance features are, rather than copied: a bronze row written before a rules
        change, or by an agent without a matcher, has other or no topics.
        """
        contents = [tweet_content(_text(row.get("text")), _text(row.get("retweeted_text"))) for row in rows]
        texts = [clean_text(content) for content in contents]
        found = self._entities.find(texts)
        return [self._columns(*columns) for columns in zip(rows, contents, texts, found)]

    def _columns(self, row: dict, content: str, text: str, entities: tuple) -> dict:
        hashtags = _strings(row.get("hashtags"))
        urls = _strings(row.get("urls"))
        domains = url_domains(urls)
        topics = self._features.topics(content, hashtags, urls)
        relevance = self._model.score(
            self._features.values(
                content=content,
                text_clean=text,
                hashtags=hashtags,
                domains=domains,
                topics=topics,
                entity_labels=[entity.label for entity in entities],
            )
        )
        return {
            "text_clean": text,
            "lang": tweet_language(_text(row.get("lang")), content),
            "entities": [entity._asdict() for entity in entities],
            "hashtags": folded_hashtags(hashtags),
            "domains": domains,
            "topics": topics,
            "relevance": relevance,
            "relevance_label": self._model.label(relevance),
        }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: object) -> list[str]:
    """A list column as strings only: Arrow hands lists over as Python lists, with None for nulls."""
    if not isinstance(value, (list, tuple)):
        return []
    return [item for item in value if isinstance(item, str) and item]
