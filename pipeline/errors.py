"""Why a run of the pipeline (a backfill, a replay) stopped."""
from __future__ import annotations


class BackfillError(Exception):
    """The backfill cannot go on; the message says why and what was seen."""
