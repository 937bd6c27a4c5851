"""Patches to faust-streaming 0.15.3, one module per fix, each guarded by the Faust version it was
written for and installed when a worker starts (`install_worker_patches`), not on import."""
from __future__ import annotations

from app.faust_patches.active_partitions import fetch_only_active_partitions
from app.faust_patches.inline_delivery import deliver_without_tasks
from app.faust_patches.recovery_seek import seek_streams_before_resuming_them

__all__ = ["install_worker_patches", "fetch_only_active_partitions", "deliver_without_tasks",
           "seek_streams_before_resuming_them"]


def install_worker_patches() -> dict[str, bool]:
    """Install every patch; return which ones this Faust version took."""
    return {
        # Two Faust races that lose stream records after table recovery.
        "recovery_seek": seek_streams_before_resuming_them(),
        "active_partitions": fetch_only_active_partitions(),
        # Faust's per-message delivery costs four asyncio tasks: skipped when a delivery never waits.
        "inline_delivery": deliver_without_tasks(),
    }
