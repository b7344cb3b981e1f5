"""IB order id allocation for one endpoint and client id.

IB wants every new order id above every id it has seen from this client id, and a Gateway
restart has been seen to roll nextValidId back. So the next id only ever moves up: it is the
maximum of IB's nextValidId, the highest id the database holds + 1, and what was handed out.
"""

from __future__ import annotations

import threading


class OrderIdAllocator:
    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def raise_floor(self, candidate: int) -> None:
        """Never lowers the next id: a smaller candidate (a rolled-back nextValidId) is ignored."""
        with self._lock:
            self._next = max(self._next, candidate)

    def allocate(self, count: int) -> list[int]:
        with self._lock:
            if self._next <= 0:
                raise RuntimeError("no order id floor yet: IB has not sent nextValidId")
            first = self._next
            self._next += count
            return list(range(first, first + count))

    @property
    def next_id(self) -> int:
        return self._next
