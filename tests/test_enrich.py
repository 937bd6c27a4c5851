"""The silver job's entry point: bronze rows in, the NLP columns out, with the real pipeline."""
from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.nlp import CountingPipeline, field_nlp
from tweets.enrich import ENRICHMENT_ARROW_SCHEMA, Enricher

COLUMNS = ["text_clean", "lang", "entities", "hashtags", "domains", "topics", "relevance", "relevance_label"]
ORIGINAL = (
    "Yann LeCun at NYU: self-supervised learning will power the next generation of AI research"
    " &amp; models, in Paris this June 🚀 https://t.co/AbCdEf"
)


def bronze(text, **fields) -> dict:
    row = {
        "tweet_id": "1",
        "text": text,
        "retweeted_text": None,
        "lang": "en",
        "hashtags": [],
        "urls": [],
        "topics": [],
        "is_retweet": False,
    }
    return row | fields


def retweet_of(original: str, user: str) -> dict:
    return bronze(f"RT @{user}: {original[:100]}…", retweeted_text=original, is_retweet=True)


@pytest.fixture(scope="module")
def counting() -> CountingPipeline:
    return CountingPipeline(field_nlp())


@pytest.fixture(scope="module")
def enricher(counting) -> Enricher:
    return Enricher(nlp=counting)


def as_arrow(rows: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=ENRICHMENT_ARROW_SCHEMA)


def test_the_columns_and_their_arrow_schema(enricher):
    (row,) = enricher.enrich(
        [
            bronze(
                "New #PyTorch release from Meta AI &amp; Hugging Face 🎉 https://t.co/x",
                hashtags=["PyTorch", "pytorch", "OpenSource"],
                urls=["https://t.co/x", "https://www.GitHub.com/pytorch/pytorch", "https://pytorch.org/blog"],
            )
        ]
    )
    assert list(row) == COLUMNS == ENRICHMENT_ARROW_SCHEMA.names
    assert row["text_clean"] == "New #PyTorch release from Meta AI & Hugging Face 🎉"
    assert row["hashtags"] == ["pytorch", "opensource"]
    assert row["domains"] == ["github.com", "pytorch.org"]
    assert row["topics"] == ["ai", "machine_learning"]
    assert {(e["text"], e["label"]) for e in row["entities"]} >= {
        ("PyTorch", "ML_FRAMEWORK"),
        ("Meta AI", "ML_ORG"),
        ("Hugging Face", "ML_ORG"),
    }
    for entity in row["entities"]:
        assert list(entity) == ["text", "label", "start", "end"]
        assert row["text_clean"][entity["start"] : entity["end"]] == entity["text"]
    assert row["relevance_label"] == "relevant" and 0.5 < row["relevance"] <= 1.0
    batch = as_arrow([row])
    assert batch.schema.field("entities").type.value_type.field("start").type == pa.int32()
    assert batch.schema.field("relevance").type == pa.float64()


def test_a_retweet_is_cleaned_from_the_original_full_text(enricher):
    (row,) = enricher.enrich([retweet_of(ORIGINAL, "ylecun")])
    assert row["text_clean"] == (
        "Yann LeCun at NYU: self-supervised learning will power the next generation of AI research & models,"
        " in Paris this June 🚀"
    )
    labels = {e["text"]: e["label"] for e in row["entities"]}
    assert labels["Yann LeCun"] == "ML_PERSON"
    assert labels["Paris"] == "GPE"


def test_one_pipe_call_per_batch_for_its_new_distinct_texts(enricher, counting):
    calls = counting.calls
    texts = len(counting.texts)
    batch = [
        bronze("Databricks opens an office in Amsterdam"),
        retweet_of("Andrew Ng launches a new deep learning course in Toronto", "AndrewYNg"),
        retweet_of("Andrew Ng launches a new deep learning course in Toronto", "someone_else"),
        bronze("Databricks opens an office in Amsterdam https://t.co/other @mention"),
        bronze("Andrew Ng launches a new deep learning course in Toronto"),
    ]
    first = enricher.enrich(batch)
    assert counting.calls == calls + 1
    assert counting.texts[texts:] == [
        "Databricks opens an office in Amsterdam",
        "Andrew Ng launches a new deep learning course in Toronto",
    ]
    assert first[0] == first[3] and first[1] == first[2] == first[4]
    assert enricher.enrich(batch[::-1]) == first[::-1]
    assert counting.calls == calls + 1


def test_x_lang_wins_and_a_missing_one_is_detected(enricher):
    spanish = "El aprendizaje automático está cambiando la forma en que trabajamos con los datos cada día"
    given_lang, missing_lang = enricher.enrich([bronze(spanish, lang="pt"), bronze(spanish, lang=None)])
    assert (given_lang["lang"], missing_lang["lang"]) == ("pt", "es")


def test_relevance_separates_the_field_from_other_senses_of_its_words(enricher):
    relevant, game, beach = enricher.enrich(
        [
            bronze(
                "New paper: we train a neural network with PyTorch for speech recognition",
                urls=["https://arxiv.org/abs/2401.00001"],
            ),
            bronze("The game's AI is so dumb, this boss fight is unfair", hashtags=["gaming"]),
            bronze("Lovely sunny day at the beach with the kids"),
        ]
    )
    assert relevant["relevance_label"] == "relevant"
    assert game["topics"] == ["ai"] and game["relevance_label"] == "not_relevant"
    assert beach["relevance_label"] == "not_relevant"
    assert beach["relevance"] < game["relevance"] < relevant["relevance"]


ODD_ROWS = [
    {},
    bronze(None, lang=None, hashtags=None, urls=None, topics=None, is_retweet=None),
    bronze(""),
    bronze("   \n\t "),
    bronze("RT @someone:"),
    bronze("bad \ud800 surrogate \udfff", lang="\udc80", hashtags=["\ud800AI"], urls=["https://x\ud800.com/a"]),
    bronze("control \x00\x01\x7f chars and RTL \u202e text \u200b zero width 👨‍👩‍👧"),
    bronze("OpenAI " * 200_000),
    bronze(12345, retweeted_text=["not", "text"], lang=7, hashtags="AI", urls={"u": 1}),
    bronze("ok", hashtags=[None, 3, "", "AI"], urls=[None, 5, "", "http://[::1", "https://t.co/x"]),
]


def test_bad_input_never_raises_and_fits_the_schema(enricher):
    rows = enricher.enrich(ODD_ROWS)
    assert len(rows) == len(ODD_ROWS)
    batch = as_arrow(rows)
    assert batch.num_rows == len(ODD_ROWS)
    assert all(list(row) == COLUMNS for row in rows)
    assert rows[0]["text_clean"] == rows[1]["text_clean"] == rows[2]["text_clean"] == rows[4]["text_clean"] == ""
    assert rows[0]["entities"] == [] and rows[0]["lang"] == "und"
    assert rows[9]["hashtags"] == ["ai"] and rows[9]["domains"] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "text": st.one_of(st.none(), st.text(max_size=300)),
                "retweeted_text": st.one_of(st.none(), st.text(max_size=300)),
                "lang": st.one_of(st.none(), st.text(max_size=8)),
                "hashtags": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=5)),
                "urls": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=3)),
                "topics": st.one_of(st.none(), st.lists(st.text(max_size=10), max_size=3)),
                "is_retweet": st.one_of(st.none(), st.booleans()),
            },
        ),
        max_size=8,
    )
)
def test_any_bronze_like_rows_give_schema_conformant_columns(enricher, rows):
    enriched = enricher.enrich(rows)
    batch = as_arrow(enriched)
    assert batch.num_rows == len(rows)
    assert all(0.0 <= row["relevance"] <= 1.0 for row in enriched)
    for row in enriched:
        for entity in row["entities"]:
            assert row["text_clean"][entity["start"] : entity["end"]] == entity["text"]


def test_scoring_imports_no_scikit_learn():
    script = (
        "import sys\n"
        "from tweets.enrich import Enricher\n"
        "Enricher().enrich([{'text': 'PyTorch and TensorFlow in Berlin'}])\n"
        "assert 'sklearn' not in sys.modules, 'the silver job must not need scikit-learn'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_the_silver_job_hands_over_every_column_the_enricher_reads(enricher):
    """spark_sink.silver_rows turns only ENRICHER_READS into Python objects: a row cut down to
    them must give the same columns as the whole bronze row."""
    from spark_sink.silver_rows import ENRICHER_READS

    full = [{"tweet_id": "1", "text": "RT @ana: PyTorch 2.3 is out https://t.co/x", "lang": None, "is_retweet": True,
             "retweeted_text": "PyTorch 2.3 is out, with better compile times #PyTorch #DeepLearning",
             "hashtags": ["PyTorch", "DeepLearning"], "urls": ["https://pytorch.org/blog/2-3"], "topics": ["ai"],
             "mentions": ["ana"], "author_username": "bob", "source_format": "v2"}]
    cut = [{name: row[name] for name in ENRICHER_READS} for row in full]
    assert enricher.enrich(cut) == enricher.enrich(full)
