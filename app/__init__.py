"""tweetlake's Faust app: `faust -A app worker` finds `app` here, with the agents it runs.

The app is loaded on first access, so that processes needing only settings or models (the broker
runner, the Spark sink, tools) do not build a Faust app.
"""
from __future__ import annotations

import importlib
from typing import Any

AGENT_MODULES = ("agents.ingest", "agents.normalize")


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'app' has no attribute {name!r}")
    from app.faust_app import app

    for module in AGENT_MODULES:
        importlib.import_module(module)
    globals()["app"] = app
    return app
