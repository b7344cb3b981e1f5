"""Applies IB's reports to the database inside one transaction, and writes the event rows.

This is the seed's `_apply_order_status` and `_record_fill`, grown up: IB's duplicates are
ignored, a correction replaces the execution it corrects, a commission is merged into its fill,
and every change appends an event to the run's log in the same transaction as the change.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from execgw.server.db.models import (
    EventKind,
    OrderStatus,
    RunStatus,
    TradeEvent,
    TradeFill,
    TradeOrder,
    TradeRun,
    utcnow,
)
from execgw.server.engine import state
from execgw.server.ib import events as ib
from execgw.server.ib.error_codes import NOT_CONNECTED_CODE, OrderErrorKind, classify_order_error

log = logging.getLogger(__name__)


def naive_utc(moment: datetime | None) -> datetime | None:
    """Columns hold naive UTC (MySQL DATETIME has no zone)."""
    return None if moment is None else moment.replace(tzinfo=None)


def order_status_payload(
    order: TradeOrder, previous: str, ib_status: str, reason: str | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "client_order_id": order.client_order_id,
        "ib_order_id": order.ib_order_id or 0,
        "status": f"ORDER_STATUS_{order.status}",
        "previous_status": f"ORDER_STATUS_{previous}",
        "filled_quantity": order.filled_qty,
        "remaining_quantity": float(max(state.as_shares(order.quantity) - state.as_shares(order.filled_qty), 0)),
        "ib_perm_id": order.ib_perm_id or 0,
        "ib_status": ib_status,
        "reason": reason or "",
    }
    if order.avg_fill_price is not None:
        payload["avg_fill_price"] = order.avg_fill_price
    return payload


class Recorder:
    """One transaction's state changes. Collects the event rows it writes, in sequence order."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events: list[TradeEvent] = []
        # Per-transaction lookups. The store runs the work without autoflush (a flush per query
        # was most of the cost under a flood), so what this transaction added is found here.
        self._orders: dict[tuple[object, ...], TradeOrder] = {}
        self._runs: dict[str, TradeRun] = {}
        self._fills: dict[str, TradeFill | None] = {}
        self._current_by_base: dict[tuple[int, str], TradeFill | None] = {}
        self._totals: dict[int, list[Decimal]] = {}  # order id → [shares, notional] of current fills
        # Orders IB reported alive after we had taken an unknown error code for a refusal.
        self.revived: list[TradeOrder] = []

    # -- the event log ------------------------------------------------------------------------

    def emit(
        self,
        run: TradeRun,
        kind: EventKind,
        payload: dict[str, Any],
        *,
        order: TradeOrder | None = None,
        ib_time: datetime | None = None,
    ) -> TradeEvent:
        run.last_sequence += 1
        run.updated_at = utcnow()
        event = TradeEvent(
            run_id=run.id,
            sequence=run.last_sequence,
            kind=kind.value,
            order_id=order.id if order is not None else None,
            payload=payload,
            ib_time=naive_utc(ib_time),
            stored_at=utcnow(),
        )
        self.session.add(event)
        self.events.append(event)
        return event

    def run(self, run_id: str) -> TradeRun | None:
        if run_id not in self._runs:
            run = self.session.get(TradeRun, run_id)
            if run is None:
                return None
            self._runs[run_id] = run
        return self._runs[run_id]

    def run_of(self, order: TradeOrder) -> TradeRun:
        run = self._runs.get(order.run_id)
        if run is None:
            run = self.session.get(TradeRun, order.run_id)
            assert run is not None, "trade_orders.run_id is a foreign key"
            self._runs[order.run_id] = run
        return run

    def set_order_status(
        self, order: TradeOrder, status: OrderStatus, ib_status: str, reason: str | None = None,
        ib_time: datetime | None = None,
    ) -> None:
        previous = order.status
        if previous == status:
            return
        order.status = status.value
        self.emit(
            self.run_of(order),
            EventKind.ORDER_STATUS,
            order_status_payload(order, previous, ib_status, reason),
            order=order,
            ib_time=ib_time,
        )

    # -- finding the order IB means ---------------------------------------------------------------

    def find_order(
        self, *, order_ref: str, perm_id: int, endpoint: str, client_id: int, order_id: int
    ) -> TradeOrder | None:
        """By orderRef, then permId, then IB order id, and only among the orders this gateway
        placed through that endpoint and client id. orderStatus carries no orderRef; an order id
        alone is ambiguous across endpoints, client ids and rolled-back Gateways; and an orderRef
        is not unique at IB: another API client or a TWS user may use the same one (IB shows their
        orders to the master client id and in reqCompletedOrders)."""
        lookups: list[tuple[tuple[object, ...], Any]] = []
        if order_ref:
            lookups.append((("ref", order_ref), TradeOrder.client_order_id == order_ref))
        if perm_id > 0:
            # permIds are IB's, unique per account; scoped to the endpoint all the same, so that a
            # different TWS (a simulator restarted on a new port) can never claim our orders.
            lookups.append((("perm", endpoint, perm_id),
                            (TradeOrder.ib_perm_id == perm_id) & (TradeOrder.ib_endpoint == endpoint)))
        if order_id > 0:
            lookups.append((
                ("id", endpoint, client_id, order_id),
                (TradeOrder.ib_endpoint == endpoint) & (TradeOrder.ib_client_id == client_id)
                & (TradeOrder.ib_order_id == order_id),
            ))
        for key, condition in lookups:
            order = self._orders.get(key)
            if order is None:
                order = self.session.scalar(select(TradeOrder).where(condition))
            if order is not None:
                self._remember(order)
                if not _placed_by(order, endpoint=endpoint, client_id=client_id, order_id=order_id, perm_id=perm_id):
                    log.info("IB report for orderRef %r permId %d from client id %d is not our order %s; ignored",
                             order_ref, perm_id, client_id, order.client_order_id)
                    return None
                return order
        return None

    def prefetch(self, reports: list[ib.IbEvent]) -> None:
        """Loads what a batch of IB reports will look up in three queries instead of several per
        report: under a flood, per-report queries were the writer's whole cost."""
        refs = {r.order_ref for r in reports if isinstance(r, ib.ExecutionReport | ib.OrderStatusReport) and r.order_ref}
        perms = {r.perm_id for r in reports if isinstance(r, ib.ExecutionReport | ib.OrderStatusReport) and r.perm_id > 0}
        executions = [r for r in reports if isinstance(r, ib.ExecutionReport)]
        exec_ids = {r.exec_id for r in executions} | {r.exec_id for r in reports if isinstance(r, ib.CommissionReport)}
        if refs or perms:
            for order in self.session.scalars(
                select(TradeOrder).where(TradeOrder.client_order_id.in_(refs) | TradeOrder.ib_perm_id.in_(perms))
            ):
                self._remember(order)
        if exec_ids:
            self._fills.update(dict.fromkeys(exec_ids))
            for fill in self.session.scalars(select(TradeFill).where(TradeFill.exec_id.in_(exec_ids))):
                self._fills[fill.exec_id] = fill
        bases = {r.exec_base for r in executions}
        if bases:
            for execution in executions:
                order = self._orders.get(("ref", execution.order_ref)) or self._orders.get(
                    ("perm", execution.endpoint, execution.perm_id))
                if order is not None:
                    self._current_by_base.setdefault((order.id, execution.exec_base), None)
            for fill in self.session.scalars(
                select(TradeFill).where(TradeFill.exec_base.in_(bases), TradeFill.superseded_by.is_(None))
            ):
                self._current_by_base[(fill.order_id, fill.exec_base or fill.exec_id)] = fill

    def _remember(self, order: TradeOrder) -> None:
        self._orders[("ref", order.client_order_id)] = order
        if order.ib_perm_id:
            self._orders[("perm", order.ib_endpoint, order.ib_perm_id)] = order
        if order.ib_order_id:
            self._orders[("id", order.ib_endpoint, order.ib_client_id, order.ib_order_id)] = order

    def _set_perm_id(self, order: TradeOrder, perm_id: int) -> None:
        order.ib_perm_id = perm_id
        self._orders[("perm", order.ib_endpoint, perm_id)] = order

    def order_by_id(self, order_id: int) -> TradeOrder:
        order = self.session.get(TradeOrder, order_id)
        assert order is not None, "trade_fills.order_id is a foreign key"
        return order

    def fill(self, exec_id: str) -> TradeFill | None:
        if exec_id not in self._fills:
            self._fills[exec_id] = self.session.scalar(select(TradeFill).where(TradeFill.exec_id == exec_id))
        return self._fills[exec_id]

    # -- IB reports --------------------------------------------------------------------------------

    def apply_order_status(self, report: ib.OrderStatusReport) -> TradeOrder | None:
        order = self.find_order(
            order_ref=report.order_ref, perm_id=report.perm_id, endpoint=report.endpoint,
            client_id=report.client_id, order_id=report.order_id,
        )
        if order is None:
            log.debug("status %s for an order this gateway does not know: %s", report.ib_status, report)
            return None
        if report.perm_id > 0 and order.ib_perm_id != report.perm_id:
            self._set_perm_id(order, report.perm_id)
        order.last_status_ts = naive_utc(report.received_at)
        current = OrderStatus(order.status)
        if current == OrderStatus.REJECTED and report.ib_status in state.ALIVE_IB_STATES and _refused_by_unknown_code(order):
            # We took an error code we do not know for a refusal; IB now says the order works.
            log.warning("%s: IB reports %s after an unclassified error (%s); the order is working",
                        order.client_order_id, report.ib_status, order.status_reason)
            order.status_reason = None
            current = OrderStatus.SUBMITTED
            self.revived.append(order)
        new_status = state.status_from_ib(
            current, report.ib_status, order.filled_qty, order.quantity,
            rejected=current == OrderStatus.REJECTED,
        )
        reason = order.status_reason if new_status in (OrderStatus.CANCELLED, OrderStatus.REJECTED) else None
        self.set_order_status(order, new_status, report.ib_status, reason, report.received_at)
        return order

    def record_fill(self, execution: ib.ExecutionReport) -> TradeFill | None:
        """Stores a new execution; returns None for one already stored or for an unknown order."""
        order = self.find_order(
            order_ref=execution.order_ref, perm_id=execution.perm_id, endpoint=execution.endpoint,
            client_id=execution.client_id, order_id=execution.order_id,
        )
        if order is None:
            log.warning("execution %s for an order this gateway does not know; not stored", execution.exec_id)
            return None
        stored = self.fill(execution.exec_id)
        if stored is not None:
            if stored.order_id != order.id:
                log.error("exec id %s reported for order %s but stored for another order; kept the first",
                          execution.exec_id, order.client_order_id)
            return None  # IB repeats execDetails (and reqExecutions re-sends them): one row each.
        if execution.perm_id > 0 and order.ib_perm_id is None:
            self._set_perm_id(order, execution.perm_id)
        base_key = (order.id, execution.exec_base)
        if base_key not in self._current_by_base:
            self._current_by_base[base_key] = self.session.scalar(
                select(TradeFill).where(
                    TradeFill.order_id == order.id,
                    TradeFill.exec_base == execution.exec_base,
                    TradeFill.superseded_by.is_(None),
                )
            )
        corrected = self._current_by_base[base_key]
        totals = self._fill_totals(order)
        if corrected is not None and _version(execution.exec_id) < _version(corrected.exec_id):
            # The original arriving after its correction (a replay, a reconnect): it is history,
            # stored as replaced by the correction we hold, and counts for nothing.
            return self._store_replaced(order, execution, corrected)
        if corrected is not None:
            corrected.superseded_by = execution.exec_id
            totals[0] -= state.as_shares(corrected.filled_qty)
            totals[1] -= state.as_shares(corrected.filled_qty) * Decimal(repr(float(corrected.price)))
        fill = self._fill_row(order, execution)
        self.session.add(fill)
        self._fills[fill.exec_id] = fill
        self._current_by_base[base_key] = fill
        totals[0] += state.as_shares(fill.filled_qty)
        totals[1] += state.as_shares(fill.filled_qty) * Decimal(repr(float(fill.price)))
        # Filled quantity and average price come from the current (not superseded) executions.
        order.filled_qty = float(totals[0])
        order.avg_fill_price = float(totals[1] / totals[0]) if totals[0] > 0 else None
        run = self.run_of(order)
        self.emit(
            run,
            EventKind.FILL,
            {
                "client_order_id": order.client_order_id,
                "fill": fill_payload(fill),
                "corrects_exec_id": corrected.exec_id if corrected is not None else "",
                "order_filled_quantity": order.filled_qty,
                "order_avg_fill_price": order.avg_fill_price or 0.0,
            },
            order=order,
            ib_time=execution.trade_time or execution.received_at,
        )
        current = OrderStatus(order.status)
        if state.is_filled(order.filled_qty, order.quantity):
            new_status = OrderStatus.FILLED
        elif current in (OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED, OrderStatus.UNKNOWN,
                         OrderStatus.PARTIALLY_FILLED, OrderStatus.INACTIVE):
            new_status = state.working_status(order.filled_qty, order.quantity)
        else:
            new_status = current  # a late fill on a cancelled order: still cancelled, now with a fill
        self.set_order_status(order, new_status, "execution", None, execution.received_at)
        return fill

    def _store_replaced(self, order: TradeOrder, execution: ib.ExecutionReport, current: TradeFill) -> TradeFill:
        fill = self._fill_row(order, execution)
        fill.superseded_by = current.exec_id
        self.session.add(fill)
        self._fills[fill.exec_id] = fill
        self.emit(
            self.run_of(order),
            EventKind.FILL,
            {
                "client_order_id": order.client_order_id,
                "fill": fill_payload(fill),
                "corrects_exec_id": "",
                "order_filled_quantity": order.filled_qty,
                "order_avg_fill_price": order.avg_fill_price or 0.0,
            },
            order=order,
            ib_time=execution.trade_time or execution.received_at,
        )
        return fill

    def _fill_row(self, order: TradeOrder, execution: ib.ExecutionReport) -> TradeFill:
        return TradeFill(
            order_id=order.id,
            exec_id=execution.exec_id,
            exec_base=execution.exec_base,
            filled_qty=execution.shares,
            price=execution.price,
            trade_time=naive_utc(execution.trade_time),
            currency=execution.currency or None,
            exchange=execution.exchange or None,
            side=execution.side or None,
            account=execution.account or None,
            ib_perm_id=execution.perm_id or None,
            raw_payload=_json_safe(asdict(execution)),
        )

    def _fill_totals(self, order: TradeOrder) -> list[Decimal]:
        """[shares, notional] of the order's current executions, exact: read once per
        transaction, then kept up to date as this transaction adds fills."""
        totals = self._totals.get(order.id)
        if totals is None:
            totals = [Decimal(0), Decimal(0)]
            for qty, price in self.session.execute(
                select(TradeFill.filled_qty, TradeFill.price)
                .where(TradeFill.order_id == order.id, TradeFill.superseded_by.is_(None))
            ):
                totals[0] += state.as_shares(qty)
                totals[1] += state.as_shares(qty) * Decimal(repr(float(price)))
            self._totals[order.id] = totals
        return totals

    def merge_commission(self, report: ib.CommissionReport) -> bool:
        """False when the execution is not stored yet (IB may send the commission first)."""
        fill = self.fill(report.exec_id)
        if fill is None:
            return False
        if (
            fill.commission == report.commission
            and (fill.commission_currency or "") == report.currency
            and fill.realized_pnl == report.realized_pnl
        ):
            return True  # a repeat (reqExecutions re-sends commission reports)
        fill.commission = report.commission
        fill.commission_currency = report.currency or None
        fill.realized_pnl = report.realized_pnl
        order = self.order_by_id(fill.order_id)
        payload: dict[str, Any] = {
            "client_order_id": order.client_order_id,
            "exec_id": fill.exec_id,
            "commission": report.commission if report.commission is not None else 0.0,
            "currency": report.currency,
        }
        if report.realized_pnl is not None:
            payload["realized_pnl"] = report.realized_pnl
        self.emit(self.run_of(order), EventKind.COMMISSION, payload, order=order, ib_time=report.received_at)
        return True

    def apply_error(self, error: ib.IbError) -> TradeOrder | None:
        """An error addressed to one of our order ids. Warnings and answers to our cancels leave
        the order as it is; 202 cancels it; any other code ends it REJECTED now, not at the run's
        deadline (most refusals come with no order status at all)."""
        if error.req_id <= 0:
            return None
        order = self.find_order(
            order_ref="", perm_id=0, endpoint=error.endpoint, client_id=error.client_id, order_id=error.req_id
        )
        if order is None:
            return None
        reason = f"IB {error.code}: {error.message}"
        current = OrderStatus(order.status)
        if error.code == NOT_CONNECTED_CODE:
            # ibapi refused to write the order to a socket that had just closed; whether an earlier
            # attempt reached IB is for reconciliation by orderRef to tell.
            if current == OrderStatus.PENDING_SUBMIT:
                self.set_order_status(order, OrderStatus.UNKNOWN, f"error {error.code}", reason, error.received_at)
            return order
        kind = classify_order_error(error.code)
        if kind in (OrderErrorKind.WARNING, OrderErrorKind.CANCEL_ANSWER):
            return order
        if kind == OrderErrorKind.CANCELLED:
            if current not in (OrderStatus.FILLED, OrderStatus.REJECTED):
                order.status_reason = reason
                self.set_order_status(order, OrderStatus.CANCELLED, f"error {error.code}", reason, error.received_at)
            return order
        if current in state.DONE_STATES:
            return order  # already settled; a fill arriving later still corrects it
        order.status_reason = reason
        self.set_order_status(order, OrderStatus.REJECTED, f"error {error.code}", reason, error.received_at)
        return order

    # -- the gateway's own decisions about orders ------------------------------------------------

    def cancel_in_books(self, order: TradeOrder, ib_status: str, reason: str) -> None:
        order.status_reason = reason
        self.set_order_status(order, OrderStatus.CANCELLED, ib_status, reason)

    def withdraw(self, order_id: int) -> None:
        """An order whose run ended while it waited for its pacing slot: it never went to IB."""
        order = self.order_by_id(order_id)
        if order.status == OrderStatus.PENDING_SUBMIT.value:
            self.cancel_in_books(order, "withdrawn",
                                 "withdrawn before it was sent to IB: the run ended first (deadline or cancel)")

    def mark_unknown(self, order_ids: list[int], why: str) -> None:
        for order_id in order_ids:
            order = self.order_by_id(order_id)
            if OrderStatus(order.status) not in state.DONE_STATES:
                self.set_order_status(order, OrderStatus.UNKNOWN, why, why)

    def resolve_unknown(self, endpoint: str, client_id: int, ib_day_began: datetime) -> list[TradeOrder]:
        """After a complete reconciliation, an UNKNOWN order IB reported nothing about never
        reached IB: it is cancelled in our books, and never sent again.

        Only if IB's answer covers it: IB reports executions and completed orders of its current
        day only, so silence about an order created before that day began proves nothing. Such an
        order stays UNKNOWN, with the reason, until IB reports it or an operator settles it."""
        orders = list(self.session.scalars(
            select(TradeOrder).where(
                TradeOrder.status == OrderStatus.UNKNOWN.value,
                TradeOrder.ib_endpoint == endpoint,
                TradeOrder.ib_client_id == client_id,
            )
        ))
        began = naive_utc(ib_day_began)
        resolved = []
        for order in orders:
            if began is not None and order.created_at is not None and order.created_at < began:
                if not order.status_reason:
                    log.warning("%s stays UNKNOWN: created %sZ, before IB's current day began (%sZ); IB's "
                                "reconciliation cannot tell whether it reached IB", order.client_order_id,
                                order.created_at.isoformat(timespec="seconds"), began.isoformat(timespec="seconds"))
                    order.status_reason = (
                        "created before IB's current day began, which IB's reports no longer cover: "
                        "check it in TWS / Account Management, then settle it"
                    )
                continue
            self.cancel_in_books(order, "reconciliation",
                                 "IB has no record of this order after reconciliation: it never reached IB")
            resolved.append(order)
        return resolved

    def all_done(self, run_id: str) -> bool:
        """The run is RUNNING and none of its orders can change without us acting."""
        run = self.run(run_id)
        if run is None or run.status != RunStatus.RUNNING.value:
            return False
        return all(OrderStatus(o.status) in state.DONE_STATES for o in self.orders_of(run_id))

    # -- runs ----------------------------------------------------------------------------------------

    def orders_of(self, run_id: str) -> list[TradeOrder]:
        return list(self.session.scalars(select(TradeOrder).where(TradeOrder.run_id == run_id).order_by(TradeOrder.id)))

    def finish_run(self, run: TradeRun, cancelled_by_caller: bool) -> RunStatus:
        """Decides the run's status from its orders; emits a final run_status event if it changed."""
        outcomes = [
            state.OrderOutcome(
                o.client_order_id, OrderStatus(o.status), o.quantity, o.filled_qty, o.status_reason
            )
            for o in self.orders_of(run.id)
        ]
        status, reason = state.run_status(outcomes, cancelled_by_caller)
        previous = run.status
        first_finish = run.finished_at is None
        if previous == status.value and not first_finish:
            return status
        run.status = status.value
        run.status_reason = reason
        run.finished_at = run.finished_at or utcnow()
        self.emit(
            run,
            EventKind.RUN_STATUS,
            {
                "status": f"RUN_STATUS_{status.value}",
                "previous_status": f"RUN_STATUS_{previous}",
                "reason": reason,
                "final": True,
            },
        )
        return status

    def refresh_finished_run(self, order: TradeOrder) -> None:
        """A fill after the run finished still counts: re-decide the finished run's status."""
        run = self.run_of(order)
        if run.status != RunStatus.RUNNING.value:
            self.finish_run(run, cancelled_by_caller=run.status == RunStatus.CANCELLED.value)


def fill_payload(fill: TradeFill) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "exec_id": fill.exec_id,
        "quantity": fill.filled_qty,
        "price": fill.price,
        "commission_currency": fill.commission_currency or "",
        "currency": fill.currency or "",
        "exchange": fill.exchange or "",
        "account": fill.account or "",
        "superseded_by": fill.superseded_by or "",
    }
    if fill.trade_time is not None:
        payload["trade_time"] = fill.trade_time.isoformat() + "Z"
    if fill.commission is not None:
        payload["commission"] = fill.commission
    if fill.realized_pnl is not None:
        payload["realized_pnl"] = fill.realized_pnl
    return payload


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}


def _version(exec_id: str) -> tuple[int, str]:
    """The correction number: IB's exec id ends in .01 for the original, .02 for its first
    correction, and so on."""
    last = exec_id.rpartition(".")[2]
    return (int(last), "") if last.isdigit() else (-1, last)


def _placed_by(order: TradeOrder, *, endpoint: str, client_id: int, order_id: int, perm_id: int) -> bool:
    """Whether a report (which found `order` by orderRef, permId or order id) is about it.

    Reports name the IB client that placed the order, except completedOrder (and openOrder for a
    TWS user's order), which carry neither an order id nor a client id: those count only when
    they carry the permId we already hold for the order, never by orderRef alone."""
    if order.ib_endpoint != endpoint:
        return False
    if order.ib_perm_id and perm_id > 0 and order.ib_perm_id != perm_id:
        return False
    if order_id > 0 or client_id > 0:
        return order.ib_client_id == client_id
    return bool(order.ib_perm_id) and order.ib_perm_id == perm_id


def _refused_by_unknown_code(order: TradeOrder) -> bool:
    """The order was REJECTED on an error code this gateway does not classify (reason 'IB <code>: ...')."""
    reason = order.status_reason or ""
    head = reason[3:].split(":", 1)[0] if reason.startswith("IB ") else ""
    return head.isdigit() and classify_order_error(int(head)) == OrderErrorKind.UNKNOWN
