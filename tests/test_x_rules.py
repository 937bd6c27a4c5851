"""X filtered-stream rules: built from the rules file, checked against X's limits, synced through
Tweepy with a fake X API over HTTP, and the `x_rules sync` command line."""
from __future__ import annotations

import asyncio

import pytest
from tweepy import StreamRule

from tweets.topics import StreamRules, Topic, load_rules
from agents.sources.x_access import ACCESS_LEVELS, x_limits
from agents.sources.x_rules import RulesError, build_rules, diff_rules, main, sync_rules, topic_rule
from agents.sources.x_api import api_client
from config.settings import Settings, get_settings
from tests.support.fake_x_api import RULES_PATH, FakeXApi

TOPIC = Topic(
    tag="machine_learning", name="Machine Learning",
    keywords=("PyTorch", "scikit-learn", "A.I."), phrases=("deep learning",), hashtags=("MachineLearning",),
)


def rule(value: str, tag: str, rule_id: str | None = None) -> StreamRule:
    return StreamRule(value=value, tag=tag, id=rule_id)


def x_rules_of(fake: FakeXApi) -> set[tuple[str, str]]:
    return {(r["value"], r["tag"]) for r in fake.rules.values()}


def test_a_topic_becomes_one_tagged_rule_of_all_its_terms():
    assert topic_rule(TOPIC, ["en"]) == rule(
        '(PyTorch OR "scikit-learn" OR "A.I." OR "deep learning" OR #MachineLearning) lang:en', "machine_learning"
    )


def test_several_languages_are_alternatives_and_none_means_any():
    assert topic_rule(TOPIC, ["en", "es"]).value.endswith(") (lang:en OR lang:es)")
    assert topic_rule(TOPIC, []).value.endswith("#MachineLearning)")


BASIC = ACCESS_LEVELS["basic"]


def test_the_project_rules_file_makes_one_rule_per_topic_within_every_access_level():
    for limits in ACCESS_LEVELS.values():
        rules = build_rules(load_rules(), limits)
        assert sorted(r.tag for r in rules) == ["ai", "big_data", "data_science", "machine_learning"]
        for r in rules:
            assert r.value.startswith("(") and r.value.endswith(") lang:en")


def test_the_access_level_sets_the_limits_and_explicit_settings_override_them():
    settings = Settings(_env_file=None)
    assert (settings.x_access_level, x_limits(settings)) == ("pay-per-use", ACCESS_LEVELS["pay-per-use"])
    assert (x_limits(settings).rules, x_limits(settings).rule_length, x_limits(settings).connections) == (1000, 1024, 1)
    assert x_limits(Settings(_env_file=None, x_access_level="basic")) == BASIC
    custom = x_limits(Settings(_env_file=None, x_access_level="basic", x_max_rules=40, x_max_rule_length=700))
    assert (custom.rules, custom.rule_length) == (40, 700)


def test_a_rule_longer_than_the_access_level_allows_fails_naming_its_topic():
    long_topic = Topic(tag="too_long", name="Too long", phrases=tuple(f"phrase number {i}" for i in range(40)))
    rules = StreamRules(topics=(TOPIC, long_topic), languages=("en",))
    with pytest.raises(RulesError, match=r"topic 'too_long' is \d+ characters, more than the 512"):
        build_rules(rules, BASIC)
    assert len(build_rules(rules, ACCESS_LEVELS["pay-per-use"])) == 2, "pay-per-use allows 1,024 characters"


def test_more_topics_than_rules_allowed_fails_naming_the_topics_over():
    with pytest.raises(RulesError, match=r"more than the 2 X allows .*over the limit: \w+, \w+$"):
        build_rules(load_rules(), x_limits(Settings(_env_file=None, x_max_rules=2)))


def test_diff_keeps_equal_rules_and_replaces_changed_ones():
    desired = [rule("(a) lang:en", "a"), rule("(b) lang:en", "b"), rule("(c) lang:en", "c")]
    existing = [rule("(a) lang:en", "a", "1"), rule("(b) lang:en", "old_b", "2"), rule("(z)", "z", "3")]
    diff = diff_rules(desired, existing)
    assert diff.kept == (existing[0],)
    assert diff.deleted == (existing[1], existing[2])
    assert diff.added == (desired[1], desired[2])


def settings_for(fake: FakeXApi, **overrides) -> Settings:
    return Settings(_env_file=None, x_bearer_token="test-token", x_api_base_url=fake.base_url, **overrides)


def sync(fake: FakeXApi, desired, dry_run: bool = False):
    async def run():
        client = api_client(settings_for(fake))
        try:
            return await sync_rules(client, desired, dry_run=dry_run)
        finally:
            await client.session.close()

    return asyncio.run(run())


def test_sync_deletes_stale_rules_then_adds_missing_ones_and_keeps_the_rest():
    desired = build_rules(load_rules(), BASIC)
    ai = next(r for r in desired if r.tag == "ai")
    existing = [
        {"id": "1", "value": ai.value, "tag": "ai"},
        {"id": "2", "value": "(bitcoin) lang:en", "tag": "crypto"},
        {"id": "3", "value": desired[0].value, "tag": "renamed_tag"},
    ]
    with FakeXApi(rules=existing) as fake:
        diff = sync(fake, desired)
        posts = fake.made("POST", RULES_PATH)
        assert [p.body for p in posts] == [
            {"delete": {"ids": ["2", "3"]}},
            {"add": [{"value": r.value, "tag": r.tag} for r in desired if r.tag != "ai"]},
        ]
        assert {r.authorization for r in fake.requests} == {"Bearer test-token"}
        assert x_rules_of(fake) == {(r.value, r.tag) for r in desired}
        assert [r.id for r in diff.kept] == ["1"] and [r.id for r in diff.deleted] == ["2", "3"]

        sync(fake, desired)
        assert len(fake.made("POST", RULES_PATH)) == 2, "a second sync has nothing to change"


def test_dry_run_reads_the_rules_and_sends_nothing():
    desired = build_rules(load_rules(), BASIC)
    with FakeXApi(rules=[{"id": "2", "value": "(bitcoin)", "tag": "crypto"}]) as fake:
        diff = sync(fake, desired, dry_run=True)
        assert [r.method for r in fake.requests] == ["GET"]
        assert len(diff.added) == 4 and [r.id for r in diff.deleted] == ["2"]


def test_a_rule_x_refuses_fails_the_sync_naming_its_topic():
    desired = [rule("(a) lang:en", "topic_a"), rule("(nope:b) lang:en", "topic_b")]
    with FakeXApi(refused_values={"(nope:b) lang:en"}) as fake:
        with pytest.raises(RulesError, match="X refused to add rules: rule 'topic_b': Invalid Rule Reference to"):
            sync(fake, desired)


@pytest.fixture
def x_env(monkeypatch):
    """The command line reads its settings from the environment, like every process."""
    monkeypatch.chdir("/")  # no .env file
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_cli_dry_run_prints_the_diff_and_changes_nothing(x_env, capsys):
    with FakeXApi(rules=[{"id": "7", "value": "(bitcoin) lang:en", "tag": "crypto"}]) as fake:
        x_env.setenv("X_BEARER_TOKEN", "test-token")
        x_env.setenv("X_API_BASE_URL", fake.base_url)
        assert main(["sync", "--dry-run"]) == 0
        assert [r.method for r in fake.requests] == ["GET"]
    out = capsys.readouterr().out
    assert "added    ai: (AI OR" in out
    assert "deleted  crypto (id 7): (bitcoin) lang:en" in out
    assert "4 added, 1 deleted, 0 kept" in out
    assert "dry run: nothing was changed on X" in out
    assert "test-token" not in out


def test_cli_without_a_token_names_the_setting(x_env, capsys):
    x_env.delenv("X_BEARER_TOKEN", raising=False)
    assert main(["sync", "--dry-run"]) == 1
    assert "X_BEARER_TOKEN is not set" in capsys.readouterr().err


def test_cli_help_explains_sync_and_dry_run(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sync", "--help"])
    assert exit_.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--dry-run" in help_text and "print the changes without making them" in help_text
    assert "delete those not in the rules file" in help_text
