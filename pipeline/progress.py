"""Progress of long work (backfills, replays) on stderr."""
from __future__ import annotations

import sys
import time

PROGRESS_EVERY = 5.0


class Progress:
    """A status line on stderr: rewritten in place on a terminal, printed every few seconds in a log."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._shown_at = 0.0

    def show(self, text: str, *, permanent: bool = False) -> None:
        """Show `text` unless a status was shown a moment ago; a permanent line is always shown
        and stays (the next status starts below it)."""
        now = time.monotonic()
        if not permanent and now - self._shown_at < (0.5 if self.tty else PROGRESS_EVERY):
            return
        self._shown_at = now
        if self.tty:
            sys.stderr.write(f"\r\033[K{text}" + ("\n" if permanent else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()
