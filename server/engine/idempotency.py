"""SubmitRun is idempotent by client_order_id: a request that repeats a run exactly gets that run
back and nothing is sent again; a request that reuses a client_order_id otherwise is a conflict,
never a second order."""

from __future__ import annotations

from execgw.server.db.models import TradeOrder, TradeRun
from execgw.server.engine.runs import ClientOrderIdConflict
from execgw.server.engine.validation import OrderRequest, RunRequest


def existing_run(holding: list[TradeRun], request: RunRequest) -> TradeRun | None:
    """The run these client_order_ids already belong to, if the request repeats it exactly;
    None if none of them is known; ClientOrderIdConflict otherwise. `holding` are the stored
    runs (with their orders) that hold any of the request's client_order_ids."""
    wanted = {o.client_order_id: o for o in request.orders}
    if not holding:
        return None
    if len(holding) > 1:
        taken = next(o.client_order_id for o in holding[0].orders if o.client_order_id in wanted)
        raise ClientOrderIdConflict(taken, "belongs to another run")
    run = holding[0]
    stored = {o.client_order_id: o for o in run.orders}
    if run.submitted_by != request.submitted_by:
        # client_order_ids are global keys: another caller's identical request must neither
        # create a second run nor be shown the first one (it may not be allowed to read it).
        taken = next(c for c in wanted if c in stored)
        raise ClientOrderIdConflict(taken, "is already used by another caller's run")
    for client_order_id in wanted:
        if client_order_id not in stored:
            taken = next(c for c in wanted if c in stored)
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
