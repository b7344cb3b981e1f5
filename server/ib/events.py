"""Plain domain events the IB session hands to the execution engine.

The session turns ibapi callbacks (which arrive on ibapi's reader thread, with ibapi's mutable
objects) into these frozen dataclasses, so nothing downstream depends on ibapi or on threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# IB's "unset" double; commission reports carry it for fields IB leaves empty.
IB_UNSET_DOUBLE = 1.7976931348623157e308


def ib_double(value: float | None) -> float | None:
    """IB's unset sentinel (and anything at that magnitude) becomes None."""
    if value is None or value >= IB_UNSET_DOUBLE * 0.999:
        return None
    return value


@dataclass(frozen=True)
class Connected:
    endpoint: str
    client_id: int
    next_valid_id: int
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class Disconnected:
    endpoint: str
    reason: str


@dataclass(frozen=True)
class OrderStatusReport:
    """orderStatus, or the status carried by openOrder/completedOrder (which add orderRef)."""

    endpoint: str
    client_id: int
    order_id: int
    perm_id: int
    ib_status: str
    filled: float
    remaining: float
    avg_fill_price: float
    why_held: str
    order_ref: str
    received_at: datetime


@dataclass(frozen=True)
class ExecutionReport:
    """execDetails: one execution (fill) of an order; `req_id` is -1 when it came live."""

    endpoint: str
    req_id: int
    order_id: int
    perm_id: int
    client_id: int
    order_ref: str
    exec_id: str
    symbol: str
    sec_type: str
    currency: str
    exchange: str
    side: str
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    account: str
    trade_time: datetime | None
    received_at: datetime

    @property
    def exec_base(self) -> str:
        """The exec id without its last part: a correction shares it with what it corrects."""
        head, _, _ = self.exec_id.rpartition(".")
        return head or self.exec_id


@dataclass(frozen=True)
class ExecutionsEnd:
    endpoint: str
    req_id: int


@dataclass(frozen=True)
class CommissionReport:
    endpoint: str
    exec_id: str
    commission: float | None
    currency: str
    realized_pnl: float | None
    received_at: datetime


@dataclass(frozen=True)
class IbError:
    """error(): `req_id` is an order id for order errors, -1 for connection-level notices."""

    endpoint: str
    client_id: int
    req_id: int
    code: int
    message: str
    received_at: datetime


@dataclass(frozen=True)
class OpenOrdersEnd:
    endpoint: str


@dataclass(frozen=True)
class CompletedOrdersEnd:
    endpoint: str


IbEvent = (
    Connected
    | Disconnected
    | OrderStatusReport
    | ExecutionReport
    | ExecutionsEnd
    | CommissionReport
    | IbError
    | OpenOrdersEnd
    | CompletedOrdersEnd
)
