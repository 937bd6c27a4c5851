"""What X allows a project at each access level (X_ACCESS_LEVEL), from X's filtered-stream docs
of 2026: how many rules, how long each, how many connections. X_MAX_RULES and X_MAX_RULE_LENGTH
override the level's numbers (a contract with other limits)."""
from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings


@dataclass(frozen=True)
class XLimits:
    rules: int
    rule_length: int
    connections: int


# Pay-per-use (X's default plan since 2026): 1,000 rules of 1,024 characters, one connection.
# Basic as this project first met it; Enterprise adds redundant connections and longer rules.
ACCESS_LEVELS: dict[str, XLimits] = {
    "pay-per-use": XLimits(rules=1000, rule_length=1024, connections=1),
    "basic": XLimits(rules=25, rule_length=512, connections=1),
    "pro": XLimits(rules=1000, rule_length=1024, connections=1),
    "enterprise": XLimits(rules=25_000, rule_length=2048, connections=2),
}


def x_limits(settings: Settings) -> XLimits:
    level = ACCESS_LEVELS[settings.x_access_level]
    return XLimits(
        rules=settings.x_max_rules or level.rules,
        rule_length=settings.x_max_rule_length or level.rule_length,
        connections=level.connections,
    )
