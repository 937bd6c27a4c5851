"""Seek stream partitions before resuming them after table recovery (faust-streaming 0.15.3):
Faust resumed them first, and records fetched during the seek's await were cleared from the
stream queues and lost (faust-streaming#596). The race and what the patch measured:
docs/architecture.md, "Faust patches".
"""
from __future__ import annotations

import asyncio

from faust.tables.recovery import Recovery

from app.faust_patches.pinned import install_for_pinned_faust

FAUST_ON_RECOVERY_COMPLETED = Recovery.on_recovery_completed


async def _on_recovery_completed_seek_first(self, generation_id: int = 0) -> None:
    """faust 0.15.3's `Recovery.on_recovery_completed`, with the stream partitions resumed only
    after the seek, right before the queues are cleared and the flow resumed (no await between).
    """
    app = self.app
    consumer = app.consumer
    self.log.info("Restore complete!")
    await app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callback_coros = [
        asyncio.ensure_future(
            table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
        )
        for table in self.tables.values()
    ]
    if callback_coros:
        await asyncio.wait(callback_coros)
    assignment = consumer.assignment()
    if app.consumer_generation_id != generation_id:
        self.log.warning(
            f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}"
        )
        return
    if assignment:
        # The stream partitions are still paused here: nothing of them reaches the agents yet.
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
    # From here to resume_flow() nothing awaits: records fetched for the resumed partitions can
    # only reach the queues after flow_control.resume() has cleared them.
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    self.completed.set()
    self.log.dev("Resume stream partitions")
    app.flow_control.resume()
    consumer.resume_flow()
    await app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")


def seek_streams_before_resuming_them() -> bool:
    """Install the recovery patch once; return whether this Faust version is patched."""
    return install_for_pinned_faust(Recovery, "on_recovery_completed", _on_recovery_completed_seek_first,
                                    "table recovery")
