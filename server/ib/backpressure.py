"""How many of IB's reports may wait decoded before ibapi's decoding thread waits too.

In a flood (a reconnect's replay of the day, an order filled in thousands of pieces) ibapi
decodes several times faster than the writer stores, and every report waited in the engine's
inbox as decoded objects: 6,900-9,000 of them at the peak of a 5,000-execution flood, some
8 MiB, which the process kept as resident memory afterwards (the soak's growth). With a bound,
the decoding thread waits while `limit` reports are decoded and not yet applied to the books;
what IB sent meanwhile waits as the socket reader's raw message bytes, about half the size,
and is decoded as the writer catches up. Nothing is dropped or reordered.

The socket itself is still read as fast as it arrives: TWS never sees a slow reader.

It never waits:
- while the database is down (`enabled` false): the engine's own rule then holds reports up to a
  bound and drops the rest for reconciliation, and IB's errors and link notices must keep coming;
- once the connection is gone (`connected()` false): what is queued is decoded at full speed, so
  that the session hears of the disconnect as soon as it does without a bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Backpressure"]

RECHECK_SECONDS = 0.05  # a waiting decoder looks again this often, should a wake-up be missed


class Backpressure:
    def __init__(self, limit: int, waiting: Callable[[], int]) -> None:
        """`waiting()`: reports handed on and not yet applied (read from the decoding thread: a
        length, which CPython reads whole)."""
        self.limit = limit
        self._waiting = waiting
        self._room = threading.Condition()
        self._waiters = 0
        self.enabled = True
        self.waits = 0  # times a decoder had to wait (read by the tests)

    def wait_for_room(self, connected: Callable[[], bool], also_waiting: Callable[[], int] = lambda: 0) -> None:
        """On the decoding thread, before it hands on a report: returns once fewer than `limit`
        reports wait (counting `also_waiting`, those decoded and not yet on the loop)."""
        if not self._full(also_waiting):
            return
        with self._room:
            self._waiters += 1
            self.waits += 1
            try:
                while self._full(also_waiting) and connected():
                    self._room.wait(RECHECK_SECONDS)
            finally:
                self._waiters -= 1

    def _full(self, also_waiting: Callable[[], int]) -> bool:
        return self.enabled and self._waiting() + also_waiting() >= self.limit

    def room_made(self) -> None:
        """On the loop, after reports were applied (or dropped): wakes a waiting decoder."""
        if self._waiters:
            with self._room:
                self._room.notify_all()

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        with self._room:
            self._room.notify_all()
