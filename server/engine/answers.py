"""IB answers a request with a stream of messages and an end marker (openOrderEnd,
completedOrdersEnd, execDetailsEnd). These futures let the engine await that end, after the
messages before it are committed: the engine resolves them in arrival order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable

from execgw.server.ib import events as ib

OPEN_ORDERS = "open-orders"
COMPLETED_ORDERS = "completed-orders"
# Requests with no request id: an error with id -1 while one is outstanding may be its refusal.
OPEN_ORDER_KEYS = frozenset({OPEN_ORDERS, COMPLETED_ORDERS})


class IbAnswers:
    def __init__(self) -> None:
        self._waiting: dict[tuple[str, Hashable], list[asyncio.Future[None]]] = defaultdict(list)

    async def ask(
        self, endpoint: str, key: Hashable, send: Callable[[], Awaitable[None]], timeout: float
    ) -> None:
        """Sends a request and waits for its end marker; TimeoutError or ConnectionError if IB
        does not answer. An unanswered request means "unknown", never "nothing"."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[(endpoint, key)].append(future)
        try:
            await send()
            await asyncio.wait_for(future, timeout)
        finally:
            waiting = self._waiting.get((endpoint, key))
            if waiting is not None and future in waiting:
                waiting.remove(future)

    def resolve(self, event: ib.IbEvent) -> bool:
        """True when the event was an end marker (which then needs no further handling)."""
        if isinstance(event, ib.ExecutionsEnd):
            key: Hashable = event.req_id
        elif isinstance(event, ib.OpenOrdersEnd):
            key = OPEN_ORDERS
        elif isinstance(event, ib.CompletedOrdersEnd):
            key = COMPLETED_ORDERS
        else:
            return False
        for future in self._waiting.pop((event.endpoint, key), []):
            if not future.done():
                future.set_result(None)
        return True

    def fail(self, endpoint: str, reason: str, keys: frozenset[Hashable] | None = None) -> None:
        """Outstanding requests of that endpoint (all, or those `keys`) fail now: the socket is
        gone, or IB refused them."""
        for (where, key) in [k for k in self._waiting if k[0] == endpoint and (keys is None or k[1] in keys)]:
            for future in self._waiting.pop((where, key)):
                if not future.done():
                    future.set_exception(ConnectionError(reason))

    def fail_request(self, endpoint: str, req_id: int, reason: str) -> bool:
        """An error carried the id of a request we are waiting on: that request failed. False if
        no request of ours has that id (the error is about something else, e.g. an order)."""
        if (endpoint, req_id) not in self._waiting:
            return False
        self.fail(endpoint, reason, frozenset({req_id}))
        return True
