"""The X API v2 filtered-stream rules, built from config/stream_rules.toml: one rule per topic,
tagged with the topic's tag, so the file decides both what X sends and what the lake keeps.

Building and diffing are pure; `sync_rules` brings X's rule set in line with the file (through
Tweepy), at worker start-up and from the command line:

    python -m agents.sources.x_rules sync [--dry-run]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

import aiohttp
from tweepy import StreamRule, TweepyException
from tweepy.asynchronous import AsyncStreamingClient

from tweets.topics import StreamRules, Topic, load_rules
from agents.sources.x_access import XLimits, x_limits
from agents.sources.x_api import api_client
from config.settings import Settings, get_settings


class RulesError(ValueError):
    """The rules file cannot become X rules, or X refused a change to its rules."""


@dataclass(frozen=True)
class RulesDiff:
    """What a sync does: rules to add (no id yet), X's rules to delete and to keep (with ids)."""

    added: tuple[StreamRule, ...]
    deleted: tuple[StreamRule, ...]
    kept: tuple[StreamRule, ...]


def topic_rule(topic: Topic, languages: Sequence[str]) -> StreamRule:
    """`(kw OR "a phrase" OR #Hashtag ...) lang:en`: any term of the topic, in one of the languages.

    A keyword that is not a bare word ("scikit-learn", "A.I.") is quoted, as X would otherwise
    read its punctuation as operators or split it into separate words.
    """
    terms = [k if k.isalnum() else f'"{k}"' for k in topic.keywords]
    terms += [f'"{phrase}"' for phrase in topic.phrases]
    terms += [f"#{hashtag}" for hashtag in topic.hashtags]
    value = f"({' OR '.join(terms)})"
    if len(languages) == 1:
        value += f" lang:{languages[0]}"
    elif languages:
        value += " (" + " OR ".join(f"lang:{lang}" for lang in languages) + ")"
    return StreamRule(value=value, tag=topic.tag)


def build_rules(rules: StreamRules, limits: XLimits) -> tuple[StreamRule, ...]:
    """The X rules for the rules file, checked against the access level's limits before anything
    is sent, so that an over-long topic fails at start-up with its name, not as X's rejection."""
    built = tuple(topic_rule(topic, rules.languages) for topic in rules.topics)
    for rule in built:
        if len(rule.value) > limits.rule_length:
            raise RulesError(
                f"the X rule of topic {rule.tag!r} is {len(rule.value)} characters, more than the "
                f"{limits.rule_length} X allows (X_ACCESS_LEVEL, X_MAX_RULE_LENGTH): drop terms from it "
                f"or split it into two topics"
            )
    if len(built) > limits.rules:
        extra = ", ".join(rule.tag for rule in built[limits.rules:])
        raise RulesError(
            f"{len(built)} topics need {len(built)} X rules, more than the {limits.rules} X allows "
            f"(X_ACCESS_LEVEL, X_MAX_RULES); over the limit: {extra}"
        )
    return built


def diff_rules(desired: Iterable[StreamRule], existing: Iterable[StreamRule]) -> RulesDiff:
    """Rules match on value and tag: a changed value or tag is a deletion plus an addition."""
    desired, existing = tuple(desired), tuple(existing)
    wanted = {(rule.value, rule.tag) for rule in desired}
    present = {(rule.value, rule.tag) for rule in existing}
    return RulesDiff(
        added=tuple(rule for rule in desired if (rule.value, rule.tag) not in present),
        deleted=tuple(rule for rule in existing if (rule.value, rule.tag) not in wanted),
        kept=tuple(rule for rule in existing if (rule.value, rule.tag) in wanted),
    )


async def sync_rules(
    client: AsyncStreamingClient, desired: Sequence[StreamRule], *, dry_run: bool = False
) -> RulesDiff:
    """Make X's rules the desired ones; with dry_run, only read them.

    Deletes before it adds: X refuses a rule whose value it already has, even under another tag,
    and counts the old rules against the limit until they are gone.
    """
    response = await client.get_rules()
    diff = diff_rules(desired, response.data or ())
    if dry_run:
        return diff
    if diff.deleted:
        response = await client.delete_rules([rule.id for rule in diff.deleted])
        _raise_for_errors(response.errors, "delete", diff.deleted)
    if diff.added:
        response = await client.add_rules(list(diff.added))
        _raise_for_errors(response.errors, "add", diff.added)
    return diff


def _raise_for_errors(errors: list[dict], action: str, rules: Sequence[StreamRule]) -> None:
    if not errors:
        return
    tags = {rule.value: rule.tag for rule in rules} | {rule.id: rule.tag for rule in rules}
    problems = []
    for error in errors:
        subject = error.get("value") or error.get("id")
        details = "; ".join(error.get("details") or ()) or error.get("detail") or ""
        problems.append(f"rule {tags.get(subject, subject)!r}: {error.get('title')} {details}".strip())
    raise RulesError(f"X refused to {action} rules: " + " | ".join(problems))


def describe(diff: RulesDiff) -> list[str]:
    """One line per rule (added, deleted, kept), then the totals."""
    lines = [f"added    {rule.tag}: {rule.value}" for rule in diff.added]
    lines += [f"deleted  {rule.tag} (id {rule.id}): {rule.value}" for rule in diff.deleted]
    lines += [f"kept     {rule.tag} (id {rule.id}): {rule.value}" for rule in diff.kept]
    lines.append(f"{len(diff.added)} added, {len(diff.deleted)} deleted, {len(diff.kept)} kept")
    return lines


async def _sync_from_settings(settings: Settings, dry_run: bool) -> RulesDiff:
    desired = build_rules(load_rules(settings.x_rules_path), x_limits(settings))
    client = api_client(settings)
    try:
        return await sync_rules(client, desired, dry_run=dry_run)
    finally:
        await client.session.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agents.sources.x_rules",
        description="Manage the X API v2 filtered-stream rules built from the rules file "
        "(X_RULES_PATH, default config/stream_rules.toml): one rule per topic, tagged with the topic. "
        "Reads X_BEARER_TOKEN, X_API_BASE_URL, X_ACCESS_LEVEL (and X_MAX_RULES, X_MAX_RULE_LENGTH) "
        "from the environment or .env.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser(
        "sync",
        help="make X's rules match the rules file",
        description="Fetch the rules X has, delete those not in the rules file (value or tag "
        "changed, topic removed), add the missing ones, and print the changes. The worker does "
        "the same at start-up when SOURCE=x.",
    )
    sync.add_argument("--dry-run", action="store_true", help="print the changes without making them")
    args = parser.parse_args(argv)

    try:
        diff = asyncio.run(_sync_from_settings(get_settings(), args.dry_run))
    except (ValueError, TweepyException, aiohttp.ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(describe(diff)))
    if args.dry_run:
        print("dry run: nothing was changed on X")
    return 0


if __name__ == "__main__":
    sys.exit(main())
