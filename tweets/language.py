"""The language of a tweet X gave no lang to: the one rule the bronze language filter
(tweets/normalizer.py) and the silver zone's lang column share."""
from __future__ import annotations

import re
from functools import lru_cache

# py3langid on the seed file's 1,000 English tweets without their lang: at probability 0.8 or
# more 830 en, 2 other (one really Thai), 168 unsure; at 0.5, 8 other, mostly "pcm" (Nigerian
# Pidgin). Short texts are where it errs: "ai voleri del governo" is "vec" at 0.23.
_MIN_PROBABILITY = 0.8
# Links, mentions, hashtags and HTML entities are not words of any language.
_NOT_LANGUAGE = re.compile(r"https?://\S+|[@＠#＃]\w+|&\w+;")
# X's word for a tweet it could not give a language to.
UNDETERMINED = "und"


def detect_language(text: str | None) -> str:
    """The language of a text, or "und" when the guess is unsure: then the topic decides, as for
    X's own undetermined tweets. ~130 us a tweet."""
    if not text:
        return UNDETERMINED
    language, probability = _language_identifier().classify(_NOT_LANGUAGE.sub(" ", text))
    return language if probability >= _MIN_PROBABILITY else UNDETERMINED


def tweet_language(x_lang: str | None, content: str | None) -> str:
    """Silver's lang: X's own when it gave one, else the detected one. X's codes are ASCII
    (BCP 47: "en", "zh-cn", "und"); anything else is not X's and is detected instead."""
    return x_lang if x_lang and x_lang.isascii() else detect_language(content)


@lru_cache(maxsize=1)
def _language_identifier():
    """Loaded on first use (0.4-0.8 s, the model ships in the package), not at import: most
    tweets carry X's lang, so most processes never need it."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
