"""Where the tweet logic's config files live: config/ of the checkout this package runs from."""
from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def config_file(name: str) -> Path:
    return CONFIG_DIR / name
