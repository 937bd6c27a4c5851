"""The topic matcher and the rules file it is built from."""
from __future__ import annotations

import pytest

from tweets.topics import Topic, TopicMatcher, default_rules_path, load_rules

TAGS = ["ai", "big_data", "data_science", "machine_learning"]


@pytest.fixture(scope="module")
def matcher() -> TopicMatcher:
    return TopicMatcher.from_file(default_rules_path())


def test_rules_file_has_the_four_topic_areas_in_english():
    rules = load_rules()
    assert sorted(t.tag for t in rules.topics) == TAGS
    assert rules.languages == ("en",)
    assert all(t.name and (t.keywords or t.phrases) for t in rules.topics)
    assert default_rules_path().parts[-2:] == ("config", "stream_rules.toml")


def x_rule(topic: Topic, languages: tuple[str, ...]) -> str:
    """The plainest X rule for a topic: every term OR-ed, quoted when not a bare word."""

    def operand(term: str) -> str:
        return term if term.isalnum() else f'"{term}"'

    terms = [operand(k) for k in topic.keywords] + [f'"{p}"' for p in topic.phrases]
    terms += [f"#{h}" for h in topic.hashtags]
    return f"({' OR '.join(terms)}) " + " ".join(f"lang:{lang}" for lang in languages)


def test_every_topic_fits_in_one_x_rule():
    rules = load_rules()
    for topic in rules.topics:
        assert len(x_rule(topic, rules.languages)) <= 512, topic.tag


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AI is eating the world", ["ai"]),
        ("#AI #ai", ["ai"]),
        ("What OpenAI's release means", ["ai"]),
        ("LLMs and GPT-4o, compared", ["ai"]),
        ("ChatGPT4 wrote this", ["ai"]),
        ("Intro to MACHINE LEARNING", ["machine_learning"]),
        ("machine-learning and machine_learning", ["machine_learning"]),
        ("#MachineLearning", ["machine_learning"]),
        ("#deeplearning", ["machine_learning"]),
        ("neural networks from scratch", ["machine_learning"]),
        ("#DataScience", ["data_science"]),
        ("data scientists wanted", ["data_science"]),
        ("#BigData", ["big_data"]),
        ("Hadoop and Apache Spark 3.5", ["big_data"]),
        ("our data engineers love the new data lakehouse", ["big_data"]),
        ("#DataScienceTips for #AIForGood", ["ai", "data_science"]),
        ("#LearnMachineLearning", ["machine_learning"]),
        ("#Generative_AI", ["ai"]),
        ("scikit-learn 1.5 is out", ["data_science", "machine_learning"]),
        ("Artificial intelligence, deep learning, big data and data science", TAGS),
    ],
)
def test_matches(matcher, text, expected):
    assert matcher.match(text, [], []) == expected


@pytest.mark.parametrize(
    "text",
    [
        "She said the AIR is fresh today",
        "Dubai, Thailand and Taipei",
        "learning to cook with big pots of data in the cloud",
        "my network went down again",
        "this kitchen sparks joy, a spark of hope",
        "we found no SQL injection, a big query for the team",
        "add 500 ML of water",
        "#MLAwards tonight",
        "RT @someone: see https://t.co/AI3kd2mxYz and https://example.org/#AI",
        "the machine, learning nothing",
    ],
)
def test_broad_words_and_lookalikes_do_not_match(matcher, text):
    assert matcher.match(text, [], []) == []


@pytest.mark.parametrize(
    "text",
    [
        "Grazie ai medici e agli infermieri",  # Italian "ai": to the
        "Siamo tutti sottomessi ai voleri del governo",
        "Ai miei amici: restate a casa",
        "I'm so weak!! it HAS to be a joke!! ai ngeke",  # Zulu
        "Where is Wuhan whistleblower Dr. Ai Fen? She disappeared after criticizing the authorities",
        "Aiuto, ai ai ai, che giornata",
        "rinviato ai prossimi mesi, llm e nlp non c'entrano",
        "the new gpt of the neighbourhood: a gpt is a local planning body",
    ],
)
def test_lower_case_lookalikes_of_acronyms_do_not_match(matcher, text):
    assert matcher.match(text, [], []) == []


@pytest.mark.parametrize(
    ("text", "hashtags", "expected"),
    [
        ("AIs will write most code, they say", [], ["ai"]),
        ("Which LLM is best for code? LLMs compared", [], ["ai"]),
        ("GPT-4o and GPT4 on a laptop", [], ["ai"]),
        ("A.I. is not magic", [], ["ai"]),
        ("NLP in production", [], ["machine_learning"]),
        ("HDFS is slow for small files", [], ["big_data"]),
        ("new paper out", ["ai"], ["ai"]),
        ("#nlp reading group", [], ["machine_learning"]),
        ("#AIForGood and #Generative_AI", [], ["ai"]),
        ("Google DeepMind on protein folding", [], ["ai"]),
        ("David Silver of @DeepMind wins the ACM Prize in Computing", [], ["ai"]),
        ("Chatbots everywhere", [], ["ai"]),
    ],
)
def test_acronyms_match_in_capitals_or_as_hashtags(matcher, text, hashtags, expected):
    assert matcher.match(text, hashtags, []) == expected


def test_an_acronym_in_a_link_counts_only_in_capitals(matcher):
    assert matcher.match("", [], ["https://example.it/grazie-ai-medici"]) == []
    assert matcher.match("", [], ["https://example.com/news/AI-act-explained"]) == ["ai"]


def test_hashtags_from_entities_count_with_or_without_sign(matcher):
    assert matcher.match("truncated text…", ["MachineLearning"], []) == ["machine_learning"]
    assert matcher.match("truncated text…", ["#AI"], []) == ["ai"]
    assert matcher.match("", ["ml"], []) == ["machine_learning"]


def test_hashtag_terms_match_whole_hashtags_only(matcher):
    assert matcher.match("new #ML paper", [], []) == ["machine_learning"]
    assert matcher.match("ML paper", [], []) == []
    assert matcher.match("", ["MLB"], []) == []


def test_urls_count_by_path_not_host(matcher):
    assert matcher.match("", [], ["https://blog.example.com/what-is-machine-learning"]) == ["machine_learning"]
    assert matcher.match("", [], ["http://kw.ai/p/dFOU9wPt"]) == []
    assert matcher.match("", [], ["https://openai.example/pricing?ref=ai"]) == []


def test_results_are_sorted_and_unique(matcher):
    text = "big data " * 3 + "AI " * 3 + "#DataScience"
    assert matcher.match(text, ["AI", "BigData"], []) == ["ai", "big_data", "data_science"]


def test_a_matcher_from_topics_in_code():
    matcher = TopicMatcher(
        [
            Topic(tag="stream", name="Streams", keywords=("Kafka-Streams",), phrases=("event time",)),
            Topic(tag="tags_only", name="Tags", hashtags=("#Flink",)),
        ]
    )
    assert matcher.match("KafkaStreams and event-time windows", [], []) == ["stream"]
    assert matcher.match("Flink", [], []) == []
    assert matcher.match("#flink", [], []) == ["tags_only"]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("languages = ['en']\n", "no \\[topics"),
        ("[topics.ai]\ntag = 'ml'\nkeywords = ['AI']\n", "tag must equal"),
        ("[topics.ai]\ntag = 'ai'\nkeywords = ['machine learning']\n", "move"),
        ("[topics.ai]\ntag = 'ai'\n", "no keywords"),
        ("[topics.ai]\nkeywords = 'AI'\n", "list of non-empty strings"),
    ],
)
def test_a_broken_rules_file_fails_at_load(tmp_path, content, error):
    path = tmp_path / "rules.toml"
    path.write_text(content)
    with pytest.raises(ValueError, match=error):
        load_rules(path)
