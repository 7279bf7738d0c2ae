"""ProbeSlots: the in-flight bound and each target's, as one gate."""

from __future__ import annotations

import asyncio

from monitor.probing.slots import ProbeSlots


async def test_slots_bound_the_total_and_each_target() -> None:
    slots = ProbeSlots(3, {"api": 2})
    assert slots.try_take("api")
    assert slots.try_take("api")
    assert not slots.try_take("api")  # the target's pool is full
    assert slots.try_take("other")  # unnamed: bounded by the total only
    assert not slots.try_take("other")  # the total is reached
    slots.give("api")
    assert slots.try_take("api")
    assert not slots.try_take("other")


async def test_a_slot_given_back_goes_to_the_longest_waiting() -> None:
    slots = ProbeSlots(1)
    assert slots.try_take("api")
    order: list[str] = []

    async def wait(name: str) -> None:
        await slots.take("api")
        order.append(name)

    first = asyncio.create_task(wait("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(wait("second"))
    await asyncio.sleep(0)
    assert not slots.try_take("api")  # someone waits: no jumping the queue
    slots.give("api")
    await asyncio.sleep(0)
    assert order == ["first"]
    slots.give("api")
    await asyncio.gather(first, second)
    assert order == ["first", "second"]


async def test_a_waiter_for_a_full_target_does_not_hold_up_another_target() -> None:
    slots = ProbeSlots(10, {"slow": 1, "fast": 5})
    assert slots.try_take("slow")
    blocked = asyncio.create_task(slots.take("slow"))
    await asyncio.sleep(0)
    # try_take defers to the waiter; take serves "fast" at once, the slow one still waiting.
    await asyncio.wait_for(slots.take("fast"), timeout=1)
    assert not blocked.done()
    slots.give("slow")
    await asyncio.wait_for(blocked, timeout=1)


async def test_a_cancelled_waiter_leaves_its_slot_to_the_next() -> None:
    slots = ProbeSlots(1)
    assert slots.try_take("api")
    cancelled = asyncio.create_task(slots.take("api"))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(slots.take("api"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    slots.give("api")
    await asyncio.wait_for(waiting, timeout=1)
    assert not slots.try_take("api")  # the one slot is the waiter's


async def test_a_slot_granted_to_a_task_cancelled_before_it_ran_is_given_back() -> None:
    slots = ProbeSlots(1)
    assert slots.try_take("api")
    granted = asyncio.create_task(slots.take("api"))
    await asyncio.sleep(0)
    slots.give("api")  # granted: its future is done, the task not yet resumed
    granted.cancel()
    await asyncio.gather(granted, return_exceptions=True)
    assert granted.cancelled()
    assert slots.try_take("api")  # not lost with the task
