"""The Faust patches: stream partitions are resumed only after the seek, and nothing else runs
between resuming them and clearing the stream queues (faust-streaming issue #596); the consumer
thread fetches for a frozen copy of the active partitions, never for an empty set."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from app.tansu_compat import (
    _getmany_of_a_snapshot,
    _on_recovery_completed_seek_first,
    fetch_only_active_partitions,
    seek_streams_before_resuming_them,
)


def fake_recovery(events: list[str]) -> SimpleNamespace:
    async def noop(*args, **kwargs):
        return None

    async def perform_seek():
        events.append("seek started")
        await asyncio.sleep(0.01)  # a real seek is a broker round trip: the loop runs meanwhile
        events.append("seek done")

    async def wait(coro, timeout=None):
        await coro

    stream_tp, changelog_tp = ("tweets.raw", 0), ("seen_tweets-changelog", 0)
    consumer = SimpleNamespace(
        assignment=lambda: {stream_tp, changelog_tp},
        perform_seek=perform_seek,
        resume_partitions=lambda tps: events.append(f"resume partitions {sorted(tps)}"),
        resume_flow=lambda: events.append("resume flow"),
    )
    app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=1,
        conf=SimpleNamespace(broker_request_timeout=5.0),
        on_rebalance_complete=SimpleNamespace(send=noop),
        flow_control=SimpleNamespace(resume=lambda: events.append("clear queues")),
        _fetcher=SimpleNamespace(maybe_start=noop),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: None,
    )
    log = SimpleNamespace(info=lambda *a: None, dev=lambda *a: None, warning=lambda *a: None)
    return SimpleNamespace(
        app=app, log=log, tables={}, actives_for_table={}, standbys_for_table={},
        completed=asyncio.Event(), _wait=wait, _set_recovery_ended=lambda: None,
        _is_changelog_tp=lambda tp: tp == changelog_tp,
    )


def test_stream_partitions_resume_after_the_seek_and_right_before_the_queues_are_cleared():
    events: list[str] = []

    async def main():
        recovery = fake_recovery(events)
        recovery.tables = SimpleNamespace(
            values=lambda: [], on_actives_ready=lambda: None, on_standbys_ready=lambda: None
        )

        async def fetcher():  # stands for the fetcher: runs whenever the recovery awaits
            while True:
                events.append("fetcher ran")
                await asyncio.sleep(0.001)

        task = asyncio.ensure_future(fetcher())
        await asyncio.sleep(0)
        await _on_recovery_completed_seek_first(recovery, generation_id=1)
        task.cancel()

    asyncio.run(main())
    steps = [event for event in events if event != "fetcher ran"]
    assert steps == [
        "seek started", "seek done", "resume partitions [('tweets.raw', 0)]", "clear queues", "resume flow",
    ]
    resumed, flowing = events.index(steps[2]), events.index("resume flow")
    assert "fetcher ran" not in events[resumed:flowing]


def test_patch_is_installed_for_the_pinned_faust():
    from faust.tables.recovery import Recovery

    assert seek_streams_before_resuming_them()
    assert Recovery.on_recovery_completed is _on_recovery_completed_seek_first


class RecordingThread:
    """Stands for the consumer thread: keeps the set it was handed and lets the loop run, as a
    real fetch does while it waits for records."""

    def __init__(self):
        self.handed: list = []

    async def getmany(self, active_partitions, timeout):
        self.handed.append(active_partitions)
        await asyncio.sleep(0)
        return {"records for": active_partitions}


def test_the_consumer_thread_sees_a_frozen_copy_of_the_active_partitions():
    consumer = SimpleNamespace(_thread=RecordingThread())
    active = {("changelog", 0), ("changelog", 1)}

    async def main():
        fetch = asyncio.ensure_future(_getmany_of_a_snapshot(consumer, active, 1.0))
        await asyncio.sleep(0)
        active.clear()  # recovery ends: the event loop pauses the changelog partitions meanwhile
        return await fetch

    result = asyncio.run(main())
    assert consumer._thread.handed == [frozenset({("changelog", 0), ("changelog", 1)})]
    assert result == {"records for": frozenset({("changelog", 0), ("changelog", 1)})}


def test_an_empty_active_set_fetches_nothing_instead_of_everything():
    consumer = SimpleNamespace(_thread=RecordingThread())
    assert asyncio.run(_getmany_of_a_snapshot(consumer, set(), 1.0)) == {}
    assert consumer._thread.handed == []
    # None (a client-only app) still means every partition, as in Faust.
    asyncio.run(_getmany_of_a_snapshot(consumer, None, 1.0))
    assert consumer._thread.handed == [None]


def test_snapshot_patch_is_installed_for_the_pinned_faust():
    from faust.transport.consumer import ThreadDelegateConsumer

    assert fetch_only_active_partitions()
    assert ThreadDelegateConsumer._getmany is _getmany_of_a_snapshot
