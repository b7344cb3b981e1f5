"""IB answers a request with a stream of messages and an end marker (openOrderEnd,
completedOrdersEnd, execDetailsEnd). These futures let the engine await that end, after the
messages before it are committed: the engine resolves them in arrival order.

A request fails for want of an answer only when IB went quiet: its time runs out while nothing
of IB's waits to be applied and no part of the answer was applied since. A day of 50,000
executions takes longer to store than IB takes to send, and the decoder waits for the writer
(ib/backpressure.py), so the end marker comes when the writer is done; asking IB for the whole
day again then would only double the work."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable

from execgw.server.ib import events as ib

OPEN_ORDERS = "open-orders"
COMPLETED_ORDERS = "completed-orders"
# Requests with no request id: an error with id -1 while one is outstanding may be its refusal.
OPEN_ORDER_KEYS = frozenset({OPEN_ORDERS, COMPLETED_ORDERS})


class IbAnswers:
    def __init__(self) -> None:
        self._waiting: dict[tuple[str, Hashable], list[asyncio.Future[None]]] = defaultdict(list)
        # Parts of the answers awaited now that were applied, per request.
        self._heard: Counter[tuple[str, Hashable]] = Counter()
        # IB's messages received and not yet applied, decoded or not (the engine tells).
        self.backlog: Callable[[], int] = lambda: 0

    async def ask(
        self, endpoint: str, key: Hashable, send: Callable[[], Awaitable[None]], timeout: float
    ) -> None:
        """Sends a request and waits for its end marker; TimeoutError when IB went quiet for
        `timeout` seconds without it (see the module note), ConnectionError when the socket
        went or IB refused. An unanswered request means "unknown", never "nothing"."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        request = (endpoint, key)
        self._waiting[request].append(future)
        try:
            await send()
            heard = self._heard[request]
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(future), timeout)
                    return
                except TimeoutError:
                    if self._heard[request] == heard and not self.backlog():
                        raise
                    heard = self._heard[request]
        finally:
            waiting = self._waiting.get(request)
            if waiting is not None and future in waiting:
                waiting.remove(future)
            if not waiting:  # nobody awaits this request any more
                self._waiting.pop(request, None)
                self._heard.pop(request, None)

    def heard(self, parts: Iterable[tuple[str, Hashable]]) -> None:
        """These (endpoint, key) answered parts were applied; requests nobody awaits are ignored."""
        for request in parts:
            if request in self._waiting:
                self._heard[request] += 1

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
