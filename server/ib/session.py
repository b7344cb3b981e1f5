"""One IB endpoint: the socket, ibapi's reader thread, pacing, order ids and reconnection.

The session never touches the database or gRPC. ibapi calls the wrapper on its own thread;
each callback becomes a frozen event from `execgw.server.ib.events`, handed to the event loop
with `call_soon_threadsafe`, so asyncio objects are only ever touched on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from execgw.server.ib import events as ev
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.ids import OrderIdAllocator
from execgw.server.ib.pacing import Pacer
from execgw.server.ib.wrapper import CallbackTranslator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarketOrder:
    """What the session needs to place one MKT order."""

    order_id: int
    order_ref: str
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    side: str
    quantity: float
    account: str


class ConnectFailed(Exception):
    pass


class NotSent(ConnectionError):
    """The socket was down before the message was written: IB certainly did not get it."""


class Withdrawn(Exception):
    """The caller no longer wanted the message when its turn came: it was not sent."""


IB_LINK_LOST = 1100
IB_LINK_CODES = frozenset({1100, 1101, 1102})


class IBSession:
    """Owns the connection to one endpoint; reconnects with backoff and jitter until stopped."""

    def __init__(
        self,
        endpoint: Endpoint,
        sink: Callable[[ev.IbEvent], None],
        *,
        pacing_per_second: int = 45,
        connect_timeout: float = 10.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.order_ids = OrderIdAllocator()
        self._sink = sink
        self._pacer = Pacer(pacing_per_second)
        self._connect_timeout = connect_timeout
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._client: EClient | None = None
        self._ready = asyncio.Event()
        self._closed: asyncio.Event = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._next_req_id = 1_000_000
        self._generation = 0
        self._connected = False
        self._link_ok = True
        self.accounts: tuple[str, ...] = ()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Connected and IB has told us its next valid order id: orders may be placed."""
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"ib-session-{self.endpoint.mode}"
        )

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
        await self._disconnect()

    async def _supervise(self) -> None:
        while not self._stopping:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(ConnectFailed),
                wait=wait_exponential_jitter(
                    multiplier=self._reconnect_initial, max=self._reconnect_max, jitter=self._reconnect_initial
                ),
                before_sleep=self._log_retry,
                reraise=True,
            ):
                with attempt:
                    await self._connect_once()
            await self._closed.wait()
            if not self._stopping:
                log.warning("IB %s (%s) disconnected; reconnecting", self.endpoint.mode, self.endpoint.address)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "IB %s (%s) connect attempt %d failed (%s); next try in %.1fs",
            self.endpoint.mode,
            self.endpoint.address,
            state.attempt_number,
            error,
            delay,
        )

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        self._generation += 1
        generation = self._generation
        self._closed = asyncio.Event()
        self._connected = False
        self._link_ok = True
        translator = CallbackTranslator(
            self.endpoint, lambda event: loop.call_soon_threadsafe(self._deliver, generation, event)
        )
        client = EClient(translator)
        await loop.run_in_executor(
            None, client.connect, self.endpoint.host, self.endpoint.port, self.endpoint.client_id
        )
        if not client.isConnected():
            raise ConnectFailed(translator.last_error or "connection refused")
        self._client = client
        thread = threading.Thread(
            target=self._run_reader, args=(client, translator), name="ibapi-reader", daemon=True
        )
        thread.start()
        # Ready (nextValidId arrived) or closed (e.g. error 326, client id in use), whichever first.
        waiters = [asyncio.ensure_future(self._ready.wait()), asyncio.ensure_future(self._closed.wait())]
        await asyncio.wait(waiters, timeout=self._connect_timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if not self._ready.is_set():
            await self._disconnect()
            raise ConnectFailed(translator.last_error or "no nextValidId from IB")
        log.info(
            "IB %s connected to %s as client id %d (next order id %d, accounts %s)",
            self.endpoint.mode,
            self.endpoint.address,
            self.endpoint.client_id,
            self.order_ids.next_id,
            ",".join(self.accounts) or "-",
        )

    def _run_reader(self, client: EClient, translator: CallbackTranslator) -> None:
        try:
            client.run()
        except Exception:  # ibapi's loop should not raise; if it does, the socket is gone anyway.
            log.exception("ibapi reader loop failed")
        finally:
            try:
                translator.deliver(ev.Disconnected(self.endpoint.address, translator.last_error or "socket closed"))
            except RuntimeError:  # the loop is already closed at shutdown
                pass

    def _deliver(self, generation: int, event: ev.IbEvent) -> None:
        """On the loop: keep the session's own state, then pass the event to the engine.

        Connection state changes from an earlier socket are ignored; what IB reported on it
        (statuses, executions) is still passed on, it is still true."""
        current = generation == self._generation
        if isinstance(event, ev.Connected | ev.Disconnected) and not current:
            return
        if isinstance(event, ev.Connected):
            self.order_ids.raise_floor(event.next_valid_id)
            self.accounts = event.accounts
            self._connected = True
        elif isinstance(event, ev.Disconnected):
            self._connected = False
            self._client = None
            self._closed.set()
        elif isinstance(event, ev.IbError) and current and event.code in IB_LINK_CODES:
            # 1100: TWS lost IB's servers. Orders sent now would wait in TWS: refuse new runs
            # until 1101/1102 says the link is back.
            self._link_ok = event.code != IB_LINK_LOST
        if self._connected and self._link_ok:
            self._ready.set()
        else:
            self._ready.clear()
        self._sink(event)

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        self._connected = False
        self._ready.clear()
        if client is not None:
            await asyncio.get_running_loop().run_in_executor(None, client.disconnect)

    # -- requests (paced) --------------------------------------------------------------------

    async def _send(
        self, action: Callable[[EClient], None], still_wanted: Callable[[], bool] | None = None
    ) -> None:
        if still_wanted is not None and not still_wanted():
            raise Withdrawn
        await self._pacer.acquire()
        # The pacer may have made us wait for seconds; the caller's mind may have changed.
        if still_wanted is not None and not still_wanted():
            raise Withdrawn
        client = self._client
        if client is None or not client.isConnected():
            raise NotSent(f"IB {self.endpoint.mode} is not connected")
        action(client)

    async def place_market_order(self, order: MarketOrder, still_wanted: Callable[[], bool] | None = None) -> None:
        contract = Contract()
        contract.symbol = order.symbol
        contract.secType = order.sec_type
        contract.exchange = order.exchange
        contract.primaryExchange = order.primary_exchange
        contract.currency = order.currency
        ib_order = Order()
        ib_order.action = order.side
        ib_order.orderType = "MKT"
        ib_order.totalQuantity = order.quantity
        ib_order.orderRef = order.order_ref
        ib_order.account = order.account
        ib_order.transmit = True
        await self._send(lambda c: c.placeOrder(order.order_id, contract, ib_order), still_wanted)

    async def cancel_order(self, order_id: int) -> None:
        await self._send(lambda c: c.cancelOrder(order_id))

    def new_request_id(self) -> int:
        self._next_req_id += 1
        return self._next_req_id

    async def request_executions(self, req_id: int, symbol: str = "") -> None:
        """The day's executions of our client id (of one symbol, if given); answered by
        execDetails..., execDetailsEnd."""
        exec_filter = ExecutionFilter()
        exec_filter.clientId = self.endpoint.client_id
        exec_filter.symbol = symbol
        await self._send(lambda c: c.reqExecutions(req_id, exec_filter))

    async def request_open_orders(self) -> None:
        await self._send(lambda c: c.reqOpenOrders())

    async def request_completed_orders(self) -> None:
        await self._send(lambda c: c.reqCompletedOrders(True))


def utc_now() -> datetime:
    return datetime.now(UTC)
