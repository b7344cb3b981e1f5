"""The database reads behind the operator's status and SettleOrder, on the readers' pool.

Kept apart from store.py: they serve people, not the trading path, and read only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from execgw.server.db.models import OrderStatus, RunStatus, TradeOrder, TradeRun

_orders = TradeOrder.__table__.c
_runs = TradeRun.__table__.c
DONE = (OrderStatus.FILLED.value, OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value)
MAX_LISTED = 500  # rows per list in one status answer: a status is read by a person


@dataclass(frozen=True)
class OrderFacts:
    """What SettleOrder decides on: the order, where it was placed, and its run's mode and account."""

    id: int
    client_order_id: str
    run_id: str
    status: str
    ib_endpoint: str | None
    ib_client_id: int | None
    mode: str
    run_account: str | None


@dataclass(frozen=True)
class OpenRunFacts:
    run_id: str
    mode: str
    account: str | None
    orders: int
    open_orders: int
    deadline_at: datetime | None
    created_at: datetime
    submitted_by: str | None


@dataclass(frozen=True)
class UnknownOrderFacts:
    client_order_id: str
    run_id: str
    mode: str
    run_account: str | None
    account: str | None
    ib_order_id: int | None
    created_at: datetime
    status_reason: str | None
    symbol: str
    side: str
    quantity: float


def order_named(session: Session, client_order_id: str) -> OrderFacts | None:
    """The order with this client_order_id (unique across runs), or None."""
    row = session.execute(
        select(_orders.id, _orders.client_order_id, _orders.run_id, _orders.status, _orders.ib_endpoint,
               _orders.ib_client_id, _runs.mode, _runs.account)
        .join(TradeRun.__table__, _runs.id == _orders.run_id)
        .where(_orders.client_order_id == client_order_id)
    ).first()
    if row is None or row.client_order_id != client_order_id:
        # MariaDB's collation ignores case and trailing spaces: an id differing only so is another id.
        return None
    return OrderFacts(row.id, row.client_order_id, row.run_id, row.status, row.ib_endpoint, row.ib_client_id,
                      row.mode, row.account)


def open_runs(session: Session, run_ids: Collection[str]) -> list[OpenRunFacts]:
    """Those of `run_ids` still RUNNING, oldest first, with their order counts."""
    if not run_ids:
        return []
    open_count = func.sum(case((_orders.status.not_in(DONE), 1), else_=0))
    rows = session.execute(
        select(_runs.id, _runs.mode, _runs.account, _runs.deadline_at, _runs.created_at, _runs.submitted_by,
               func.count(_orders.id), open_count)
        .join(TradeOrder.__table__, _orders.run_id == _runs.id, isouter=True)
        .where(_runs.id.in_(list(run_ids)[:MAX_LISTED]), _runs.status == RunStatus.RUNNING.value)
        .group_by(_runs.id, _runs.mode, _runs.account, _runs.deadline_at, _runs.created_at, _runs.submitted_by)
        .order_by(_runs.created_at, _runs.id)
    ).all()
    return [OpenRunFacts(r[0], r[1], r[2], r[6], int(r[7] or 0), r[3], r[4], r[5]) for r in rows]


def unknown_orders_at(session: Session, endpoints: Collection[tuple[str, int]]) -> list[UnknownOrderFacts]:
    """UNKNOWN orders placed through these (endpoint address, client id) pairs, oldest first."""
    if not endpoints:
        return []
    placed_here = or_(*(and_(_orders.ib_endpoint == address, _orders.ib_client_id == client_id)
                        for address, client_id in endpoints))
    rows = session.execute(
        select(_orders.client_order_id, _orders.run_id, _runs.mode, _runs.account, _orders.account,
               _orders.ib_order_id, _orders.created_at, _orders.status_reason, _orders.symbol, _orders.side,
               _orders.quantity)
        .join(TradeRun.__table__, _runs.id == _orders.run_id)
        .where(_orders.status == OrderStatus.UNKNOWN.value, placed_here)
        .order_by(_orders.created_at, _orders.id)
        .limit(MAX_LISTED)
    ).all()
    return [UnknownOrderFacts(*row) for row in rows]
