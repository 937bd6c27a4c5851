"""The field's spaCy pipeline, loaded once, and a pipeline that counts its calls."""
from __future__ import annotations

from functools import lru_cache

from tweets.entities import load_pipeline, load_vocabulary


@lru_cache(maxsize=1)
def field_nlp():
    """The pipeline, loaded once per test session (the relevance and enrich tests share it)."""
    return load_pipeline(load_vocabulary())


class CountingPipeline:
    """The real pipeline, counting the pipe calls and the texts they were given."""

    def __init__(self, nlp):
        self.nlp = nlp
        self.calls = 0
        self.texts: list[str] = []

    def pipe(self, texts, *, batch_size):
        texts = list(texts)
        self.calls += 1
        self.texts += texts
        return self.nlp.pipe(texts, batch_size=batch_size)

    def memory_zone(self):
        return self.nlp.memory_zone()
