"""How the `lake` command and the dashboard print sizes, times and counts."""
from __future__ import annotations

from datetime import datetime, timezone


def iso_utc(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a `Z`; naive timestamps are UTC already (the jobs write UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
