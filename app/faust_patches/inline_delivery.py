"""Deliver fetched messages to the agents without four asyncio tasks per message (faust-streaming
0.15.3) wherever the delivery never has to wait (`deliver`). Why, and the CPU it saved:
docs/architecture.md, "Faust patches"; docs/benchmark-history.md, change 8.
"""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine, Generator

from faust.transport.consumer import Consumer

from app.faust_patches.pinned import install_for_pinned_faust

FAUST_DRAIN_MESSAGES = Consumer._drain_messages


class _Remainder:
    """Awaitable that carries on a coroutine already run by hand up to its first wait: the task
    awaiting this passes every wake-up, value and exception through to it."""

    def __init__(self, coro: Coroutine, awaiting: Any):
        self._coro = coro
        self._awaiting = awaiting

    def __await__(self) -> Generator[Any, Any, Any]:
        awaiting = self._awaiting
        while True:
            try:
                sent = yield awaiting
            except BaseException as exc:  # CancelledError included: the coroutine sees it
                try:
                    awaiting = self._coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    awaiting = self._coro.send(sent)
                except StopIteration as done:
                    return done.value


async def deliver(service, coro: Coroutine, suspend_flow) -> None:
    """`await service.wait_first(coro, suspend_flow.wait())`, without the tasks when `coro`
    finishes before its first wait and neither the suspension nor the service's stop is signalled.

    `coro` is run by hand up to its first wait: finished there, it did what the task would have
    done, minus the four tasks (the callback, the suspend signal, the service's stopped and crashed
    signals); if it has to wait (a full queue, the producer's buffer, suspended flow control), the
    rest runs under Faust's `wait_first`, which a rebalance can interrupt. When a signal is already
    set, Faust's own path runs from the start.
    """
    if suspend_flow.is_set() or service._stopped.is_set() or service._crashed.is_set():
        await service.wait_first(coro, suspend_flow.wait())
        return
    try:
        awaiting = coro.send(None)
    except StopIteration:
        return
    await service.wait_first(_Remainder(coro, awaiting), suspend_flow.wait())


async def _drain_messages(self, fetcher) -> None:  # pragma: no cover - Faust's loop, one line changed
    """faust 0.15.3's `Consumer._drain_messages`, with only its delivery line changed (`deliver`)."""
    from faust.transport.consumer import CONSUMER_FETCHING

    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    suspend_flow = self.suspend_flow

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        # Faust: await self.wait_first(callback(message), self.suspend_flow.wait())
                        await deliver(self, callback(message), suspend_flow)
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


def deliver_without_tasks() -> bool:
    """Install the delivery patch once; return whether this Faust version is patched."""
    return install_for_pinned_faust(Consumer, "_drain_messages", _drain_messages, "message delivery")
