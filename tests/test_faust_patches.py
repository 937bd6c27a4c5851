"""The Faust patches: stream partitions are resumed only after the seek, and nothing else runs
between resuming them and clearing the stream queues (faust-streaming issue #596); the consumer
thread fetches for a frozen copy of the active partitions, never for an empty set."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from app.faust_patches import install_worker_patches
from app.faust_patches.active_partitions import FAUST_GETMANY, _getmany_of_a_snapshot, fetch_only_active_partitions
from app.faust_patches.recovery_seek import (
    FAUST_ON_RECOVERY_COMPLETED,
    _on_recovery_completed_seek_first,
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


def recovery_events(on_recovery_completed) -> list[str]:
    """What happens, in order, when `on_recovery_completed` runs beside a busy fetcher."""
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
        await on_recovery_completed(recovery, generation_id=1)
        task.cancel()

    asyncio.run(main())
    return events


def test_stream_partitions_resume_after_the_seek_and_right_before_the_queues_are_cleared():
    events = recovery_events(_on_recovery_completed_seek_first)
    steps = [event for event in events if event != "fetcher ran"]
    assert steps == [
        "seek started", "seek done", "resume partitions [('tweets.raw', 0)]", "clear queues", "resume flow",
    ]
    resumed, flowing = events.index(steps[2]), events.index("resume flow")
    assert "fetcher ran" not in events[resumed:flowing]


def test_without_the_patch_the_fetcher_runs_between_resuming_and_clearing():
    """Faust's own method: stream partitions resumed before the seek, so fetched records reach
    the queues before they are cleared (the lost records the patch prevents)."""
    events = recovery_events(FAUST_ON_RECOVERY_COMPLETED)
    resumed = next(i for i, event in enumerate(events) if event.startswith("resume partitions"))
    cleared = events.index("clear queues")
    assert resumed < events.index("seek started")
    assert "fetcher ran" in events[resumed:cleared]


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


def handed_while_recovery_ends(getmany) -> list:
    """What the consumer thread holds when the live set is cleared during its fetch."""
    consumer = SimpleNamespace(_thread=RecordingThread())
    active = {("changelog", 0), ("changelog", 1)}

    async def main():
        fetch = asyncio.ensure_future(getmany(consumer, active, 1.0))
        await asyncio.sleep(0)
        active.clear()  # recovery ends: the event loop pauses the changelog partitions meanwhile
        return await fetch

    asyncio.run(main())
    return consumer._thread.handed


def test_the_consumer_thread_sees_a_frozen_copy_of_the_active_partitions():
    assert handed_while_recovery_ends(_getmany_of_a_snapshot) == [frozenset({("changelog", 0), ("changelog", 1)})]


def test_without_the_patch_the_thread_sees_the_live_set_emptied_under_it():
    assert handed_while_recovery_ends(FAUST_GETMANY) == [set()]


@pytest.mark.parametrize("getmany, fetches", [(_getmany_of_a_snapshot, []), (FAUST_GETMANY, [set()])],
                         ids=["patched", "faust"])
def test_an_empty_active_set_fetches_nothing_instead_of_everything(getmany, fetches):
    consumer = SimpleNamespace(_thread=RecordingThread())
    asyncio.run(getmany(consumer, set(), 1.0))
    # An empty set reaches aiokafka, which reads it as "every partition", only without the patch.
    assert consumer._thread.handed == fetches
    # None (a client-only app) still means every partition, as in Faust.
    asyncio.run(getmany(consumer, None, 1.0))
    assert consumer._thread.handed == [*fetches, None]


def test_snapshot_patch_is_installed_for_the_pinned_faust():
    from faust.transport.consumer import ThreadDelegateConsumer

    assert fetch_only_active_partitions()
    assert ThreadDelegateConsumer._getmany is _getmany_of_a_snapshot


def test_the_worker_installs_every_patch_when_it_initialises():
    """Building the app installs nothing; the worker's init signal installs them all."""
    from faust.tables.recovery import Recovery
    from faust.transport.consumer import Consumer, ThreadDelegateConsumer

    from app.faust_app import create_app
    from app.faust_patches.inline_delivery import FAUST_DRAIN_MESSAGES, _drain_messages
    from config.settings import Settings

    originals = (Recovery.on_recovery_completed, ThreadDelegateConsumer._getmany, Consumer._drain_messages)
    Recovery.on_recovery_completed = FAUST_ON_RECOVERY_COMPLETED
    ThreadDelegateConsumer._getmany = FAUST_GETMANY
    Consumer._drain_messages = FAUST_DRAIN_MESSAGES
    try:
        app = create_app(Settings(_env_file=None))
        assert (ThreadDelegateConsumer._getmany, Consumer._drain_messages) == (FAUST_GETMANY, FAUST_DRAIN_MESSAGES)
        app.on_worker_init.send()
        assert Recovery.on_recovery_completed is _on_recovery_completed_seek_first
        assert ThreadDelegateConsumer._getmany is _getmany_of_a_snapshot
        assert Consumer._drain_messages is _drain_messages
        assert install_worker_patches() == {"recovery_seek": True, "active_partitions": True, "inline_delivery": True}
    finally:
        Recovery.on_recovery_completed, ThreadDelegateConsumer._getmany, Consumer._drain_messages = originals
