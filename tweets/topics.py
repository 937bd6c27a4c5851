"""Topic relevance: which of the project's topic areas a tweet is about, from
config/stream_rules.toml, the same file the live X stream rules are built from, so what X sends
and what the lake keeps are decided by one list of terms. How words, phrases, hashtags, links and
acronyms match (precision first): docs/architecture.md, "Filter, normalize, dedup, dead letters".
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tweets.config_files import config_file

# A case change inside a hashtag is a word boundary: MachineLearning, AIForGood, 100DaysOfMLCode.
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]{2})")
_HASHTAG_IN_TEXT = re.compile(r"#(\w+)")
# Links in the text are t.co short links: random letters ("t.co/AI3x...") that mean nothing.
_LINK_IN_TEXT = re.compile(r"https?://\S+")
_TERM_PARTS = re.compile(r"[\s_\-]+")
_TAG = re.compile(r"[a-z][a-z0-9_]*")

# Markers used while building a topic's regex, replaced by these patterns when it is emitted.
_PHRASE_GAP = "\x00"  # between the words of a phrase: "machine learning", "machine-learning", "machinelearning"
_PART_GAP = "\x01"  # between the parts of one word: "scikit-learn", "scikitlearn", "TensorFlow"
_GAP_PATTERNS = {_PHRASE_GAP: r"[\s_-]*", _PART_GAP: r"[_-]?"}
# After a term: an optional plural, then anything but a letter (digits may follow: GPT4, LLaMA2).
_TERM_END = r"s?(?![^\W\d_])"


@dataclass(frozen=True)
class Topic:
    tag: str
    name: str
    keywords: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreamRules:
    topics: tuple[Topic, ...]
    languages: tuple[str, ...]


def default_rules_path() -> Path:
    """config/stream_rules.toml of the checkout this package runs from."""
    return config_file("stream_rules.toml")


def load_rules(path: Path | str | None = None) -> StreamRules:
    """Read and check the rules file; a mistake in it fails here, at startup, with its location."""
    path = Path(path) if path is not None else default_rules_path()
    with path.open("rb") as file:
        document = tomllib.load(file)
    tables = document.get("topics")
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{path}: no [topics.<tag>] tables")
    topics = tuple(_topic(key, table, path) for key, table in tables.items())
    return StreamRules(topics=topics, languages=_strings(document, "languages", f"{path}"))


def _topic(key: str, table: object, path: Path) -> Topic:
    where = f"{path}: [topics.{key}]"
    if not isinstance(table, dict):
        raise ValueError(f"{where} is not a table")
    tag = table.get("tag", key)
    if tag != key or not _TAG.fullmatch(tag):
        raise ValueError(f"{where}: tag must equal the table name and be lower_snake_case, got {tag!r}")
    name = table.get("name", tag)
    if not isinstance(name, str):
        raise ValueError(f"{where}: name must be a string")
    topic = Topic(
        tag=tag,
        name=name,
        keywords=_strings(table, "keywords", where),
        phrases=_strings(table, "phrases", where),
        hashtags=tuple(h.lstrip("#") for h in _strings(table, "hashtags", where)),
    )
    if not (topic.keywords or topic.phrases or topic.hashtags):
        raise ValueError(f"{where} has no keywords, phrases or hashtags")
    if spaced := [k for k in topic.keywords + topic.hashtags if any(c.isspace() for c in k)]:
        raise ValueError(f"{where}: keywords and hashtags are single terms, move {spaced} to phrases")
    return topic


def _strings(table: dict, field: str, where: str) -> tuple[str, ...]:
    values = table.get(field, [])
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValueError(f"{where}: {field} must be a list of non-empty strings")
    return tuple(v.strip() for v in values)


class TopicMatcher:
    """Tells which topics a tweet is about; built once, then called for every tweet."""

    def __init__(self, topics: Iterable[Topic]):
        self._topics = tuple(
            (topic.tag, _topic_regex(topic), _acronym_regex(topic), _hashtag_keys(topic.hashtags))
            for topic in sorted(topics, key=lambda t: t.tag)
        )

    @classmethod
    def from_file(cls, path: Path | str | None = None) -> TopicMatcher:
        return cls(load_rules(path).topics)

    def match(self, text: str, hashtags: Sequence[str] = (), urls: Sequence[str] = ()) -> list[str]:
        """Sorted tags of the topics found in the text, the hashtags (with or without "#") or the URLs."""
        if "://" in text:
            text = _LINK_IN_TEXT.sub(" ", text)
        tags = {h.lstrip("#") for h in hashtags}
        tags.update(_HASHTAG_IN_TEXT.findall(text))
        keys = {t.lower().replace("_", "") for t in tags}
        # One haystack, in its own case for acronyms and lower-cased for words, one scan per
        # topic and case; "#" keeps words of neighbouring hashtags apart.
        haystack = text
        if tags:
            haystack += "\n#" + " #".join(map(_hashtag_words, tags))
        if urls:
            haystack += "\n" + " ".join(map(_url_path, urls))
        folded = haystack.lower()
        return [
            tag
            for tag, regex, acronyms, hashtag_keys in self._topics
            if not hashtag_keys.isdisjoint(keys) or _found(regex, folded) or _found(acronyms, haystack)
        ]


def _hashtag_words(hashtag: str) -> str:
    """A hashtag split at case changes; one written in a single case (#ai, #nlp) is capitalised
    whole, as such a hashtag is the acronym itself."""
    if hashtag.islower() or hashtag.isupper():
        return hashtag.upper()
    return _CAMEL.sub("_", hashtag)


def _url_path(url: str) -> str:
    """Where a link's words are: its path. The host would make every .ai domain about AI."""
    path = url.partition("//")[2].partition("/")[2] if "//" in url else url.partition("/")[2]
    return path.partition("?")[0].partition("#")[0]


def _found(regex: re.Pattern[str], haystack: str) -> bool:
    """First match that starts a word. Checking the start here, not in the regex, keeps the regex
    free of a leading assertion, which lets the engine skip quickly to candidate characters."""
    found = regex.search(haystack)
    while found:
        start = found.start()
        if start == 0 or not haystack[start - 1].isalnum():
            return True
        found = regex.search(haystack, start + 1)
    return False


def _hashtag_keys(hashtags: Iterable[str]) -> frozenset[str]:
    keys = {h.lstrip("#").lower().replace("_", "") for h in hashtags}
    return frozenset(keys | {key + "s" for key in keys})


def _is_acronym(keyword: str) -> bool:
    return not any(char.islower() for char in keyword)


def _term(word: str) -> str:
    """One word of a term, split into its parts (at "-", "_" and case changes), lower-cased."""
    parts = _TERM_PARTS.split(_CAMEL.sub(" ", word))
    return _PART_GAP.join(part.lower() for part in parts if part)


def _topic_regex(topic: Topic) -> re.Pattern[str]:
    """Words and phrases, matched in the lower-cased haystack."""
    terms = [_term(k) for k in topic.keywords if not _is_acronym(k)]
    terms += [_PHRASE_GAP.join(_term(w) for w in p.split()) for p in topic.phrases]
    return _terms_regex(terms)


def _acronym_regex(topic: Topic) -> re.Pattern[str]:
    """Acronyms, matched in the haystack as written ("GPT-4", "LLMs", "A.I.")."""
    parts = (_TERM_PARTS.split(k) for k in topic.keywords if _is_acronym(k))
    return _terms_regex([_PART_GAP.join(p for p in word if p) for word in parts])


def _terms_regex(terms: list[str]) -> re.Pattern[str]:
    terms = [t for t in terms if t]
    # A never-matching pattern when a topic has no such terms.
    body = _trie_pattern(terms) if terms else "(?!)"
    return re.compile(body + _TERM_END)


def _trie_pattern(terms: Iterable[str]) -> str:
    """An alternation factored by common prefixes ("data(?:[\\s_-]*(?:lake|science))"): far fewer
    branches to try at each position than a flat "term1|term2|..." list."""
    trie: dict = {}
    for term in terms:
        node = trie
        for char in term:
            node = node.setdefault(char, {})
        node[""] = {}
    return _emit(trie)


def _emit(node: dict) -> str:
    ends_here = "" in node
    branches = [
        (_GAP_PATTERNS.get(char) or re.escape(char)) + _emit(node[char])
        for char in sorted(k for k in node if k)
    ]
    if not branches:
        return ""
    if len(branches) == 1 and not ends_here:
        return branches[0]
    return "(?:" + "|".join(branches) + ")" + ("?" if ends_here else "")
