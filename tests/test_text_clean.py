"""The silver zone's text fields: clean_text, tweet_content, folded_hashtags, url_domains."""
from __future__ import annotations

import pytest

from tweets.text import clean_text, folded_hashtags, tweet_content, url_domains


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Loving the new release 🚀🤖 &amp; the docs", "Loving the new release 🚀🤖 & the docs"),
        ("RT @OpenAI: GPT-4 is here", "GPT-4 is here"),
        ("RT @data_guy42: thread 🧵", "thread 🧵"),
        ("Great talk by @ylecun today", "Great talk by today"),
        ("Fullwidth ＠someone mention", "Fullwidth mention"),
        ("Write to me@example.com please", "Write to me@example.com please"),
        ("Read https://t.co/AbC123xyz now http://example.com/a?b=c", "Read now"),
        ("Truncated retweet ends in a link https://t.co/Ab…", "Truncated retweet ends in a link"),
        ("line one\n\n  line two\t\tend  ", "line one line two end"),
        ("&lt;3 data &gt; opinions &quot;quoted&quot;", '<3 data > opinions "quoted"'),
        ("#AI and #DataScience stay as words", "#AI and #DataScience stay as words"),
        ("👩‍💻 family emoji 👨‍👩‍👧 keep their joiners", "👩‍💻 family emoji 👨‍👩‍👧 keep their joiners"),
        ("   ", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_a_mid_text_rt_is_not_a_retweet_prefix():
    assert clean_text("Please RT this: big news") == "Please RT this: big news"


def test_lone_surrogates_become_replacement_characters_so_arrow_can_write_them():
    cleaned = clean_text("bad \ud800 half of a pair \udfff")
    assert cleaned == "bad \ufffd half of a pair \ufffd"
    cleaned.encode("utf-8")


def test_content_is_the_retweeted_full_text_for_a_retweet_else_the_text():
    truncated = "RT @ylecun: Self-supervised learning is the dark matter of intelligence, and we…"
    full = "Self-supervised learning is the dark matter of intelligence, and we need more of it."
    assert tweet_content(truncated, full) == full
    assert tweet_content("My own tweet", None) == "My own tweet"
    assert tweet_content(None, None) == ""
    assert clean_text(tweet_content(truncated, None)).startswith("Self-supervised")


def test_folded_hashtags_are_case_folded_in_order_once():
    assert folded_hashtags(["AI", "DeepLearning", "ai", "#MLOps", "Ai", "", None, 3]) == ["ai", "deeplearning", "mlops"]
    assert folded_hashtags(None) == []
    assert folded_hashtags(["STRASSE", "Straße"]) == ["strasse"]


def test_url_domains():
    urls = [
        "https://www.ArXiv.org/abs/2401.00001",
        "https://t.co/AbC123",
        "http://[::1",
        "github.com/pytorch/pytorch",
        "https://github.com/huggingface/transformers",
        "https://huggingface.co/models?sort=trending",
        "https://WWW.Example.COM:8080/path#frag",
        "not a url",
        "",
        None,
        42,
    ]
    assert url_domains(urls) == ["arxiv.org", "github.com", "huggingface.co", "example.com"]
    assert url_domains(None) == []
    assert url_domains(["https://bad\ud800host.com/x"]) == ["bad\ufffdhost.com"]
