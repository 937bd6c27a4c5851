"""The language rule shared by the bronze language filter and the silver lang column."""
from __future__ import annotations

import pytest

import tweets.normalizer
from tweets.language import detect_language, tweet_language

ENGLISH = "Deep learning with PyTorch: a practical guide for people who learn by building things"
SPANISH = "El aprendizaje automático está cambiando la forma en que trabajamos con los datos cada día"
FRENCH = "L'intelligence artificielle transforme la manière dont nous travaillons avec les données"


@pytest.mark.parametrize(("text", "language"), [(ENGLISH, "en"), (SPANISH, "es"), (FRENCH, "fr")])
def test_clear_texts_are_detected(text, language):
    assert detect_language(text) == language


@pytest.mark.parametrize("text", ["", None, "ai voleri del governo", "#AI @openai https://t.co/xyz &amp;"])
def test_short_or_wordless_texts_are_undetermined(text):
    assert detect_language(text) == "und"


def test_x_lang_wins_over_the_detected_one():
    assert tweet_language("es", ENGLISH) == "es"
    assert tweet_language("und", FRENCH) == "und"


def test_without_x_lang_the_language_is_detected():
    assert tweet_language(None, SPANISH) == "es"
    assert tweet_language("", FRENCH) == "fr"
    assert tweet_language(None, None) == "und"


def test_a_lang_that_is_not_an_x_code_is_detected_instead():
    assert tweet_language("\ud800", ENGLISH) == "en"


def test_the_bronze_filter_uses_the_same_rule():
    assert tweets.normalizer.detected_language is detect_language
