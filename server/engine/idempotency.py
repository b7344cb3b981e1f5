"""SubmitRun is idempotent by client_order_id: a request that repeats a run exactly gets that run
back and nothing is sent again; a request that reuses a client_order_id otherwise is a conflict,
never a second order."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from execgw.server.db.models import TradeOrder, TradeRun
from execgw.server.engine.runs import ClientOrderIdConflict
from execgw.server.engine.validation import OrderRequest, RunRequest


def existing_run(session: Session, request: RunRequest) -> TradeRun | None:
    """The run these client_order_ids already belong to, if the request repeats it exactly;
    None if none of them is known; ClientOrderIdConflict otherwise."""
    wanted = {o.client_order_id: o for o in request.orders}
    found = list(session.scalars(select(TradeOrder).where(TradeOrder.client_order_id.in_(wanted))))
    if not found:
        return None
    first = found[0]
    if len({o.run_id for o in found}) > 1:
        raise ClientOrderIdConflict(first.client_order_id, "belongs to another run")
    run = session.scalar(select(TradeRun).where(TradeRun.id == first.run_id).options(selectinload(TradeRun.orders)))
    assert run is not None, "trade_orders.run_id is a foreign key"
    stored = {o.client_order_id: o for o in run.orders}
    for client_order_id in wanted:
        if client_order_id not in stored:
            taken = next(iter(stored))
            raise ClientOrderIdConflict(taken, f"is already in run {run.id}, which has no {client_order_id!r}")
    for client_order_id, order in stored.items():
        spec = wanted.get(client_order_id)
        if spec is None:
            raise ClientOrderIdConflict(client_order_id, f"run {run.id} has more orders than this request")
        if _order_differs(order, spec) or run.mode != request.mode or (run.account or "") != request.account:
            raise ClientOrderIdConflict(client_order_id, f"was already submitted in run {run.id} with different contents")
    return run


def _order_differs(order: TradeOrder, spec: OrderRequest) -> bool:
    return (
        order.symbol, order.sec_type, order.exchange, order.primary_exchange or "", order.currency,
        order.side, order.quantity, order.order_type,
    ) != (
        spec.symbol, spec.sec_type, spec.exchange, spec.primary_exchange, spec.currency,
        spec.side, spec.quantity, spec.order_type,
    )
