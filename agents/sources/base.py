"""One way to plug in a live source: a `Source` subclass whose `run(publish)` hands each raw
message's bytes to `publish` until the worker stops, registered under the name SOURCE selects.
The ingest task (agents/ingest.py) looks the name up here; a new source is a module with one
registered class. Archives are not live sources: the backfill reads them (agents/sources/archive.py).
"""
from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from typing import Awaitable, Callable, ClassVar

from config.settings import Settings

log = logging.getLogger(__name__)

Publish = Callable[[bytes], Awaitable[None]]
# The modules whose sources register themselves here, imported on the first lookup.
BUILT_IN = ("agents.sources.synthetic", "agents.sources.x_stream")


class Source(ABC):
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> "Source":
        """The source as the settings configure it; wrong settings fail here, at start-up."""

    @abstractmethod
    async def run(self, publish: Publish) -> None:
        """Publish raw messages until done or cancelled; errors of its own it logs and survives."""


SOURCES: dict[str, Callable[[Settings], Source]] = {}


def register(name: str):
    """Class decorator: the source SOURCE=`name` builds from the settings (its `from_settings`)."""

    def add(cls: type[Source]) -> type[Source]:
        cls.name = name
        SOURCES[name] = cls.from_settings
        return cls

    return add


@register("none")
class NoSource(Source):
    """Nothing built in: backfills, replays or other producers feed the raw topic."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "NoSource":
        return cls()

    async def run(self, publish: Publish) -> None:
        log.info("SOURCE=none: no built-in source; the raw topic is fed by backfills or other producers")


def source_for(settings: Settings) -> Source:
    """The source SOURCE names, built from the settings."""
    for module in BUILT_IN:
        importlib.import_module(module)
    try:
        build = SOURCES[settings.source]
    except KeyError:
        raise ValueError(f"SOURCE={settings.source!r} is not a source; known: {', '.join(sorted(SOURCES))}") from None
    return build(settings)
