"""Database outages counted by watching the report intake's `database_ok` on the loop.

The intake says only whether the database takes writes now, not how often it stopped: a scrape
every 15 s would miss most outages. An outage lasts at least the intake's first retry delay
(200 ms: it marks the database down, sleeps, writes again), so a look every 100 ms sees each one.
A counter kept by the intake itself would be exact and make this unnecessary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

PERIOD = 0.1  # seconds between looks; below the intake's first retry delay


class OutageWatch:
    def __init__(self, period: float = PERIOD) -> None:
        self._period = period
        self.outages = 0  # transitions from ok to not ok

    async def run(self, database_ok: Callable[[], bool]) -> None:
        """Until cancelled (at shutdown)."""
        was_ok = True
        while True:
            ok = database_ok()
            if was_ok and not ok:
                self.outages += 1
            was_ok = ok
            await asyncio.sleep(self._period)
