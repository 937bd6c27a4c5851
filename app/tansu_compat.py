"""Patches for the pinned client libraries, each small, version-guarded and explained.

1. LeaveGroup from generation 0 (aiokafka 0.14, embedded broker only).
   Tansu numbers the first group generation 0, but aiokafka sends LeaveGroup only when the
   generation is > 0. A worker stopped in generation 0 then stays group leader until its session
   expires, and a restarted worker waits for it (111 s with Faust defaults; see
   ../shared/NOTES.md). Apache Kafka starts generations at 1, so sending LeaveGroup for
   generation >= 0 changes nothing there.

2. Seek stream partitions before resuming them after table recovery (faust-streaming 0.15.3).
   `Recovery.on_recovery_completed` resumes the stream partitions, then awaits the seek to the
   committed offsets, and only then calls `app.flow_control.resume()`, which CLEARS every stream
   queue (they are `clear_on_resume` queues). With a table, the fetcher is already running (it
   read the changelog) and the consumer flow is active, so during that await it hands stream
   records to the agents' queues; the clear then throws them away. Their read offsets have moved
   past them, so they are never read again by this worker: they are not processed, never acked,
   and the committed offset stops at the first of them for good ("processes a few records per
   partition, then stalls"). This is faust-streaming issue #596, a Faust race, not a broker bug;
   Tansu makes it likely because its wrong ListOffsets LATEST ends recovery while the fetcher is
   still busy with the tail of a changelog batch, instead of idle (measured: records lost in 5
   of 8 restarts over a changelog ending in multi-record batches, 0 of 5 with this patch). The patched method does the
   same steps with the seek first: stream partitions stay paused until the seek is done, and
   resuming them, clearing the queues and resuming the flow then happen with no await in
   between, so nothing fetched can be cleared. Correct on Apache Kafka too, hence applied for the
   pinned Faust version whatever the broker.

3. Hand the consumer thread a snapshot of the active partitions (faust-streaming 0.15.3).
   Faust asks its aiokafka consumer thread for records of "the active partitions" by passing
   its live, mutable set. The event loop keeps changing that set while the thread waits for
   records: when recovery ends it pauses the changelog partitions and, until the seek above is
   done, no stream partition is active yet, so for a moment the set is EMPTY. aiokafka reads an
   empty set as "every partition": it returns the buffered stream records and moves its
   positions past them, and Faust then drops them because their partitions are not active.
   If the recovery's seek to the committed offsets comes later, it rewinds and the records are
   fetched again ~1.5 s later; if it came first, nothing seeks back, and a restarted worker says
   "Worker ready" and never sees what was waiting for it. Measured with two loops of the restart
   tests side by side: stream records handed over for an empty active set in 21 of 54 worker
   starts, lost for good in 2 of 10 test runs (aiokafka positions at the log end, Faust's read
   offsets at the committed ones); with this patch 0 of 81 and 0 of 16. A frozen copy taken on
   the event loop, and no fetch at all for an empty one, keeps the thread's view and Faust's the
   same.
"""
from __future__ import annotations

import asyncio
import logging

import aiokafka
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

log = logging.getLogger(__name__)

PATCHED_AIOKAFKA_VERSIONS = ("0.14.",)
PATCHED_FAUST_VERSIONS = ("0.15.3",)


async def _leave_group_from_generation_zero(self: GroupCoordinator) -> None:
    if self.generation >= 0 and self.member_id and self._group_instance_id is None:
        try:
            await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
        except KafkaError as error:
            log.error("LeaveGroup request failed: %s", error)
        else:
            log.info("LeaveGroup request succeeded")
    self.reset_generation()


def leave_group_from_generation_zero() -> bool:
    """Install the patch once; return whether this aiokafka version is patched."""
    if not aiokafka.__version__.startswith(PATCHED_AIOKAFKA_VERSIONS):
        log.warning("aiokafka %s not known to this patch: LeaveGroup left as is", aiokafka.__version__)
        return False
    GroupCoordinator._maybe_leave_group = _leave_group_from_generation_zero
    return True


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


async def _getmany_of_a_snapshot(self, active_partitions, timeout: float):
    """`ThreadDelegateConsumer._getmany` with the active partitions frozen before the thread
    sees them; an empty set fetches nothing instead of everything."""
    if active_partitions is not None:
        active_partitions = frozenset(active_partitions)
        if not active_partitions:
            return {}
    return await self._thread.getmany(active_partitions, timeout)


def install_for_pinned_faust(owner: type, name: str, replacement, what: str) -> bool:
    """Set `owner.name = replacement` when Faust is the version the patch was written for;
    otherwise leave Faust as it is and say so. Returns whether it was installed."""
    import faust

    if faust.__version__ not in PATCHED_FAUST_VERSIONS:
        log.warning("faust %s not known to this patch: %s left as is", faust.__version__, what)
        return False
    setattr(owner, name, replacement)
    return True


def fetch_only_active_partitions() -> bool:
    """Install the snapshot patch once; return whether this Faust version is patched."""
    from faust.transport.consumer import ThreadDelegateConsumer

    return install_for_pinned_faust(ThreadDelegateConsumer, "_getmany", _getmany_of_a_snapshot, "active partitions")


def seek_streams_before_resuming_them() -> bool:
    """Install the recovery patch once; return whether this Faust version is patched."""
    from faust.tables.recovery import Recovery

    return install_for_pinned_faust(Recovery, "on_recovery_completed", _on_recovery_completed_seek_first,
                                    "table recovery")
