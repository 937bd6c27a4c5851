"""The `lake` command run in the test's own process (a traceback fails the test), reading no
setting from the environment: --lake-root alone says where the lake is."""
from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from pipeline.lake_cli import main


def lake_cli(capsys, lake: Path | str, *argv: str, settings: Settings | None = None) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `lake --lake-root LAKE ARGV...`."""
    code = main(["--lake-root", str(lake), *argv], settings=settings or Settings(_env_file=None))
    out, err = capsys.readouterr()
    return code, out, err
