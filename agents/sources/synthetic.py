"""Synthetic X API v2 filtered-stream messages, so the pipeline runs end to end without X
credentials and tests and benchmarks see the shapes the live stream sends. Written from the X API
v2 data dictionary; no real tweet is copied. `SyntheticSource` is SOURCE=synthetic.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import string
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import orjson

from agents.sources.base import Publish, Source, register
from config.settings import Settings
from tweets.topics import Topic, load_rules

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_SNOWFLAKE_EPOCH_MS = 1_288_834_974_657  # X ids count milliseconds from 2010-11-04
# Id lanes (the 10-bit worker field of a snowflake): stream posts, the older posts they refer to,
# earlier versions of edited posts, media.
_STREAM, _PAST, _EDITED, _MEDIA = 1, 2, 3, 4
# Recent posts that retweets, quotes and replies pick from, per kind: (English, on-topic).
_POOL_KINDS = ((True, True), (True, False), (False, True), (False, False))
_POOL_SIZE = 200
_RECENT_SENT = 64  # how far back a duplicate can reach

_KINDS = ("original", "retweet", "reply", "quote")
_KIND_WEIGHTS = (45, 30, 15, 10)
_LONG_POST_SHARE = 0.06
_MEDIA_SHARE = 0.15
_EDITED_SHARE = 0.03
_WITHHELD_SHARE = 0.01
_CASHTAG_SHARE = 0.05

_ON_TOPIC = (
    "Just published a practical guide to {term} for people who learn by building things.",
    "How we cut our bills in half with {term}: what worked, what did not, and what we would do again.",
    "Thread: ten lessons from five years of running {term} in production.",
    "Is {term} overhyped? We ran the benchmarks ourselves, and the answer surprised us.",
    "New paper on {term}: simple baselines beat most of the fancy methods.",
    "We are hiring a senior engineer with {term} experience. Remote friendly, great team.",
    "{term} meetup tonight! Slides and the recording are below.",
    "Comparing {term} and {term2} on a real workload, with numbers.",
    "Free course on {term} starts on Monday, everyone is welcome.",
    "Our team open-sourced the {term} tooling we use every day.",
    "Reading list for the weekend: the best {term} write-ups of the month.",
    "Three mistakes I made when I started with {term}, so you do not have to.",
)
_ON_TOPIC_MORE = (
    "First, measure before you optimise: the time rarely goes where you expect.",
    "Second, keep the first version boring and write every assumption down.",
    "Third, automate the checks that caught the bugs last time.",
    "Cleaning the inputs took longer than everything else together.",
    "We will share the code and the full write-up next week.",
    "Questions are welcome in the replies, I will answer all of them.",
)
_ON_TOPIC_REPLIES = (
    "Great point about {term}, we saw exactly the same thing.",
    "Do you have the slides from the {term} talk?",
    "Thanks! Trying {term} on our project this week.",
)
_ON_TOPIC_QUOTES = (
    "Worth reading if you work on {term}.",
    "The clearest explanation of {term} I have seen so far.",
)
_OFF_TOPIC = (
    "The coffee at the corner cafe was amazing this morning.",
    "Learning to play the guitar, day {n}. My fingers hurt but it is worth it.",
    "Our mobile data plan ran out again, of course on the first day of the trip.",
    "Cloud cover all day, perfect weather for a long walk by the river.",
    "She said the mountain air was the best part of the whole holiday.",
    "Network TV reruns all weekend, so it is board games and pizza instead.",
    "That movie sparked a long debate at dinner last night.",
    "Big game tonight! Who else is watching with friends?",
    "Deep thoughts at 2am: why do cats push things off tables?",
    "Traffic on the bridge is a nightmare today, leave early if you can.",
    "Finally finished the puzzle, all {n} pieces of it.",
    "Our garden tomatoes are ready, salsa for everyone this weekend.",
)
_OFF_TOPIC_REPLIES = ("Haha, so true.", "Congrats, well deserved!", "See you there!")
_OFF_TOPIC_QUOTES = ("This made my day.", "Cannot stop laughing at this.", "Wow, look at this.")
_FOREIGN = (
    ("es", "Nuevo artículo sobre {term}: todo lo que necesitas saber para empezar."),
    ("fr", "Conférence demain sur {term} à Paris, venez nombreux !"),
    ("de", "Heute im Podcast: {term} in der Praxis, mit vielen Beispielen."),
    ("pt", "Curso gratuito de {term} começa na segunda-feira."),
    ("it", "Oggi parliamo di {term} con tutto il nostro team."),
    ("ja", "来週、{term}の勉強会を開催します。ぜひご参加ください。"),
    ("nl", "Vandaag geleerd: {term} is eenvoudiger dan ik dacht."),
)
_FOREIGN_OFF_TOPIC = (
    ("es", "¡Qué partido tan bueno anoche!"),
    ("fr", "Il fait beau aujourd'hui, on va au parc."),
    ("de", "Das Wetter ist heute wunderbar."),
    ("pt", "Bom dia a todos, ótima semana!"),
    ("it", "Che bella giornata al mare."),
)
_TECH_HASHTAGS = ("Python", "tech", "OpenSource", "DevCommunity", "programming")
_OFF_TOPIC_HASHTAGS = ("MondayMotivation", "coffee", "travel", "weekend", "music", "football", "foodie")
_CASHTAGS = ("NVDA", "MSFT", "GOOGL", "AMZN", "SNOW", "PLTR")
_SOURCES = ("Twitter Web App", "Twitter for iPhone", "Twitter for Android", "TweetDeck Web App", "Buffer")
_FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kara", "Luca", "Mei", "Noor", "Omar", "Priya")
_LAST_NAMES = ("Silva", "Novak", "Okafor", "Tanaka", "Rossi", "Dubois", "Khan", "Berg", "Moreno", "Walsh", "Petrov", "Osei")
_BIOS = (
    "Engineer. Runner. Too much coffee.",
    "Building things with a small, kind team. Opinions are my own.",
    "Teaching, writing, and occasionally shipping.",
    "Dad jokes and deploys. Views my own.",
    "Researcher by day, baker by night.",
)
_PLACES = ("Lisbon", "Lagos", "Berlin", "Toronto", "Bangalore", "Austin, TX", "Osaka", "Nairobi", "")
# Username syllables: consonant + vowel only, so no name can spell a topic term ("ai", "ml", "nlp").
_SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")
_OFF_TOPIC_SLUGS = ("weekend-weather-sunny-and-warm", "best-pizza-in-town", "city-marathon-route", "new-cafe-opens")

_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_MENTION = re.compile(r"(?<![\w@])@(\w+)")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Z]{1,6})\b")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Snowflakes:
    """Snowflake ids (milliseconds since X's epoch, a 10-bit worker, a 12-bit sequence). The worker
    field is a 3-bit lane and a 7-bit generator number, so generators whose seeds differ modulo
    128 never share an id even in the same millisecond; within a lane ids only grow, so no id
    repeats, and an id still tells when it was made."""

    def __init__(self, generator: int) -> None:
        self._generator = generator % 128
        self._last: dict[int, tuple[int, int]] = {}

    def new(self, lane: int, moment: datetime) -> str:
        ms = max(int(moment.timestamp() * 1000) - _SNOWFLAKE_EPOCH_MS, 0)
        last_ms, last_seq = self._last.get(lane, (-1, 0))
        seq = 0
        if ms <= last_ms:
            ms, seq = last_ms, last_seq + 1
            if seq == 4096:
                ms, seq = ms + 1, 0
        self._last[lane] = (ms, seq)
        return str((ms << 22) | (lane << 19) | (self._generator << 12) | seq)


def rule_id(tag: str) -> str:
    """A stable 19-digit id for a topic's stream rule (X assigns real ones when rules are added)."""
    return str(10**18 + int.from_bytes(hashlib.sha256(tag.encode()).digest()[:8], "big") % (9 * 10**18))


class SyntheticTweets:
    """A seeded source of X API v2 filtered-stream messages (bytes, one message each): {"data":
    post, "includes": {"users", "tweets", "media"}, "matching_rules": [...]} with authors, entities
    (hashtags, mentions, cashtags, urls with start/end), public_metrics, source,
    edit_history_tweet_ids, replies, quotes, retweets (the referenced post in includes.tweets), long
    posts (note_tweet), media and the odd edited or withheld post. On-topic text is built from the
    terms of config/stream_rules.toml. The same seed and clock give the same bytes.

    malformed_share and duplicate_share are shares of all messages; non_english_share and
    off_topic_share apply to each tweet independently. Retweets, quotes and replies refer to
    posts this generator made earlier (or to older ones made at start), so references resolve.
    clock gives "now" as an aware datetime; created_at and the snowflake ids follow it. A seed of
    None draws a fresh one (a different stream on every start).
    """

    def __init__(
        self,
        seed: int | None = 42,
        off_topic_share: float = 0.25,
        non_english_share: float = 0.1,
        malformed_share: float = 0.02,
        duplicate_share: float = 0.0,
        *,
        clock: Clock = _utc_now,
        rules_path: Path | str | None = None,
    ):
        for name, share in (
            ("off_topic_share", off_topic_share),
            ("non_english_share", non_english_share),
            ("malformed_share", malformed_share),
            ("duplicate_share", duplicate_share),
        ):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {share}")
        if malformed_share + duplicate_share > 1.0:
            raise ValueError("malformed_share + duplicate_share must not exceed 1")
        self._off_topic_share = off_topic_share
        self._non_english_share = non_english_share
        self._malformed_share = malformed_share
        self._duplicate_share = duplicate_share
        self._clock = clock
        self._random = random.Random(seed)
        self._ids = _Snowflakes(seed if seed is not None else self._random.getrandbits(7))
        self._topics: tuple[Topic, ...] = load_rules(rules_path).topics
        self._recent: deque[bytes] = deque(maxlen=_RECENT_SENT)
        self._authors = self._make_authors(300)
        self._by_username = {a["username"]: a for a in self._authors}
        self._by_id = {a["id"]: a for a in self._authors}
        self._pools = self._seeded_pools()

    def messages(self, n: int) -> Iterator[bytes]:
        for _ in range(n):
            yield self.message()

    def message(self) -> bytes:
        draw = self._random.random()
        if draw < self._malformed_share:
            return self._malformed()
        if draw < self._malformed_share + self._duplicate_share and self._recent:
            return self._random.choice(self._recent)
        payload = orjson.dumps(self._stream_message())
        self._recent.append(payload)
        return payload

    # --- one stream message ----------------------------------------------------------------------

    def _stream_message(self) -> dict:
        rnd = self._random
        english = rnd.random() >= self._non_english_share
        on_topic = rnd.random() >= self._off_topic_share
        kind = rnd.choices(_KINDS, _KIND_WEIGHTS)[0]
        created = self._clock() - timedelta(milliseconds=rnd.randint(200, 3000))
        author = rnd.choice(self._authors)
        post_id = self._ids.new(_STREAM, created)
        includes: dict[str, list] = {"users": [_public_user(author)]}

        if kind == "retweet":
            original, topics = rnd.choice(self._pools[(english, on_topic)])
            original_author = self._by_id[original["author_id"]]
            text = _retweet_text(original_author["username"], _full_text(original))
            post, _ = self._post(post_id, author, created, text, original["lang"], links=_links_of(original))
            post["referenced_tweets"] = [{"type": "retweeted", "id": original["id"]}]
            self._include(includes, original)
        else:
            topics = self._pick_topics() if on_topic else []
            lang, text = self._compose(kind, english, topics)
            post, media = self._post(post_id, author, created, text, lang, link=True, media=kind != "reply")
            if media is not None:
                includes["media"] = [media]
            if kind in ("reply", "quote"):
                self._refer(post, kind, includes)
            if kind in ("original", "quote"):
                self._pools[(english, on_topic)].append((post, topics))
            if rnd.random() < _EDITED_SHARE:
                edited_from = created - timedelta(minutes=rnd.randint(1, 25))
                post["edit_history_tweet_ids"] = [self._ids.new(_EDITED, edited_from), post_id]
                post["edit_controls"]["edits_remaining"] = 4
            if rnd.random() < _WITHHELD_SHARE:
                post["withheld"] = {"copyright": False, "country_codes": rnd.sample(["DE", "FR", "IN", "TR"], 2)}

        rules = topics or [rnd.choice(self._topics).tag]  # off-topic: what a broad rule let through
        return {
            "data": post,
            "includes": includes,
            "matching_rules": [{"id": rule_id(tag), "tag": tag} for tag in rules],
        }

    def _compose(self, kind: str, english: bool, topics: list[str]) -> tuple[str, str]:
        """The language and the text of a post that is not a retweet."""
        rnd = self._random
        term, term2 = self._terms(topics)
        if not english:
            lang, template = rnd.choice(_FOREIGN if topics else _FOREIGN_OFF_TOPIC)
            text = template.format(term=term)
        elif kind == "reply":
            lang, text = "en", rnd.choice(_ON_TOPIC_REPLIES if topics else _OFF_TOPIC_REPLIES).format(term=term)
        elif kind == "quote":
            lang, text = "en", rnd.choice(_ON_TOPIC_QUOTES if topics else _OFF_TOPIC_QUOTES).format(term=term)
        elif topics:
            lang, text = "en", rnd.choice(_ON_TOPIC).format(term=term, term2=term2)
            if rnd.random() < _LONG_POST_SHARE:
                text += " " + " ".join(rnd.sample(_ON_TOPIC_MORE, 4))
        else:
            lang, text = "en", rnd.choice(_OFF_TOPIC).format(n=rnd.randint(3, 1000))

        extras = []
        if rnd.random() < 0.3:
            extras += ["@" + rnd.choice(self._authors)["username"]]
        if topics and rnd.random() < _CASHTAG_SHARE:
            extras += ["$" + rnd.choice(_CASHTAGS)]
        tags = [h for t in self._topics if t.tag in topics for h in t.hashtags] + list(_TECH_HASHTAGS)
        pool = tags if topics else _OFF_TOPIC_HASHTAGS
        extras += ["#" + h for h in rnd.sample(pool, rnd.randint(0, min(4, len(pool))))]
        return lang, " ".join([text, *extras])

    def _post(
        self,
        post_id: str,
        author: dict,
        created: datetime,
        text: str,
        lang: str,
        *,
        links: dict[str, dict] | None = None,
        link: bool = False,
        media: bool = False,
    ) -> tuple[dict, dict | None]:
        """The data object, and its media object if it has one. A new link or photo is appended
        to the text as a t.co link; `links` are the t.co links the text already has."""
        rnd = self._random
        links = dict(links or {})
        if link and rnd.random() < 0.7:
            short = self._short_link()
            links[short] = {"expanded_url": self._expanded_url(author, text)}
            text += " " + short
        media_object = None
        if media and rnd.random() < _MEDIA_SHARE:
            media_key = f"3_{self._ids.new(_MEDIA, created)}"
            short = self._short_link()
            links[short] = {
                "expanded_url": f"https://x.com/{author['username']}/status/{post_id}/photo/1",
                "media_key": media_key,
            }
            text += " " + short
            media_object = {
                "media_key": media_key,
                "type": "photo",
                "url": f"https://pbs.twimg.com/media/{rnd.getrandbits(60):015x}.jpg",
                "width": 1200,
                "height": 675,
            }
        post = {
            "id": post_id,
            "text": text,
            "author_id": author["id"],
            "created_at": _iso(created),
            "lang": lang,
            "conversation_id": post_id,
            "edit_history_tweet_ids": [post_id],
            "edit_controls": {
                "edits_remaining": 5,
                "is_edit_eligible": True,
                "editable_until": _iso(created + timedelta(hours=1)),
            },
            "possibly_sensitive": False,
            "reply_settings": "everyone",
            "source": rnd.choice(_SOURCES),
            "public_metrics": {
                "retweet_count": rnd.randint(0, 40),
                "reply_count": rnd.randint(0, 12),
                "like_count": rnd.randint(0, 300),
                "quote_count": rnd.randint(0, 5),
                "bookmark_count": rnd.randint(0, 20),
                "impression_count": rnd.randint(0, 20_000),
            },
        }
        if len(text) > 280:  # a long post: text is the first part, note_tweet the whole
            shown = _cut(text, 275)
            post["text"] = shown
            post["note_tweet"] = {"text": text, "entities": self._entities(text, links)}
            post["entities"] = self._entities(shown, links)
        else:
            post["entities"] = self._entities(text, links)
        if media_object is not None:
            post["attachments"] = {"media_keys": [media_object["media_key"]]}
        return post, media_object

    def _refer(self, post: dict, kind: str, includes: dict[str, list]) -> None:
        """Make the post a reply to, or a quote of, an earlier post (which goes to includes)."""
        rnd = self._random
        earlier, _ = rnd.choice(self._pools[rnd.choice(_POOL_KINDS)])
        earlier_author = self._by_id[earlier["author_id"]]
        self._include(includes, earlier)
        if kind == "reply":
            post["text"] = f"@{earlier_author['username']} {post['text']}"
            post["entities"] = self._entities(post["text"], _links_of(post))
            post["in_reply_to_user_id"] = earlier_author["id"]
            post["conversation_id"] = earlier["conversation_id"]
            post["referenced_tweets"] = [{"type": "replied_to", "id": earlier["id"]}]
        else:
            post["referenced_tweets"] = [{"type": "quoted", "id": earlier["id"]}]

    # --- parts -------------------------------------------------------------------------------

    def _include(self, includes: dict[str, list], earlier: dict) -> None:
        """Expansions for a referenced post: the post, and its author unless already there."""
        includes["tweets"] = [earlier]
        if all(user["id"] != earlier["author_id"] for user in includes["users"]):
            includes["users"].append(_public_user(self._by_id[earlier["author_id"]]))

    def _entities(self, text: str, links: dict[str, dict]) -> dict:
        entities: dict[str, list] = {}
        hashtags = [{"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _HASHTAG.finditer(text)]
        cashtags = [{"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _CASHTAG.finditer(text)]
        mentions = [
            {"start": m.start(), "end": m.end(), "username": m.group(1), "id": self._by_username[m.group(1)]["id"]}
            for m in _MENTION.finditer(text)
            if m.group(1) in self._by_username
        ]
        urls = []
        for short, link in links.items():
            start = text.find(short)
            if start >= 0:
                expanded = link["expanded_url"]
                display = expanded.split("//", 1)[1]
                urls.append(
                    {
                        "start": start,
                        "end": start + len(short),
                        "url": short,
                        "expanded_url": expanded,
                        "display_url": display if len(display) <= 26 else display[:25] + "…",
                        **({"media_key": link["media_key"]} if "media_key" in link else {}),
                    }
                )
        for name, items in (("hashtags", hashtags), ("cashtags", cashtags), ("mentions", mentions), ("urls", urls)):
            if items:
                entities[name] = items
        return entities

    def _pick_topics(self) -> list[str]:
        count = 2 if self._random.random() < 0.2 else 1
        return sorted(t.tag for t in self._random.sample(self._topics, count))

    def _terms(self, topics: list[str]) -> tuple[str, str]:
        """Two terms for the templates: one per topic, or two of the one topic."""
        chosen = [t for t in self._topics if t.tag in topics] or [self._random.choice(self._topics)]
        return self._term(chosen[0]), self._term(chosen[-1])

    def _term(self, topic: Topic) -> str:
        return self._random.choice(topic.keywords + topic.phrases or tuple("#" + h for h in topic.hashtags))

    def _short_link(self) -> str:
        return "https://t.co/" + "".join(self._random.choices(string.ascii_letters + string.digits, k=10))

    def _expanded_url(self, author: dict, text: str) -> str:
        rnd = self._random
        words = re.findall(r"[a-z0-9]+", text.lower())[:6]
        slug = "-".join(words) or "post"
        user = author["username"]
        return rnd.choice(
            (
                f"https://medium.com/@{user}/{slug}-{rnd.getrandbits(48):012x}",
                f"https://github.com/{user}/{'-'.join(words[:2]) or 'notes'}",
                f"https://{user}.substack.com/p/{slug}",
                f"https://www.youtube.com/watch?v={rnd.getrandbits(44):011x}",
                f"https://www.example-news.com/{rnd.randint(2019, 2025)}/{rnd.choice(_OFF_TOPIC_SLUGS)}",
            )
        )

    def _make_authors(self, count: int) -> list[dict]:
        rnd = self._random
        authors: list[dict] = []
        usernames: set[str] = set()
        while len(authors) < count:
            username = "".join(rnd.choices(_SYLLABLES, k=rnd.randint(2, 4)))
            if rnd.random() < 0.4:
                username += rnd.choice(("_", "")) + str(rnd.randint(1, 999))
            if username in usernames:
                continue
            usernames.add(username)
            user_id = str(rnd.randint(10**7, 10**10) if rnd.random() < 0.5 else rnd.randint(10**18, 2 * 10**18))
            authors.append(
                {
                    "id": user_id,
                    "name": f"{rnd.choice(_FIRST_NAMES)} {rnd.choice(_LAST_NAMES)}",
                    "username": username,
                    "created_at": _iso(datetime(2008, 1, 1, tzinfo=timezone.utc) + timedelta(days=rnd.randint(0, 5800))),
                    "description": rnd.choice(_BIOS),
                    "location": rnd.choice(_PLACES),
                    "verified": rnd.random() < 0.05,
                    "public_metrics": {
                        "followers_count": int(rnd.paretovariate(1.2) * 50),
                        "following_count": rnd.randint(10, 2000),
                        "tweet_count": rnd.randint(10, 50_000),
                        "listed_count": rnd.randint(0, 200),
                        "like_count": rnd.randint(0, 90_000),
                    },
                }
            )
        return authors

    def _seeded_pools(self) -> dict[tuple[bool, bool], deque[tuple[dict, list[str]]]]:
        """Older posts for the first retweets, quotes and replies to refer to, made oldest first."""
        now = self._clock()
        pools: dict[tuple[bool, bool], deque[tuple[dict, list[str]]]] = {
            kind: deque(maxlen=_POOL_SIZE) for kind in _POOL_KINDS
        }
        ages = sorted((self._random.uniform(60, 2 * 86_400) for _ in range(20 * len(_POOL_KINDS))), reverse=True)
        for i, age in enumerate(ages):
            english, on_topic = _POOL_KINDS[i % len(_POOL_KINDS)]
            topics = self._pick_topics() if on_topic else []
            lang, text = self._compose("original", english, topics)
            created = now - timedelta(seconds=age)
            author = self._random.choice(self._authors)
            post, _ = self._post(self._ids.new(_PAST, created), author, created, text, lang, link=True)
            pools[(english, on_topic)].append((post, topics))
        return pools

    # --- malformed -------------------------------------------------------------------------------

    def _malformed(self) -> bytes:
        """What a stream and a broker can hand over that is not a tweet."""
        rnd = self._random
        kind = rnd.choice(("not_json", "truncated", "stream_error", "missing_id", "bad_type", "not_utf8"))
        if kind == "not_json":
            return rnd.choice(
                (
                    b"<html><head><title>503 Service Temporarily Unavailable</title></head></html>",
                    b"Rate limit exceeded",
                    b"data: {\"id\":",
                )
            )
        if kind == "stream_error":
            return orjson.dumps(
                {
                    "errors": [
                        {
                            "title": "operational-disconnect",
                            "disconnect_type": "UpstreamOperationalDisconnect",
                            "detail": "This stream has been disconnected upstream for operational reasons.",
                            "type": "https://api.x.com/2/problems/operational-disconnect",
                        }
                    ]
                }
            )
        message = self._stream_message()
        message["data"] = dict(message["data"])  # the pooled post stays intact
        if kind == "missing_id":
            del message["data"]["id"]
        elif kind == "bad_type":
            field, value = rnd.choice((("created_at", "yesterday"), ("created_at", 12345), ("text", 12345), ("text", True)))
            message["data"][field] = value
            message["data"].pop("note_tweet", None)  # else its text stands in for a bad "text"
        payload = orjson.dumps(message)
        if kind == "truncated":
            return payload[: rnd.randrange(1, len(payload) - 1)]
        if kind == "not_utf8":
            cut = rnd.randrange(1, len(payload) - 1)
            return payload[:cut] + b"\xff" + payload[cut:]
        return payload


def _public_user(author: dict) -> dict:
    user = dict(author)
    if not user["location"]:
        del user["location"]
    return user


def _full_text(post: dict) -> str:
    note = post.get("note_tweet")
    return note["text"] if note else post["text"]


def _retweet_text(username: str, text: str) -> str:
    """A retweet's own text: "RT @user: " and the original, cut at a word near 140 characters."""
    text = f"RT @{username}: {text}"
    return text if len(text) <= 140 else _cut(text, 139)


def _cut(text: str, limit: int) -> str:
    """The text shortened at a space before `limit`, with an ellipsis, as X shortens it."""
    space = text.rfind(" ", 0, limit)
    return text[: space if space > 0 else limit] + "…"


def _links_of(post: dict) -> dict[str, dict]:
    return {
        url["url"]: {k: url[k] for k in ("expanded_url", "media_key") if k in url}
        for url in post.get("entities", {}).get("urls", [])
    }


@register("synthetic")
class SyntheticSource(Source):
    """SOURCE=synthetic: generated stream messages at SYNTHETIC_RATE a second, paced against the
    start time so small sleeps do not accumulate drift; SYNTHETIC_LIMIT of them (0: unbounded)."""

    def __init__(self, rate: float, seed: int | None = None, limit: int = 0):
        self.rate, self.seed, self.limit = rate, seed, limit
        self.sent = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "SyntheticSource":
        return cls(settings.synthetic_rate, settings.synthetic_seed, settings.synthetic_limit)

    async def run(self, publish: Publish) -> None:
        log.info("synthetic source: %.0f tweets/s (seed %s)", self.rate, self.seed)
        tweets = SyntheticTweets(seed=self.seed)
        started = time.monotonic()
        while not self.limit or self.sent < self.limit:
            await publish(tweets.message())
            self.sent += 1
            ahead = self.sent / self.rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
            if self.sent % 10_000 == 0:
                log.info("synthetic source: %d tweets published", self.sent)
        log.info("synthetic source: limit of %d tweets reached", self.limit)
