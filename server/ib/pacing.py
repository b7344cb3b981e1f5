"""Outgoing message pacing: IB allows 50 client messages per second, all kinds counted together.

TWS answers a faster client with error 100 and drops the message (an order so dropped never
exists at IB), and disconnects persistent offenders. Two limiters, one rate:

- `Pacer`, on the event loop: requests wait their turn there, first come first served, where a
  run's deadline or a cancel can still withdraw them.
- `WriteSpacing`, on the session's writer thread, just before the bytes go to the socket: what
  counts at IB is when messages arrive, and a request that left the Pacer on time can still be
  held up on its way (the writer thread waiting for the GIL, a slow write before it) and then
  leave together with the next second's. Every message written counts here, whatever sent it,
  and messages leave evenly spaced (see there why).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# How much sooner than a full interval after the previous message the next may go when the
# previous left late. A sleep overshoots (the event loop waits in whole milliseconds, the OS
# timer adds its own), and spacing from when each message really left added that overshoot to
# every interval: 1,000 orders at 45 a second took 7% longer than 1,000/45 s.
TOLERANCE = 0.002


class Timetable:
    """Slots 1/`per_second` apart, each counted from the previous slot, so the overshoot of a
    wake-up is not carried into every later interval. One message may still follow another by
    no less than an interval minus `tolerance`, by when they really left (`left`): after a
    message held up on its way, or a pause, the timetable restarts from there and never catches
    up in a burst. Any one-second window then holds at most per_second × (1 + tolerance) + 1
    messages: 46 at the default 45, 50 at the highest setting (49); IB allows 50."""

    def __init__(self, per_second: int, tolerance: float = TOLERANCE) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        self.interval = 1.0 / per_second
        self._tolerance = tolerance
        self._slot: float | None = None
        self._left: float | None = None

    def slot(self, now: float) -> float:
        """When the next message may go (now, or later): taken, the one after counts from it."""
        slot = now
        if self._slot is not None and self._left is not None:
            slot = max(now, self._slot + self.interval, self._left + self.interval - self._tolerance)
        self._slot = slot
        return slot

    def left(self, at: float) -> None:
        """The message of the last slot left at `at`."""
        self._left = at


class Pacer:
    """Turns on a Timetable, first come first served, evenly spaced for the reason given at
    WriteSpacing."""

    def __init__(self, per_second: int) -> None:
        self._timetable = Timetable(per_second)
        self._lock = asyncio.Lock()
        # Turns taken and the seconds they waited, queue included (the metrics read them).
        self.turns = 0
        self.waited_seconds = 0.0

    async def acquire(self) -> None:
        asked_at = time.monotonic()
        async with self._lock:
            now = time.monotonic()
            slot = self._timetable.slot(now)
            if slot > now:
                await asyncio.sleep(slot - now)
                now = time.monotonic()
            self._timetable.left(now)
        self.turns += 1
        self.waited_seconds += now - asked_at


class WriteSpacing:
    """Writes on a Timetable. Thread-side: `before_write` blocks the (writer) thread until the
    next write may go.

    Evenly spaced rather than in bursts: IB counts messages by when it reads them, and reading
    lags by a few milliseconds here and there. A burst at the end of one second followed by the
    next second's burst can then land in one of IB's windows (it did: error 100, orders never
    created, in 3 of 7 runs of 1,000 orders at 45 per second against IB's 50). Spaced evenly, a
    lag of d seconds adds at most per_second * d messages to any window: at 45 against 50,
    about 100 ms of lag is absorbed."""

    def __init__(
        self, per_second: int, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._timetable = Timetable(per_second)
        self._clock = clock
        self._sleep = sleep
        self.waits = 0  # writes that had to wait for their turn

    def before_write(self) -> None:
        now = self._clock()
        slot = self._timetable.slot(now)
        if slot > now:
            self.waits += 1
            self._sleep(slot - now)
            now = self._clock()
        self._timetable.left(now)
