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

    def fail(self, endpoint: str, reason: str) -> None:
        """The socket is gone: every outstanding request of that endpoint fails now."""
        for (where, key) in [k for k in self._waiting if k[0] == endpoint]:
            for future in self._waiting.pop((where, key)):
                if not future.done():
                    future.set_exception(ConnectionError(reason))
