"""The silver zone's text fields: a tweet's words without Twitter's markup, its hashtags folded,
the sites its links point to.

Pure and total: any string in, a string out; never raises, so one odd row cannot fail a batch.
"""
from __future__ import annotations

import html
import re
from typing import Iterable
from urllib.parse import urlsplit

# X's own retweet prefix; the username is X's [A-Za-z0-9_]{1,15}.
_RETWEET_PREFIX = re.compile(r"\A\s*RT [@＠][A-Za-z0-9_]+:?\s*")
# Not part of a word or an email address: "@ylecun" goes, "me@example.com" stays.
_MENTION = re.compile(r"(?<![\w@＠])[@＠][A-Za-z0-9_]+")
_LINK = re.compile(r"https?://\S+", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
# X's link shortener: its links carry a random code, not where they point.
_SHORTENER = "t.co"
_SURROGATE = re.compile("[\ud800-\udfff]")


def tweet_content(text: str | None, retweeted_text: str | None) -> str:
    """What a tweet says: the retweeted tweet's full text for a retweet, else the text.

    A v1.1 retweet's own text is "RT @user: " plus the original cut at 140 characters ("…"), so
    NER would see half a sentence; the original's full text is what the author shared. It is
    also the same string for every retweet of one tweet, which makes the entity cache hit
    (two thirds of the seed's tweets are retweets). tweets/normalizer.py matches topics on the
    same content.
    """
    return retweeted_text or text or ""


def clean_text(text: str | None) -> str:
    """The words of a tweet: without the "RT @user:" prefix, links and @mentions, HTML entities
    unescaped (X sends "&amp;"), whitespace runs made one space; hashtags and emoji kept."""
    if not text:
        return ""
    text = _valid_unicode(text)
    text = _RETWEET_PREFIX.sub("", text)
    if "://" in text:
        text = _LINK.sub(" ", text)
    if "@" in text or "＠" in text:
        text = _MENTION.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return _WHITESPACE.sub(" ", text).strip()


def folded_hashtags(hashtags: Iterable[str] | None) -> list[str]:
    """Hashtags case-folded without "#", in order, each once: #AI, #ai and #Ai are one tag."""
    folded: dict[str, None] = {}
    for hashtag in hashtags or ():
        if isinstance(hashtag, str) and (tag := _valid_unicode(hashtag).lstrip("#＃").casefold()):
            folded[tag] = None
    return list(folded)


def url_domains(urls: Iterable[str] | None) -> list[str]:
    """The host of each expanded link, lower-case, without "www.", in order, each once.
    t.co links are X's shortener, not a destination: skipped, as are links without a host."""
    domains: dict[str, None] = {}
    for url in urls or ():
        if isinstance(url, str) and (domain := _domain(_valid_unicode(url))) and domain != _SHORTENER:
            domains[domain] = None
    return list(domains)


def _domain(url: str) -> str | None:
    try:
        host = urlsplit(url.strip() if "//" in url else "//" + url.strip()).hostname
    except ValueError:  # an invalid IPv6 literal or port
        return None
    if not host or "." not in host:
        return None
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _valid_unicode(text: str) -> str:
    """The text as UTF-8 can hold it: lone surrogates (from a badly decoded payload) would make
    Arrow fail the whole batch, so they become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
