"""At most N reconcile passes at once, and a pass a watch event asked for goes before any a timer started.

Back-offs of objects created together come due together: 2,500 ModelVersions waiting for a registry version
look again within the same second, and a spec change that queued behind them waited 17 s for a slot (the
10,000-object bench's reaction p95). controller-runtime has one FIFO queue; we keep two, events first. A pass
that waits in the timed queue when an event asks for its object moves to the urgent one: it holds the object's
lock, so the event's own pass waits for it (a periodic resync's 10,000 passes held a spec change over 30 s).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable


class PassSlots:
    """A semaphore with two queues: urgent waiters (a watch event) are woken before timed ones (a timer)."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._timed: deque[asyncio.Future[None]] = deque()
        self._timed_keys: dict[Hashable, asyncio.Future[None]] = {}  # who waits in the timed queue

    def waiting(self) -> int:
        """Passes waiting for a slot."""
        return sum(not f.done() for f in (*self._urgent, *self._timed))

    async def acquire(self, urgent: bool, key: Hashable = None) -> None:
        """Take a slot, waiting in the urgent or the timed queue while none is free (`key`: whose pass, so that
        `promote` can find it)."""
        if self.free > 0 and not self._urgent and not self._timed:  # O(1): thousands may wait at once
            self.free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._timed).append(future)
        if not urgent and key is not None:
            self._timed_keys[key] = future
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # the slot was handed over as we were cancelled
                self.release()
            raise
        finally:
            if self._timed_keys.get(key) is future:
                del self._timed_keys[key]

    def promote(self, key: Hashable) -> None:
        """Move `key`'s pass from the timed queue to the end of the urgent one, if it waits there."""
        future = self._timed_keys.pop(key, None)
        if future is not None and not future.done():
            self._timed.remove(future)  # O(n), once per event that finds its object's pass waiting
            self._urgent.append(future)

    def release(self) -> None:
        """Hand the slot to the first urgent waiter, else the first timed one, else free it."""
        for queue in (self._urgent, self._timed):
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self.free += 1
