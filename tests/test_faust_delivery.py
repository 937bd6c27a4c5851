"""Message delivery without tasks: a delivery that never waits runs inline; one that waits carries
on under Faust's own `wait_first`, values and errors passed through, and a flow suspension still
interrupts it (what the tasks were for)."""
from __future__ import annotations

import asyncio

import mode
from mode.utils.locks import Event

from app.faust_patches.inline_delivery import _drain_messages, deliver, deliver_without_tasks


class CountingService(mode.Service):
    """A real mode Service that counts the calls of its `wait_first`."""

    def __init__(self):
        super().__init__()
        self.wait_first_calls = 0

    async def wait_first(self, *coros, timeout=None):
        self.wait_first_calls += 1
        return await super().wait_first(*coros, timeout=timeout)


def test_a_delivery_that_never_waits_runs_inline_without_tasks():
    events: list[str] = []

    async def callback():
        events.append("delivered")

    async def main():
        service = CountingService()
        tasks_before = len(asyncio.all_tasks())
        await deliver(service, callback(), Event())
        return service.wait_first_calls, len(asyncio.all_tasks()) - tasks_before

    calls, new_tasks = asyncio.run(main())
    assert events == ["delivered"]
    assert (calls, new_tasks) == (0, 0)


def test_a_delivery_that_waits_carries_on_with_what_it_waited_for_and_its_errors():
    events: list[str] = []

    async def main():
        service = CountingService()
        loop = asyncio.get_running_loop()
        room, failing = loop.create_future(), loop.create_future()

        async def callback():
            events.append("queue full")
            events.append(await room)  # a full stream queue: waits for the agent to take one
            try:
                await failing
            except ValueError as error:
                events.append(f"error seen: {error}")

        delivery = asyncio.ensure_future(deliver(service, callback(), Event()))
        await asyncio.sleep(0.01)
        assert not delivery.done() and events == ["queue full"]
        room.set_result("put")
        await asyncio.sleep(0.01)
        assert not delivery.done()
        failing.set_exception(ValueError("broker said no"))
        await asyncio.wait_for(delivery, 1)
        return service.wait_first_calls

    assert asyncio.run(main()) == 1
    assert events == ["queue full", "put", "error seen: broker said no"]


def test_a_flow_suspension_interrupts_a_waiting_delivery():
    events: list[str] = []

    async def main():
        service = CountingService()
        suspend_flow = Event()
        never = asyncio.get_running_loop().create_future()

        async def callback():
            try:
                await never
            except asyncio.CancelledError:
                events.append("delivery abandoned")
                raise

        delivery = asyncio.ensure_future(deliver(service, callback(), suspend_flow))
        await asyncio.sleep(0.01)
        suspend_flow.set()  # a rebalance
        await asyncio.wait_for(delivery, 1)

    asyncio.run(main())
    assert events == ["delivery abandoned"]


def test_with_the_flow_already_suspended_faust_path_runs_from_the_start():
    async def callback():
        return None

    async def main():
        service = CountingService()
        suspend_flow = Event()
        suspend_flow.set()
        await deliver(service, callback(), suspend_flow)
        return service.wait_first_calls

    assert asyncio.run(main()) == 1


def test_without_the_patch_every_delivery_costs_faust_wait_first_and_its_tasks():
    """Faust's own line, for comparison with the inline test above: one wait_first and its tasks
    for a delivery that never waits."""
    async def callback():
        return None

    async def main():
        service = CountingService()
        created = []
        loop = asyncio.get_running_loop()
        original_create_task = loop.create_task
        loop.create_task = lambda coro, **kw: created.append(coro) or original_create_task(coro, **kw)
        suspend_flow = Event()
        await service.wait_first(callback(), suspend_flow.wait())
        return service.wait_first_calls, len(created)

    calls, tasks = asyncio.run(main())
    assert calls == 1 and tasks >= 2


def test_patch_is_installed_for_the_pinned_faust():
    from faust.transport.consumer import Consumer

    assert deliver_without_tasks()
    assert Consumer._drain_messages is _drain_messages
