"""`make backfill` as a user runs it, and the check that its counts add up."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from config.settings import Settings


def backfill(*args: str, cwd: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The CLI as a user runs it, with no tweetlake setting from this environment (or a .env)."""
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.backfill", *args], cwd=cwd, env=clean | env,
        capture_output=True, text=True, timeout=600,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output (exit {result.returncode}):\n{result.stderr[-4000:]}"
    return result, json.loads(lines[-1])


def assert_adds_up(report: dict) -> None:
    decided = report["accepted"] + report["filtered"] + report["duplicates"] + report["rejected"]
    assert report["read"] == report["published"] == decided, report
