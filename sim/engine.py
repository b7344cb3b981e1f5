"""Order execution: ids, permIds, the order lifecycle each scenario behaviour calls for, executions.

The engine lives on the simulator's event loop. It sends messages to the client that owns an
order, and to the master client id, through :class:`Session` objects the server registers by
client id; when that client is not connected the message is lost, as with TWS, but the execution
is kept for REQ_EXECUTIONS.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol, TypeVar

from execgw.sim import messages, todays_tws
from execgw.sim.market import Market, corrected_exec_id, split_quantity, venue_of
from execgw.sim.records import (
    API_CANCELLED,
    CANCELLED,
    FILLED,
    INACTIVE,
    PRE_SUBMITTED,
    SUBMITTED,
    Contract,
    Execution,
    Order,
    ReceivedOrder,
    ReceivedRequest,
    Refusal,
)
from execgw.sim.requests import Incoming, PlaceOrder
from execgw.sim.scenario import OrderBehaviour, Scenario

log = logging.getLogger("execgw.sim")
T = TypeVar("T")

FLOOD_BATCH = 500
"""Back-to-back executions sent before yielding to the loop and waiting for the socket to drain."""

CONNECTIVITY_TEXT = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
}


class Session(Protocol):
    """A connected client as the engine sees it."""

    client_id: int

    def send(self, message: bytes) -> None: ...

    async def drain(self) -> None: ...


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Engine:
    def __init__(self, scenario: Scenario, accounts: list[str], seed: int = 0,
                 clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.scenario = scenario
        self.accounts = accounts
        self.clock = clock
        self.sessions: dict[int, Session] = {}
        self.orders: list[Order] = []
        self.executions: list[Execution] = []
        self._working: dict[tuple[int, int], Order] = {}  # (client id, order id) → latest order
        self._highest_id: dict[int, int] = {}
        self._base_id: int = scenario.first_order_id
        self._base_id_for: dict[int, int] = {}
        self.market = Market(scenario, seed)
        self._tasks: set[asyncio.Task[None]] = set()
        self.commission_pending: set[str] = set()  # exec ids whose commission report is not due yet
        self.link_down = False
        self._held: dict[int, list[bytes]] = defaultdict(list)
        self._changed = asyncio.Event()
        self.times = todays_tws.ExecutionTimes(scenario.execution_time_format, scenario.time_zone)
        self.market_open = scenario.market_open
        self.day = 0
        """IB's day: executions and completed orders of earlier days are no longer reported."""
        self.refusals: list[Refusal] = []
        self.received: list[ReceivedOrder] = []
        """Every PLACE_ORDER, created or refused (103 included), in arrival order."""
        self.requests: list[ReceivedRequest] = []

    # ---- ids -------------------------------------------------------------------------------

    def next_valid_id(self, client_id: int) -> int:
        base = self._base_id_for.get(client_id, self._base_id)
        return max(base, self._highest_id.get(client_id, 0) + 1)

    def set_next_valid_id(self, value: int, client_id: int | None = None) -> None:
        """As after a Gateway restart: report ``value`` and accept ids from it again, even used ones."""
        targets = [client_id] if client_id is not None else list(self._highest_id)
        if client_id is None:
            self._base_id = value
            self._base_id_for.clear()
        else:
            self._base_id_for[client_id] = value
        for cid in targets:
            self._highest_id[cid] = value - 1

    # ---- delivery --------------------------------------------------------------------------

    def send(self, client_id: int, message: bytes) -> None:
        """Deliver an order event to the client that owns it, held while IB connectivity is down."""
        if self.link_down:
            self._held[client_id].append(message)
            return
        session = self.sessions.get(client_id)
        if session is not None:
            session.send(message)

    def tell(self, owner: int, message: bytes) -> None:
        """An order event: to the client that placed the order and to the master client id, which
        TWS keeps informed of every client's orders, executions and commissions."""
        self.send(owner, message)
        master = self.scenario.master_client_id
        if master is not None and master != owner:
            self.send(master, message)

    def broadcast(self, message: bytes) -> None:
        for session in list(self.sessions.values()):
            session.send(message)

    def connectivity(self, code: int) -> None:
        """1100 holds order events; 1102 delivers what was held, 1101 discards it (data lost)."""
        if code not in CONNECTIVITY_TEXT:
            raise ValueError(f"not a connectivity code: {code}")
        self.link_down = code == 1100
        log.info("connectivity %d: %s", code, CONNECTIVITY_TEXT[code])
        self.broadcast(messages.error(-1, code, CONNECTIVITY_TEXT[code]))
        if code == 1100:
            return
        held, self._held = self._held, defaultdict(list)
        if code == 1102:
            for client_id, queued in held.items():
                for message in queued:
                    self.send(client_id, message)

    # ---- observation -----------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, condition: Callable[[], T | None], timeout: float, what: str) -> T:
        """Wait until ``condition()`` returns something other than None (re-checked on every change)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (result := condition()) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{what} not seen within {timeout}s")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return result

    async def wait_for_order(self, order_ref: str, timeout: float, status: str | None = None) -> Order:
        """The latest order with this orderRef, once it exists (and has ``status``, if given)."""

        def latest() -> Order | None:
            found = [o for o in self.orders if o.order_ref == order_ref]
            if found and (status is None or found[-1].status == status):
                return found[-1]
            return None

        return await self.wait_until(latest, timeout, f"order {order_ref!r}" + (f" {status}" if status else ""))

    def register(self, session: Session) -> None:
        self.sessions[session.client_id] = session
        self._notify()

    def unregister(self, session: Session) -> None:
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            self._notify()

    # ---- placing and cancelling ------------------------------------------------------------

    def log_request(self, client_id: int, message: list[str]) -> None:
        try:
            name = Incoming(int(message[0])).name
        except (ValueError, IndexError):
            name = f"unknown {message[:1]}"
        self.requests.append(ReceivedRequest(client_id, name, _order_id_named(name, message)))
        self._notify()

    def dropped_by_pacing(self, client_id: int, request: PlaceOrder) -> None:
        """A PLACE_ORDER over IB's message rate: answered with 100 (by the connection), not created."""
        self.received.append(ReceivedOrder(
            client_id, request.order_id, request.order_ref, request.contract.symbol, request.action,
            request.quantity, 100))
        self._notify()

    def place_order(self, client_id: int, request: PlaceOrder) -> None:
        refused_with = self._place(client_id, request)
        self.received.append(ReceivedOrder(
            client_id, request.order_id, request.order_ref, request.contract.symbol, request.action,
            request.quantity, refused_with))
        self._notify()

    def _place(self, client_id: int, request: PlaceOrder) -> int | None:
        """Creates the order and returns None, or answers an error and returns its code."""
        if self.scenario.read_only:
            return self._refuse(client_id, request, todays_tws.READ_ONLY, todays_tws.read_only_text("bN"))
        if request.order_id < self.next_valid_id(client_id):
            self.send(client_id, messages.error(request.order_id, 103, "Duplicate order id"))
            log.info("client %d: order id %d refused, duplicate", client_id, request.order_id)
            return 103
        self._highest_id[client_id] = request.order_id
        if self.scenario.profile == "current" and (request.e_trade_only or request.firm_quote_only):
            code = todays_tws.ETRADE_ONLY if request.e_trade_only else todays_tws.FIRM_QUOTE_ONLY
            return self._refuse(client_id, request, code, todays_tws.ATTRIBUTE_REFUSALS[code])
        behaviour = self.scenario.behaviour_for(request.order_ref, request.contract.symbol)
        if behaviour.outcome == "error" and behaviour.error_status is None:
            return self._refuse(client_id, request, behaviour.error_code, behaviour.error_message)
        order = Order(
            order_id=request.order_id,
            client_id=client_id,
            perm_id=self.market.next_perm_id(),
            contract=request.contract,
            action=request.action,
            quantity=request.quantity,
            order_type=request.order_type,
            account=request.account or self.accounts[0],
            order_ref=request.order_ref,
            lmt_price=request.lmt_price,
            aux_price=request.aux_price,
            tif=request.tif,
            placed_at=self.clock(),
            day=self.day,
        )
        self._accept(order, behaviour, self._refusal(order, behaviour))
        return None

    def _accept(self, order: Order, behaviour: OrderBehaviour, refusal: str | None) -> None:
        self.orders.append(order)
        self._working[(order.client_id, order.order_id)] = order
        log.info(
            "order %d from client %d: %s %g %s %s account %s orderRef %r permId %d",
            order.order_id, order.client_id, order.action, order.quantity, order.contract.symbol,
            order.order_type, order.account, order.order_ref, order.perm_id,
        )
        self._notify()
        self._spawn(self._run(order, behaviour, refusal))

    def _refuse(self, client_id: int, request: PlaceOrder, code: int, message: str) -> int:
        """An error for the order id and no order at IB: no openOrder, no orderStatus."""
        self.send(client_id, messages.error(request.order_id, code, message))
        self.refusals.append(Refusal(client_id, request.order_id, request.order_ref, code, message))
        log.info("client %d: order %d (%s) refused with %d: %s", client_id, request.order_id,
                 request.order_ref, code, message)
        self._notify()
        return code

    def add_foreign_order(self, order_ref: str, symbol: str = "AAPL", side: str = "BUY",
                          quantity: float = 10, client_id: int = 0, order_id: int | None = None,
                          fill: bool = True) -> Order:
        """An order another API client (or, with client id 0, a TWS user) placed in the same account.

        It gets its own permId; its order id may equal another client's. TWS reports it to its
        owner and to the master client id, never to other clients' live streams.
        """
        by_tws_user = client_id == 0
        if order_id is None:
            # TWS users' orders carry order id 0 until an API client binds them.
            order_id = 0 if by_tws_user else self.next_valid_id(client_id)
        if not by_tws_user:
            self._highest_id[client_id] = max(self._highest_id.get(client_id, 0), order_id)
        order = Order(
            order_id=order_id,
            client_id=client_id,
            perm_id=self.market.next_perm_id(),
            contract=Contract(symbol),
            action=side.upper(),
            quantity=quantity,
            order_type="MKT",
            account=self.accounts[0],
            order_ref=order_ref,
            tif="DAY",
            placed_at=self.clock(),
            placed_in_tws=by_tws_user,
            day=self.day,
        )
        # Its own behaviour, not the scenario's: the orderRef may deliberately match a pattern there.
        self._accept(order, OrderBehaviour() if fill else OrderBehaviour(outcome="rest"), None)
        return order

    def _refusal(self, order: Order, behaviour: OrderBehaviour) -> str | None:
        if order.order_type != "MKT":
            return f"The simulator executes MKT orders only, not {order.order_type}"
        if order.account not in self.accounts:
            return f"Account {order.account} is not managed by this login"
        if order.action not in ("BUY", "SELL", "SSHORT"):
            return f"Invalid action {order.action}"
        if order.quantity <= 0:
            return "The order size must be positive"
        return behaviour.reject_reason if behaviour.outcome == "reject" else None

    def cancel_order(self, client_id: int, order_id: int) -> None:
        if self.scenario.read_only:
            self.send(client_id, messages.error(order_id, todays_tws.READ_ONLY, todays_tws.read_only_text("bO")))
            return
        order = self._working.get((client_id, order_id))
        if order is None:
            self.send(client_id, messages.error(
                order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."))
            return
        if order.is_final or order.cancel_requested:
            self.send(client_id, messages.error(
                order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
                f"state: {order.status}."))
            return
        log.info("cancel requested for order %d of client %d (%s)", order_id, client_id, order.order_ref)
        order.cancel_requested = True
        order.touch()  # wakes the order's run, which answers the cancel in its own time

    def open_market(self) -> None:
        """The regular session opens: orders held since their 399 go Submitted and carry on."""
        self.market_open = True
        for order in self.orders:
            if order.waiting_for_open:
                order.touch()
        log.info("market open")

    def new_day(self) -> None:
        """IB's day rolls over: working DAY orders expire (Cancelled, reported as of the old day),
        and the old day's executions and completed orders drop out of what IB reports."""
        for order in self.orders:
            if order.is_final or order.waiting_for_open or (order.tif or "DAY").upper() != "DAY":
                continue
            order.expired = True
            order.cancel_requested = True  # ends its run without a further report
            self._set_status(order, CANCELLED)
            self.tell(order.client_id, messages.open_order(order))
            self.tell(order.client_id, messages.order_status(order))
            log.info("order %d (%s) expired at the end of IB's day", order.order_id, order.order_ref)
        self.day += 1
        log.info("IB's day %d begins", self.day)
        self._notify()

    def release(self, order: Order) -> None:
        """Fill a resting order now (or end the wait before a delayed fill)."""
        order.release_requested = True
        order.touch()

    # ---- the lifecycle ---------------------------------------------------------------------

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("order run failed", exc_info=task.exception())

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _set_status(self, order: Order, status: str) -> None:
        order.status = status
        if order.is_final and order.completed_day is None:
            order.completed_day = self.day
        order.touch()
        self._notify()

    def _status(self, order: Order, behaviour: OrderBehaviour, times: int = 1) -> None:
        for _ in range(times * (2 if behaviour.duplicate_order_status else 1)):
            self.tell(order.client_id, messages.order_status(order))

    async def _run(self, order: Order, b: OrderBehaviour, refusal: str | None) -> None:
        if b.ack_delay and await self._pause(order, b.ack_delay, interruptible=True):
            if order.expired:
                return
            self._set_status(order, API_CANCELLED)
            self._status(order, b)
            self.send(order.client_id, messages.error(order.order_id, 202, "Order Canceled - reason:"))
            return
        if refusal is not None:
            order.reject_reason = refusal
            self.send(order.client_id, messages.error(
                order.order_id, 201, f"Order rejected - reason:{refusal}"))
            self._set_status(order, INACTIVE)
            self.tell(order.client_id, messages.open_order(order))
            self._status(order, b)
            log.info("order %d (%s) rejected: %s", order.order_id, order.order_ref, refusal)
            return
        if b.outcome == "error" and b.error_status is not None:
            order.reject_reason = b.error_message
            self.send(order.client_id, messages.error(order.order_id, b.error_code, b.error_message))
            self._set_status(order, b.error_status)
            self.tell(order.client_id, messages.open_order(order))
            self._status(order, b)
            log.info("order %d (%s) answered %d, then %s", order.order_id, order.order_ref,
                     b.error_code, b.error_status)
            return
        self._set_status(order, PRE_SUBMITTED)
        self.tell(order.client_id, messages.open_order(order))
        self._status(order, b)
        if b.warning_code is not None:
            self.send(order.client_id, messages.error(order.order_id, b.warning_code, b.warning_message))
        waited = False
        if not self.market_open and order.order_type == "MKT":
            waited = True
            await self._until_open(order)
            if order.expired:
                return
            if order.cancel_requested and not b.late_fill:
                return self._cancelled(order, b)
        at_once = b.outcome == "fill" and b.fills == 1 and not b.fill_delay and not waited
        if not at_once:
            self._set_status(order, SUBMITTED)
            self._status(order, b)

        if b.outcome == "rest":
            await self._until_released_or_cancelled(order)
            order.release_requested = False
        elif b.fill_delay:
            await self._pause(order, b.fill_delay, interruptible=not b.late_fill)
        if order.expired:
            return
        if order.cancel_requested and not b.late_fill:
            return self._cancelled(order, b)

        sizes = split_quantity(order.quantity, b.fills)
        session = self.sessions.get(order.client_id)
        # Fills on a fixed timetable (first + n × interval), not a sleep after each: a sleep rounds
        # up to the loop's clock and adds the time the fill itself took, so 1,000 fills a second
        # asked for came out far slower. Behind the timetable, the next fill goes at once.
        first_fill_at = asyncio.get_running_loop().time()
        for number, size in enumerate(sizes, start=1):
            due_in = 0.0
            if number > 1 and b.fill_interval:
                due_in = first_fill_at + (number - 1) * b.fill_interval - asyncio.get_running_loop().time()
            if due_in > 0:
                await self._pause(order, due_in, interruptible=not b.late_fill)
            elif number % FLOOD_BATCH == 0:
                await asyncio.sleep(0)  # let the cancel (and other clients) through
                if session is not None:
                    await session.drain()
            if order.expired:
                return
            if order.cancel_requested and not b.late_fill:
                return self._cancelled(order, b)
            self._execute(order, size, b, final=number == len(sizes))
        if len(sizes) > FLOOD_BATCH:
            log.info("order %d (%s): %d executions sent", order.order_id, order.order_ref, len(sizes))
        if order.cancel_requested:
            self.send(order.client_id, messages.error(
                order.order_id, 10148, f"OrderId {order.order_id} that needs to be cancelled cannot be "
                "cancelled, state: Filled."))
        if b.correction is not None and self.executions:
            if b.correction_delay:
                await asyncio.sleep(b.correction_delay)
            self._correct(order, b)

    async def _pause(self, order: Order, seconds: float, interruptible: bool) -> bool:
        """Sleep; True if a cancel arrived (and ended the sleep early when ``interruptible``)."""
        if not interruptible:
            await asyncio.sleep(seconds)
            return order.cancel_requested
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not order.cancel_requested and not order.release_requested:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(order.changed.wait(), remaining)
            except TimeoutError:
                break
        order.release_requested = False
        return order.cancel_requested

    async def _until_released_or_cancelled(self, order: Order) -> None:
        while not (order.cancel_requested or order.release_requested):
            await order.changed.wait()

    async def _until_open(self, order: Order) -> None:
        """Outside regular hours a MKT order waits PreSubmitted for the open, after TWS's 399."""
        warning = todays_tws.market_closed_text(order.action, order.quantity, order.contract.symbol,
                                                order.contract.primary_exchange or "NASDAQ.NMS", self.clock())
        self.send(order.client_id, messages.error(order.order_id, todays_tws.ORDER_MESSAGE, warning))
        order.waiting_for_open = True
        try:
            while not (self.market_open or order.cancel_requested):
                await order.changed.wait()
        finally:
            order.waiting_for_open = False

    def _cancelled(self, order: Order, b: OrderBehaviour) -> None:
        if order.expired:
            return  # reported when IB's day ended
        self._set_status(order, CANCELLED)
        self.tell(order.client_id, messages.open_order(order))
        self._status(order, b)
        self.send(order.client_id, messages.error(order.order_id, 202, "Order Canceled - reason:"))
        log.info("order %d (%s) cancelled after %g filled", order.order_id, order.order_ref, order.filled)

    # ---- executions ------------------------------------------------------------------------

    def _execute(self, order: Order, size: float, b: OrderBehaviour, final: bool) -> Execution:
        price = b.price if b.price is not None else self.market.price_of(order.contract.symbol)
        order.avg_fill_price = round((order.avg_fill_price * order.filled + price * size) / (order.filled + size), 6)
        order.filled += size
        order.last_fill_price = price
        execution = Execution(
            day=self.day,
            exec_id=self.market.next_exec_id(),
            order_ref=order.order_ref,
            order_id=order.order_id,
            perm_id=order.perm_id,
            client_id=order.client_id,
            account=order.account,
            contract=order.contract,
            side="BOT" if order.action == "BUY" else "SLD",
            shares=size,
            price=price,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            time=self.clock(),
            commission=self.market.commission_of(size),
            venue=venue_of(order.contract.exchange, order.contract.sec_type),
        )
        self.executions.append(execution)
        # A flood logs its executions at DEBUG: one INFO line each would be the bottleneck.
        log.log(logging.DEBUG if b.fills > FLOOD_BATCH else logging.INFO,
                "execution %s: order %d (%s) %s %g %s @ %g, cum %g",
                 execution.exec_id, order.order_id, order.order_ref, execution.side, size,
                 order.contract.symbol, price, order.filled)
        self._set_status(order, FILLED if final else SUBMITTED)
        self._report(order, execution, b, final)
        return execution

    def _report(self, order: Order, execution: Execution, b: OrderBehaviour, final: bool) -> None:
        """The messages of one execution, in the order a real IB Gateway sends them."""
        client = order.client_id
        if b.commission == "before":
            self.tell(client, messages.commission_report(execution))
        for _ in range(2 if b.duplicate_exec_details else 1):
            self.tell(client, messages.execution_data(-1, execution, self.times))
        if final:
            self.tell(client, messages.open_order(order))
            self._status(order, b, times=2)  # TWS commonly sends Filled twice
            # The last openOrder carries the order's commission, unless the scenario holds it back.
            total = sum(e.commission for e in self.executions if e.perm_id == order.perm_id)
            shown = round(total, 2) if b.commission in ("after", "before") else None
            self.tell(client, messages.open_order(order, commission=shown))
        else:
            self._status(order, b)
        self._commission_after(execution, b)

    def _commission_after(self, execution: Execution, b: OrderBehaviour) -> None:
        if b.commission == "after":
            self.tell(execution.client_id, messages.commission_report(execution))
        elif b.commission == "never":
            self.commission_pending.add(execution.exec_id)
        elif b.commission == "delayed":
            self.commission_pending.add(execution.exec_id)

            def deliver() -> None:
                self.commission_pending.discard(execution.exec_id)
                self.tell(execution.client_id, messages.commission_report(execution))

            asyncio.get_running_loop().call_later(b.commission_delay, deliver)

    def _correct(self, order: Order, b: OrderBehaviour) -> None:
        """Replace the order's last execution: same execId base, last part .02, a changed price."""
        original = [e for e in self.executions if e.perm_id == order.perm_id][-1]
        price = round(original.price + (b.correction or 0.0), 2)
        correction = dataclasses.replace(
            original,
            exec_id=corrected_exec_id(original.exec_id),
            price=price,
            avg_price=_average_after(self.executions, order.perm_id, original, price),
            time=self.clock(),
            corrects=original.exec_id,
            day=self.day,
        )
        self.executions.append(correction)
        order.avg_fill_price = correction.avg_price
        order.last_fill_price = price
        log.info("execution %s corrects %s: price %g → %g", correction.exec_id, original.exec_id,
                 original.price, price)
        self.tell(order.client_id, messages.execution_data(-1, correction, self.times))
        self._commission_after(correction, b)
        self._notify()


def _average_after(executions: list[Execution], perm_id: int, replaced: Execution, price: float) -> float:
    """The order's average price once ``replaced`` is corrected to ``price``."""
    superseded = {e.corrects for e in executions} | {replaced.exec_id}
    kept = [e for e in executions if e.perm_id == perm_id and e.exec_id not in superseded]
    shares = sum(e.shares for e in kept) + replaced.shares
    return round((sum(e.price * e.shares for e in kept) + price * replaced.shares) / shares, 6)


def _order_id_named(name: str, message: list[str]) -> int | None:
    """The order id in PLACE_ORDER (`3,orderId,…` at server version 157) or CANCEL_ORDER
    (`4,1,orderId`)."""
    position = {"PLACE_ORDER": 1, "CANCEL_ORDER": 2}.get(name)
    if position is None or len(message) <= position:
        return None
    try:
        return int(message[position])
    except ValueError:
        return None
