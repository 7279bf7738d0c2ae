"""How many probes run at once: at most so many in all, and at most so many per target (its
connection pool's size). One gate for both, taken without a coroutine while there is room."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Mapping


class ProbeSlots:
    """Two asyncio.Semaphores per probe (in flight, then the target's) cost two context
    managers, a coroutine and a scan of each semaphore's waiters on every probe; while there is
    room, `try_take` is two integer checks. Waiters are served first come, first served, a
    waiter for a full target never holding up another target's probes."""

    def __init__(self, total: int, per_target: Mapping[str, int] | None = None) -> None:
        self._free = total
        # A target not named here is bounded by the total only.
        self._target_free = dict(per_target or {})
        self._waiting: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._order = itertools.count()

    def try_take(self, target: str) -> bool:
        """A slot now, if there is one and nobody is waiting for it (first come, first served)."""
        if self._free <= 0 or self._waiting:
            return False
        left = self._target_free.get(target)
        if left is not None:
            if left <= 0:
                return False
            self._target_free[target] = left - 1
        self._free -= 1
        return True

    async def take(self, target: str) -> None:
        """A slot, waiting for one if need be."""
        if self.try_take(target):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(target, deque()).append((next(self._order), waiter))
        self._grant()  # room may be free for this target while others wait for theirs
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give(target)  # granted, then cancelled before it could use the slot
            raise

    def give(self, target: str) -> None:
        """A slot `take` (or a true `try_take`) gave, given back."""
        self._free += 1
        left = self._target_free.get(target)
        if left is not None:
            self._target_free[target] = left + 1
        if self._waiting:
            self._grant()

    def _grant(self) -> None:
        """Hand free slots to waiters, the longest-waiting first among targets with room."""
        while self._free > 0 and self._waiting:
            first: deque[tuple[int, asyncio.Future[None]]] | None = None
            target = ""
            for name, queue in list(self._waiting.items()):
                while queue and queue[0][1].done():  # cancelled while waiting
                    queue.popleft()
                if not queue:
                    del self._waiting[name]
                    continue
                has_room = self._target_free.get(name, 1) > 0
                if has_room and (first is None or queue[0][0] < first[0][0]):
                    first, target = queue, name
            if first is None:
                return
            _, waiter = first.popleft()
            if not first:
                del self._waiting[target]
            self._free -= 1
            left = self._target_free.get(target)
            if left is not None:
                self._target_free[target] = left - 1
            waiter.set_result(None)
