"""What the simulator knows about contracts, orders and executions.

These records are the truth a test checks the gateway's database against: every order the
simulator received, its final state, and every execution it reported (corrections included).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Contract:
    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    con_id: int = 0
    primary_exchange: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""


# Order statuses exactly as TWS spells them in orderStatus/openOrder.
PRE_SUBMITTED = "PreSubmitted"
SUBMITTED = "Submitted"
FILLED = "Filled"
CANCELLED = "Cancelled"
API_CANCELLED = "ApiCancelled"
INACTIVE = "Inactive"
FINAL_STATUSES = frozenset({FILLED, CANCELLED, API_CANCELLED, INACTIVE})


@dataclass
class Order:
    """An order as the simulator holds it, from PLACE_ORDER to its final status."""

    order_id: int
    client_id: int
    perm_id: int
    contract: Contract
    action: str  # BUY / SELL
    quantity: float
    order_type: str
    account: str
    order_ref: str
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = ""
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    why_held: str = ""
    reject_reason: str = ""
    cancel_requested: bool = False
    release_requested: bool = False
    placed_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    placed_in_tws: bool = False
    """Placed by a TWS user rather than an API client: reqCompletedOrders(apiOnly) leaves it out."""
    day: int = 0
    """IB's day (the simulator's count of new_day calls) the order was placed on."""
    completed_day: int | None = None
    """IB's day the order reached a final status on: reqCompletedOrders answers for today only."""
    expired: bool = False
    """A DAY order still working when IB's day rolled over."""
    waiting_for_open: bool = False
    """Acknowledged outside regular hours (399): held PreSubmitted until the market opens."""
    # Set whenever the order changes, so waiters can re-check their condition.
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    @property
    def remaining(self) -> float:
        return max(self.quantity - self.filled, 0.0)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass(frozen=True)
class Execution:
    """One execution report (an execDetails), as the simulator sent or would have sent it.

    A correction is an execution of its own whose ``corrects`` names the execId it replaces.
    """

    exec_id: str
    order_ref: str
    order_id: int
    perm_id: int
    client_id: int
    account: str
    contract: Contract
    side: str  # BOT / SLD
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    time: dt.datetime
    commission: float
    commission_currency: str = "USD"
    venue: str = ""  # the exchange it executed on (execDetails' exchange), not the routing one
    corrects: str | None = None
    day: int = 0
    """IB's day it happened on: reqExecutions answers for today only."""

    @property
    def symbol(self) -> str:
        return self.contract.symbol


@dataclass(frozen=True)
class OrderSnapshot:
    """A copy of an order's state, safe to hand to another thread."""

    order_id: int
    client_id: int
    perm_id: int
    order_ref: str
    account: str
    symbol: str
    action: str
    quantity: float
    order_type: str
    status: str
    filled: float
    avg_fill_price: float
    reject_reason: str
    cancel_requested: bool
    day: int = 0
    """IB's day the order was placed on (0 until the first ``new_day``)."""
    placed_in_tws: bool = False

    @classmethod
    def of(cls, order: Order) -> OrderSnapshot:
        return cls(
            order_id=order.order_id,
            client_id=order.client_id,
            perm_id=order.perm_id,
            order_ref=order.order_ref,
            account=order.account,
            symbol=order.contract.symbol,
            action=order.action,
            quantity=order.quantity,
            order_type=order.order_type,
            status=order.status,
            filled=order.filled,
            avg_fill_price=order.avg_fill_price,
            reject_reason=order.reject_reason,
            cancel_requested=order.cancel_requested,
            day=order.day,
            placed_in_tws=order.placed_in_tws,
        )


@dataclass(frozen=True)
class Refusal:
    """An order TWS answered with an error and never created (10268, 321, an error outcome with
    no status): no openOrder, no orderStatus, nothing in ``orders()``."""

    client_id: int
    order_id: int
    order_ref: str
    code: int
    message: str


@dataclass(frozen=True)
class ReceivedOrder:
    """One PLACE_ORDER as TWS received it, whatever it answered, as TWS's API message log records
    every message a client sends. ``refused_with`` is None when IB created the order (it is then
    in ``orders()``, even if rejected later with 201), else the error code it was answered with
    and no order created (103 for a reused order id, 10268, 321, …)."""

    client_id: int
    order_id: int
    order_ref: str
    symbol: str
    action: str
    quantity: float
    refused_with: int | None
    # When it arrived (time.time(), this machine's wall clock), as TWS's API log stamps each
    # message: a benchmark on the same machine splits submission time at IB's door with it.
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ReceivedRequest:
    """One API message after START_API, by its name (PLACE_ORDER, REQ_EXECUTIONS, …), in the
    order TWS received it, paced out or not: what TWS's API message log shows."""

    client_id: int
    name: str
    order_id: int | None = None
    """The order a PLACE_ORDER or CANCEL_ORDER names; None for other messages."""
