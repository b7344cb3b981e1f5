"""Outgoing message pacing: IB allows 50 client messages per second, all kinds counted together.

TWS answers a faster client with error 100 and disconnects persistent offenders, so every
message the gateway sends goes through one sliding-window limiter per socket.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class Pacer:
    """At most `per_second` acquisitions in any one-second window."""

    def __init__(self, per_second: int) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        self._per_second = per_second
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= 1.0:
                    self._sent.popleft()
                if len(self._sent) < self._per_second:
                    self._sent.append(now)
                    return
                await asyncio.sleep(1.0 - (now - self._sent[0]))
