"""Debian's headless chromium (`make chromium` installs it), as the dashboard's browser test and
benchmark drive it through Playwright: browsers cannot be downloaded here, so Playwright is
pointed at that binary."""
from __future__ import annotations

import os
import shutil

# No sandbox (we run as root in a container), no GPU, nothing fetched in the background.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


class ChromiumMissing(RuntimeError):
    """No chromium binary on PATH and no CHROMIUM."""


def chromium_binary() -> str:
    """CHROMIUM, else `chromium` on PATH."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not found:
        raise ChromiumMissing("no chromium: run `make chromium` (apt-get install chromium) or set CHROMIUM")
    return found


def launch(playwright):
    """A headless chromium browser of this Playwright instance."""
    return playwright.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
