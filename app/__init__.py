"""tweetlake's Faust app package: `faust -A app worker` reads `app.app`.

The Faust app is built on first access of `app.app`, so processes that need only settings or
models (the broker runner, the Spark jobs, the `lake` tools) do not build one.
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'app' has no attribute {name!r}")
    from app.faust_app import app

    return app
