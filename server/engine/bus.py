"""Fan-out of committed events to the watchers of a run.

Each watcher has its own bounded queue. A watcher that cannot keep up is marked overflowed and
dropped from the bus instead of slowing the publisher (and so every other watcher) down; its
stream then ends with a status that tells it to resume from its last sequence.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from execgw.server.engine.stored_event import StoredEvent

log = logging.getLogger(__name__)


class Subscription:
    def __init__(self, run_id: str, capacity: int) -> None:
        self.run_id = run_id
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(capacity)
        self.overflowed = False
        self.closed = False


class EventBus:
    """Loop-only: publish and subscribe are called on the event loop."""

    # Well above what one write transaction publishes (a batch of up to 2,000 IB reports, reports.BATCH).
    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._watchers: dict[str, set[Subscription]] = defaultdict(set)
        self._observers: list[Callable[[list[StoredEvent]], None]] = []

    def observe(self, observer: Callable[[list[StoredEvent]], None]) -> None:
        """`observer` sees every committed event of every run, in commit order, before any watcher
        (the log's journal, the metrics). It runs on the loop and must not block; an exception in
        it is logged and never keeps an event from a watcher."""
        self._observers.append(observer)

    def subscribe(self, run_id: str) -> Subscription:
        subscription = Subscription(run_id, self._capacity)
        self._watchers[run_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        watchers = self._watchers.get(subscription.run_id)
        if watchers is not None:
            watchers.discard(subscription)
            if not watchers:
                del self._watchers[subscription.run_id]

    def publish(self, events: list[StoredEvent]) -> None:
        for observer in self._observers:
            try:
                observer(events)
            except Exception:
                log.exception("an observer of committed events failed")
        self.deliver(events)

    def close_all(self) -> None:
        """At shutdown: every watcher wakes up and ends its stream."""
        for watchers in list(self._watchers.values()):
            for subscription in list(watchers):
                subscription.closed = True
                self.unsubscribe(subscription)
                self._wake(subscription)

    def watcher_count(self, run_id: str) -> int:
        return len(self._watchers.get(run_id, ()))

    @staticmethod
    def _wake(subscription: Subscription) -> None:
        # A full queue has no room for the wake-up; the flags are read before waiting again.
        try:
            subscription.queue.put_nowait(None)
        except asyncio.QueueFull:
            pass

    def deliver(self, events: list[StoredEvent]) -> None:
        """To the runs' watchers only, not to the observers: events another gateway committed,
        read here from the database (engine/tail.py). The journal and the metrics are the owning
        gateway's; counted here as well, every order would be counted twice."""
        for event in events:
            for subscription in list(self._watchers.get(event.run_id, ())):
                try:
                    subscription.queue.put_nowait(event)
                except asyncio.QueueFull:
                    subscription.overflowed = True
                    self.unsubscribe(subscription)
                    self._wake(subscription)
