"""IB order ids of one endpoint and client id: handing them out, and which went out on which socket.

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


class OrdersWritten:
    """Which order ids had their placeOrder written whole, and on which socket (connection).

    A write that succeeded is not one TWS read: a socket that closes takes the bytes TWS had not
    read with it, and nothing tells the client. Such an order is at IB only if IB reports it on
    a later socket. Orders are written in id order, so a high-water mark per socket says it all;
    only the latest socket's and the one before it are kept."""

    def __init__(self) -> None:
        self._latest = (0, 0)  # (connection, highest order id written on it)
        self._before_latest = 0  # highest order id written on any connection before that one

    def note(self, connection: int, order_id: int) -> None:
        latest_connection, latest_id = self._latest
        if connection != latest_connection:
            self._before_latest = max(self._before_latest, latest_id)
            latest_id = 0
        self._latest = (connection, max(latest_id, order_id))

    def highest_before(self, connection: int) -> int:
        """The highest order id written on a socket before `connection` (0 if none)."""
        latest_connection, latest_id = self._latest
        if latest_connection < connection:
            return max(self._before_latest, latest_id)
        return self._before_latest
