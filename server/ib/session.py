"""One IB endpoint: the socket, ibapi's reader thread, pacing, order ids and reconnection.

The session never touches the database or gRPC. ibapi calls the wrapper on its own thread;
each callback becomes a frozen event from `execgw.server.ib.events`, handed to the event loop
with `call_soon_threadsafe`, so asyncio objects are only ever touched on the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order

try:  # ibapi 10.x: cancelOrder(orderId, OrderCancel); 9.81 has neither the class nor the argument
    from ibapi.order_cancel import OrderCancel
except ImportError:  # pragma: no cover - depends on the installed ibapi
    OrderCancel = None
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from execgw.server.ib import events as ev
from execgw.server.ib.backpressure import Backpressure
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.handoff import LoopHandoff
from execgw.server.ib.ids import OrderIdAllocator, OrdersWritten
from execgw.server.ib.pacing import Pacer, WriteSpacing
from execgw.server.ib.reader import LinearReaderClient
from execgw.server.ib.wrapper import CallbackTranslator
from execgw.server.ib.writer import MaybeSent, NotSent, SocketWriter

__all__ = ["IBSession", "MarketOrder", "MaybeSent", "NotSent", "Withdrawn"]

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


class Withdrawn(Exception):
    """The caller no longer wanted the message when its turn came: it was not sent."""


IB_LINK_LOST = 1100
IB_LINK_CODES = frozenset({1100, 1101, 1102})


REQUEST_IDS_START = 2_000_000_000


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
        # IB answers a request's error with the request id where an order's error carries the
        # order id: request ids live far above any order id an account reaches (ids are int32).
        self._next_req_id = REQUEST_IDS_START
        self._writer = SocketWriter(f"ibapi-writer-{endpoint.mode}", WriteSpacing(pacing_per_second))
        self._generation = 0
        self._connected = False
        self._link_ok = True
        self.accounts: tuple[str, ...] = ()
        self.connections_made = 0  # the first and every reconnect (the metrics read it)
        self._orders_written = OrdersWritten()
        # Bounds the reports decoded and not yet applied (backpressure.py); the engine sets it.
        self.backpressure: Backpressure | None = None
        self._undecoded: Callable[[], int] = lambda: 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def pacing(self) -> Pacer:
        """The loop-side pacer, for the metrics: how long requests waited for their turn."""
        return self._pacer

    @property
    def undecoded(self) -> int:
        """IB's messages received on the current socket and not yet handed to the loop: framed
        and waiting for ibapi's decoder, or decoded and waiting for the loop (any thread)."""
        return self._undecoded()

    @property
    def ready(self) -> bool:
        """Connected and IB has told us its next valid order id: orders may be placed."""
        return self._ready.is_set()

    @property
    def connection(self) -> int:
        """Which socket this is: a number that grows with every connect attempt."""
        return self._generation

    def highest_order_written_before(self, connection: int) -> int:
        """The highest order id whose placeOrder was written whole on a socket before
        `connection` (0 if none): IB has such an order only if it reports it on a later one."""
        return self._orders_written.highest_before(connection)

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
        self._writer.close()

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
        # One deadline for the whole connect: the handshake, then nextValidId.
        deadline = loop.time() + self._connect_timeout
        self._generation += 1
        generation = self._generation
        self._closed = asyncio.Event()
        self._connected = False
        self._link_ok = True
        # One wake-up of the loop per burst of callbacks, not per callback (see handoff.py).
        handoff: LoopHandoff[ev.IbEvent] = LoopHandoff(loop, lambda event: self._deliver(generation, event))
        translator = CallbackTranslator(self.endpoint, handoff.post, claims_error=self._writer.claims_error)
        client = LinearReaderClient(translator)  # ibapi's EReader is quadratic in a backlog
        backpressure = self.backpressure
        if backpressure is not None:
            translator.before_report = lambda: backpressure.wait_for_room(client.isConnected, handoff.pending)
        self._undecoded = lambda: client.msg_queue.qsize() + handoff.pending()
        await self._handshake(client, deadline)
        if not client.isConnected():
            raise ConnectFailed(translator.last_error or "connection refused")
        self._writer.watch(client)
        self._client = client
        thread = threading.Thread(
            target=self._run_reader, args=(client, translator), name="ibapi-reader", daemon=True
        )
        thread.start()
        # Ready (nextValidId arrived) or closed (e.g. error 326, client id in use), whichever first.
        waiters = [asyncio.ensure_future(self._ready.wait()), asyncio.ensure_future(self._closed.wait())]
        await asyncio.wait(waiters, timeout=max(deadline - loop.time(), 0.0), return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if not self._ready.is_set():
            await self._disconnect()
            raise ConnectFailed(translator.last_error or "no nextValidId from IB")
        self.connections_made += 1
        log.info(
            "IB %s connected to %s as client id %d (next order id %d, accounts %s)",
            self.endpoint.mode,
            self.endpoint.address,
            self.endpoint.client_id,
            self.order_ids.next_id,
            ",".join(self.accounts) or "-",
        )

    async def _handshake(self, client: EClient, deadline: float) -> None:
        """ibapi's blocking `EClient.connect` (TCP connect, `API\\0v100..157`, wait for the server
        version, START_API), bounded by the deadline.

        A TWS that does not trust our IP, or whose "accept incoming connection?" dialog nobody
        answers, accepts the socket and never replies: `connect` then loops on its 1 s socket
        timeout forever. It runs on a thread of its own (not the loop's shared executor, which a
        few such attempts would fill) and, past the deadline or when the session stops, the
        socket is shut down, which makes `connect` return and the thread end."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[BaseException | None] = loop.create_future()

        def run() -> None:
            error: BaseException | None = None
            try:
                client.connect(self.endpoint.host, self.endpoint.port, self.endpoint.client_id)
            except Exception as failed:  # e.g. ibapi tripping over the socket we shut down
                error = failed
            try:
                loop.call_soon_threadsafe(_settle, finished, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        thread = threading.Thread(target=run, name=f"ibapi-connect-{self.endpoint.mode}", daemon=True)
        thread.start()
        try:
            done, _ = await asyncio.wait({finished}, timeout=max(deadline - loop.time(), 0.0))
        except asyncio.CancelledError:
            await _abort_handshake(client, finished)
            raise
        if not done:
            tcp_connected = _tcp_connected(client)
            await _abort_handshake(client, finished)
            if not tcp_connected:  # SYN unanswered: a host down or a firewall, not TWS's dialog
                raise ConnectFailed(
                    f"TCP connect to {self.endpoint.address} did not complete within {self._connect_timeout:g}s"
                )
            raise ConnectFailed(
                f"IB did not answer the API handshake within {self._connect_timeout:g}s "
                f"({self.endpoint.address} accepted the connection but stayed silent: check TWS / IB Gateway's "
                "trusted IPs (Global Configuration > API > Settings) or accept the incoming connection)"
            )
        error = finished.result()
        if error is not None:
            _close_quietly(client)
            raise ConnectFailed(f"ibapi connect failed: {error!r}")

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
        self, action: Callable[[EClient], None], what: str, still_wanted: Callable[[], bool] | None = None
    ) -> int:
        """Paced, then written on the session's writer thread; returns the connection it was
        written on. Raises Withdrawn (not wanted any more), NotSent (certainly not sent) or
        MaybeSent (the write failed part-way)."""
        if still_wanted is not None and not still_wanted():
            raise Withdrawn
        await self._pacer.acquire()
        # The pacer may have made us wait for seconds; the caller's mind may have changed.
        if still_wanted is not None and not still_wanted():
            raise Withdrawn
        client, connection = self._client, self._generation  # a client is its attempt's own
        if client is None or not client.isConnected():
            raise NotSent(f"{what}: IB {self.endpoint.mode} is not connected")
        try:
            await self._writer.send(client, action, what)
            return connection
        except MaybeSent:
            # Part of a message may be on the wire: TWS would misread everything after it.
            # Drop the socket; the reconnect reconciles whatever this message did.
            if self._client is client:
                log.error("IB %s: a write failed part-way; dropping the connection", self.endpoint.mode)
                await self._disconnect()
            raise

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
        ib_order.tif = "DAY"  # explicit, not the TWS preset: a run's order never outlives IB's day
        ib_order.transmit = True
        # ibapi 9.81 defaults both to True; since 2022 TWS refuses such orders with error
        # 10268/10269 and creates no order. ibapi 10.x dropped the attributes and always sends
        # False itself, so they are set only where the installed ibapi still has them.
        for attribute in ("eTradeOnly", "firmQuoteOnly"):
            if hasattr(ib_order, attribute):
                setattr(ib_order, attribute, False)
        connection = await self._send(
            lambda c: c.placeOrder(order.order_id, contract, ib_order), f"order {order.order_id}", still_wanted
        )
        # Noted in the step that saw the write end: a reconciliation's requests go through the
        # same writer thread, so any that could judge this order finds it noted.
        self._orders_written.note(connection, order.order_id)

    async def cancel_order(self, order_id: int) -> None:
        await self._send(lambda c: _cancel_order(c, order_id), f"cancel of order {order_id}")

    def new_request_id(self) -> int:
        self._next_req_id += 1
        return self._next_req_id

    async def request_executions(self, req_id: int, symbol: str = "") -> None:
        """The day's executions of our client id (of one symbol, if given); answered by
        execDetails..., execDetailsEnd."""
        exec_filter = ExecutionFilter()
        exec_filter.clientId = self.endpoint.client_id
        exec_filter.symbol = symbol
        await self._send(lambda c: c.reqExecutions(req_id, exec_filter), f"reqExecutions {req_id}")

    async def request_open_orders(self) -> None:
        await self._send(lambda c: c.reqOpenOrders(), "reqOpenOrders")

    async def request_completed_orders(self) -> None:
        await self._send(lambda c: c.reqCompletedOrders(True), "reqCompletedOrders")


def utc_now() -> datetime:
    return datetime.now(UTC)


_CANCEL_PARAMETERS = tuple(inspect.signature(EClient.cancelOrder).parameters)[1:]


def _cancel_order(client: EClient, order_id: int) -> None:
    """cancelOrder as the installed ibapi wants it: `(orderId)` in 9.81, `(orderId,
    manualCancelOrderTime)` in early 10.x, `(orderId, OrderCancel)` since. At server version 157
    all three send the same `4,1,orderId`."""
    if "orderCancel" in _CANCEL_PARAMETERS and OrderCancel is not None:
        client.cancelOrder(order_id, OrderCancel())
    elif len(_CANCEL_PARAMETERS) >= 2:
        client.cancelOrder(order_id, "")
    else:
        client.cancelOrder(order_id)


HANDSHAKE_RELEASE_SECONDS = 3.0
"""How long an aborted handshake's thread may take to leave ibapi's `connect` (normally at once)."""


def _settle(finished: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not finished.done():
        finished.set_result(error)  # handed over as a value: the loop decides what it means


def _shut_down_socket(client: EClient) -> bool:
    """Wakes a thread blocked in ibapi's connect: shutdown() makes its recv() (or a TCP connect
    still in SYN_SENT) return at once; ibapi then sees the socket closed and gives up. Returns
    whether there was a socket to shut down."""
    conn = getattr(client, "conn", None)
    sock = getattr(conn, "socket", None)
    if sock is None:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed, or never connected
        pass
    return True


def _tcp_connected(client: EClient) -> bool:
    """Whether ibapi's socket got as far as a TCP connection (its peer accepted)."""
    sock = getattr(getattr(client, "conn", None), "socket", None)
    if sock is None:
        return False
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _close_quietly(client: EClient) -> None:
    try:
        client.disconnect()
    except Exception:  # ibapi's disconnect on a half-made connection; the socket goes anyway
        log.debug("ibapi disconnect after a failed handshake raised", exc_info=True)


async def _abort_handshake(client: EClient, finished: asyncio.Future[BaseException | None]) -> None:
    """Ends a handshake thread and waits (bounded) until it has left ibapi's connect.

    ibapi may not have created its socket yet when we first look, so this keeps shutting
    down whatever socket it has until the thread reports back."""
    give_up = time.monotonic() + HANDSHAKE_RELEASE_SECONDS
    while not finished.done() and time.monotonic() < give_up:
        _shut_down_socket(client)
        await asyncio.wait({finished}, timeout=0.05)
    if not finished.done():
        log.warning("ibapi's connect did not return after its socket was shut down; its thread is left to end")
    _close_quietly(client)
