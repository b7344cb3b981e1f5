"""The order and run state machine, as pure functions (no I/O): what IB's words mean for an
order, and what a run's orders mean for the run. The recorder applies them inside a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from execgw.server.db.models import OrderStatus, RunStatus

_EXACT_KEPT = 4096
_exact: dict[float, Decimal] = {}  # the decimals of values seen: a flood repeats its quantities and prices


def as_shares(value: float) -> Decimal:
    """A share quantity (or a price) as the exact decimal it was written as. Quantities travel
    as doubles (IB's wire, our columns); adding them up as decimals means 0.1 + 0.2 shares is
    0.3, and no tolerance can let 1e-9 shares pass for a filled order."""
    exact = _exact.get(value)
    if exact is None:
        exact = Decimal(repr(float(value)))
        if len(_exact) < _EXACT_KEPT:
            _exact[value] = exact
    return exact


# States IB will not move an order out of by itself. INACTIVE is left out on purpose: IB reports
# Inactive for orders it may still work later (e.g. held for a locate).
DONE_STATES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})

_WORKING_IB_STATES = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted"})
ALIVE_IB_STATES = frozenset({"PreSubmitted", "Submitted"})  # IB holds the order and works it
_CANCELLED_IB_STATES = frozenset({"Cancelled", "ApiCancelled", "PendingCancel"})


def is_filled(filled_qty: float, ordered: float) -> bool:
    """Compared as doubles, which is exact: two doubles compare as the decimals of their reprs
    do (each repr lies in its own double's rounding interval). What needs the decimals is adding
    quantities up (OrderEntry.count_in), not comparing the sums."""
    return float(filled_qty) >= float(ordered)


def working_status(filled_qty: float, ordered: float) -> OrderStatus:
    """The state of an order IB is working, from the executions we hold."""
    if is_filled(filled_qty, ordered):
        return OrderStatus.FILLED
    if filled_qty > 0:  # a double's sign is its decimal's
        return OrderStatus.PARTIALLY_FILLED
    return OrderStatus.SUBMITTED


def status_from_ib(
    current: OrderStatus, ib_status: str, filled_qty: float, quantity: float, rejected: bool
) -> OrderStatus:
    """The order's next state after IB reported `ib_status` (orderStatus or openOrder).

    Filled quantity always comes from executions, never from IB's status words: IB repeats
    statuses, re-sends them after reconnects, and may report Filled before the execution.
    """
    if is_filled(filled_qty, quantity):
        return OrderStatus.FILLED
    if current in (OrderStatus.FILLED, OrderStatus.REJECTED):
        return current
    if ib_status in _CANCELLED_IB_STATES and ib_status != "PendingCancel":
        return OrderStatus.CANCELLED
    if current == OrderStatus.CANCELLED:
        return current
    if ib_status == "Inactive":
        return OrderStatus.REJECTED if rejected else OrderStatus.INACTIVE
    if ib_status in _WORKING_IB_STATES or ib_status == "PendingCancel":
        return working_status(filled_qty, quantity)
    if ib_status == "Filled":
        # IB says filled but the executions have not reached us yet: keep what executions say;
        # the execution (or the reconciliation at the run's end) completes it.
        return working_status(filled_qty, quantity)
    return current


@dataclass(frozen=True)
class OrderOutcome:
    client_order_id: str
    status: OrderStatus
    quantity: float
    filled_qty: float
    reason: str | None


def run_status(orders: Sequence[OrderOutcome], cancelled_by_caller: bool) -> tuple[RunStatus, str]:
    """A finished run's status and the reason that names each order that did not fill, and why."""
    filled = [o for o in orders if is_filled(o.filled_qty, o.quantity)]
    touched = [o for o in orders if as_shares(o.filled_qty) > 0]
    missing = [o for o in orders if not is_filled(o.filled_qty, o.quantity)]
    reason = "; ".join(_describe(o) for o in missing)
    if len(filled) == len(orders):
        return RunStatus.SUCCESS, f"all {len(orders)} orders filled"
    if touched:
        return RunStatus.PARTIAL, reason
    if cancelled_by_caller:
        return RunStatus.CANCELLED, "cancelled by the caller before anything filled; " + reason
    return RunStatus.FAILED, reason


def _describe(order: OrderOutcome) -> str:
    why = f": {order.reason}" if order.reason else ""
    return f"{order.client_order_id} {order.status.value} (filled {order.filled_qty:g}/{order.quantity:g}){why}"
