"""Our books: the store's transactions, each published to watchers only after it committed, and
whoever waits for a change in them woken."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from execgw.server.engine.bus import EventBus
from execgw.server.engine.recorder import Recorder
from execgw.server.engine.store import Store
from execgw.server.engine.stored_event import StoredEvent

T = TypeVar("T")


class Books:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._changed = asyncio.Condition()

    async def commit(self, work: Callable[[Recorder], T]) -> T:
        """One transaction; its events go to watchers after the commit; waiters re-check."""
        result, events = await self.store.write(work)
        await self.committed(events)
        return result

    async def committed(self, events: list[StoredEvent]) -> None:
        """Hands events that are in the database to watchers and wakes whoever waits."""
        self.bus.publish(events)
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], Awaitable[bool]], timeout: float) -> bool:
        """True once `predicate` holds (re-checked after every commit, and twice a second), False
        if `timeout` seconds passed first."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            if await predicate():
                return True
            remaining = end - loop.time()
            if remaining <= 0:
                return False
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
                except TimeoutError:
                    pass
