"""The relevance model against the hand labels, measured by the training code's cross-validation,
and the shipped config/relevance_model.json against what the training produces from the data."""
from __future__ import annotations

import json

import pytest

from tests.support.nlp import field_nlp
from tests.support.tweets import SEED_FILE
from tweets.relevance import FEATURE_NAMES, NOT_RELEVANT, RELEVANT, RelevanceModel, default_model_path
from tweets.relevance_training import labelled_set, train

SHIPPED = json.loads(default_model_path().read_text())
needs_seed = pytest.mark.skipif(not SEED_FILE.is_file(), reason=f"no seed file at {SEED_FILE}")


@pytest.fixture(scope="module")
def data():
    return labelled_set(SEED_FILE, nlp=field_nlp())


@pytest.fixture(scope="module")
def trained(data) -> dict:
    return train(data)


@needs_seed
def test_the_labelled_set(data):
    assert data.features.shape == (310, len(FEATURE_NAMES))
    assert int(data.relevant.sum()) == 19
    assert ((0 <= data.features) & (data.features <= 1)).all()


@needs_seed
def test_cross_validated_figures_beat_the_keyword_rules_on_the_same_folds(trained):
    figures = trained["cross_validation"]
    model, rules = figures["model"]["pooled"], figures["keyword_rules"]["pooled"]
    print(json.dumps(figures, indent=1))
    # The rules as tests/test_relevance_labels.py measures them: 18 of 25 kept are relevant.
    assert rules["precision"]["mean"] == pytest.approx(0.72)
    assert rules["recall"]["mean"] == pytest.approx(18 / 19, abs=1e-4)
    assert model["precision"]["mean"] > rules["precision"]["mean"] + 0.1
    assert model["precision"]["min"] > rules["precision"]["mean"]
    assert model["recall"]["mean"] > 0.85
    assert model["f1"]["mean"] > rules["f1"]["mean"] + 0.05


@needs_seed
def test_the_shipped_model_is_trained_on_the_current_data(data):
    assert SHIPPED["data_sha256"] == data.data_sha256, (
        "labels, labelled tweets, vocabulary or topic rules changed since config/relevance_model.json"
        " was written: retrain with python -m tweets.relevance_training"
    )


@needs_seed
def test_the_shipped_model_is_what_the_training_writes(trained):
    assert SHIPPED["feature_names"] == trained["feature_names"] == list(FEATURE_NAMES)
    assert SHIPPED["coefficients"] == pytest.approx(trained["coefficients"], abs=1e-5)
    assert SHIPPED["intercept"] == pytest.approx(trained["intercept"], abs=1e-5)
    assert (SHIPPED["threshold"], SHIPPED["regularisation_c"]) == (trained["threshold"], trained["regularisation_c"])
    assert SHIPPED["cross_validation"] == trained["cross_validation"]


def test_scores_are_probabilities_and_the_label_follows_the_threshold():
    model = RelevanceModel.from_file()
    assert model.threshold == SHIPPED["threshold"]
    lowest, highest = model.score([0.0] * len(FEATURE_NAMES)), model.score([1.0] * len(FEATURE_NAMES))
    assert 0.0 <= lowest < model.threshold <= highest <= 1.0
    assert model.label(model.threshold) == RELEVANT
    assert model.label(model.threshold - 1e-9) == NOT_RELEVANT
    assert 0.0 <= RelevanceModel((1e6,), 0.0, 0.5).score([1.0]) <= 1.0
    assert 0.0 <= RelevanceModel((-1e6,), 0.0, 0.5).score([1.0]) <= 1.0


def test_a_model_of_other_features_is_refused(tmp_path):
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({**SHIPPED, "feature_names": ["keyword_topic"]}))
    with pytest.raises(ValueError, match=r"stale\.json.*retrain with python -m tweets\.relevance_training"):
        RelevanceModel.from_file(stale)
