"""Applies IB's reports to the database inside one transaction, and writes the event rows.

This is the seed's `_apply_order_status` and `_record_fill`, grown up: IB's duplicates are
ignored, a correction replaces the execution it corrects, a commission is merged into its fill,
and every change appends an event to the run's log in the same transaction as the change.

The runs, orders and fills it reads come from the writer's ledger (kept between transactions,
loaded on first use, a query per batch at most); what it changes is written at the end of the
transaction in multi-row statements (writes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from execgw.server.db.models import EventKind, OrderStatus, RunStatus, TradeOrder, TradeRun, utcnow
from execgw.server.engine import state
from execgw.server.engine.entries import FillEntry, OrderEntry, RunEntry
from execgw.server.engine.ledger import Ledger, OrderKey, order_keys
from execgw.server.engine.stored_event import StoredEvent
from execgw.server.engine.writes import PendingWrites
from execgw.server.ib import events as ib
from execgw.server.ib.error_codes import NOT_CONNECTED_CODE, OrderErrorKind, classify_order_error

log = logging.getLogger(__name__)

_EXECUTION_FIELDS = tuple(f.name for f in fields(ib.ExecutionReport))
_execution_values = attrgetter(*_EXECUTION_FIELDS)
_EXECUTION_DICT = not hasattr(ib.ExecutionReport, "__slots__")  # its instances keep their fields in __dict__
_orders = TradeOrder.__table__.c
_runs = TradeRun.__table__.c

_BEFORE_IBS_DAY = ("created before IB's current day began, which IB's reports no longer cover: "
                   "check it in TWS / Account Management, then settle it")


def naive_utc(moment: datetime | None) -> datetime | None:
    """Columns hold naive UTC (MySQL DATETIME has no zone)."""
    if moment is None or moment.tzinfo is None:
        return moment
    # The executions of a replay share their trade times (the same objects: wrapper.py parses
    # each text once), and each is made naive for its fill row and for its fill event.
    known = _naive.get(id(moment))
    if known is not None and known[0] is moment:
        return known[1]
    naive = moment.replace(tzinfo=None)
    if len(_naive) >= NAIVE_KEPT:
        _naive.clear()
    _naive[id(moment)] = (moment, naive)  # the aware one kept alive with it: its id stays its own
    return naive


NAIVE_KEPT = 64
_naive: dict[int, tuple[datetime, datetime]] = {}


class OrderColumns(Protocol):
    """What an order status event says of an order: a trade_orders row or the ledger's entry."""

    client_order_id: str
    ib_order_id: int | None
    ib_perm_id: int | None
    status: str
    quantity: float
    filled_qty: float
    avg_fill_price: float | None


def order_status_payload(
    order: OrderColumns, previous: str, ib_status: str, reason: str | None = None
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
    """One transaction's state changes. Collects the events it writes, in sequence order."""

    def __init__(self, session: Session, ledger: Ledger) -> None:
        self.session = session
        self._ledger = ledger
        self._writes = PendingWrites()
        self.events: list[StoredEvent] = []  # those written so far
        # What this transaction already looked for in the database and did not find: asked once.
        self._absent_orders: set[OrderKey] = set()
        self._checked_exec_ids: set[str] = set()
        # Orders IB reported alive after we had taken an unknown error code for a refusal.
        self.revived: list[OrderEntry] = []

    def write(self) -> None:
        """Writes what the transaction changed so far (the store calls it before the commit)."""
        self.events += self._writes.write(self.session)

    # -- the event log ------------------------------------------------------------------------

    def emit(
        self,
        run: RunEntry | TradeRun,
        kind: EventKind,
        payload: dict[str, Any],
        *,
        order: OrderEntry | TradeOrder | None = None,
        ib_time: datetime | None = None,
    ) -> None:
        """Appends an event to the run's log. `run` is the ledger's, or a run the ORM is writing
        in this transaction (a new one), whose sequence the ORM's flush then writes."""
        run.last_sequence += 1
        if isinstance(run, RunEntry):
            self._writes.run_changed(run)
        else:
            run.updated_at = utcnow()
        self._writes.event({
            "run_id": run.id, "sequence": run.last_sequence, "kind": kind.value,
            "order_id": order.id if order is not None else None, "payload": payload, "ib_time": naive_utc(ib_time),
        })

    def run(self, run_id: str) -> RunEntry | None:
        run = self._ledger.run(run_id)
        if run is None:
            self._ledger.load_runs(self.session, [run_id])
            run = self._ledger.run(run_id)
        return run

    def set_order_status(
        self, order: OrderEntry, status: OrderStatus, ib_status: str, reason: str | None = None,
        ib_time: datetime | None = None,
    ) -> None:
        previous = order.status
        if previous == status:
            return
        order.status = status.value
        self._writes.order_changed(order)
        self.emit(
            order.run,
            EventKind.ORDER_STATUS,
            order_status_payload(order, previous, ib_status, reason),
            order=order,
            ib_time=ib_time,
        )

    # -- finding the order IB means ---------------------------------------------------------------

    def find_order(
        self, *, order_ref: str, perm_id: int, endpoint: str, client_id: int, order_id: int
    ) -> OrderEntry | None:
        """By orderRef, then permId, then IB order id, and only among the orders this gateway
        placed through that endpoint and client id. orderStatus carries no orderRef; an order id
        alone is ambiguous across endpoints, client ids and rolled-back Gateways; and an orderRef
        is not unique at IB: another API client or a TWS user may use the same one (IB shows their
        orders to the master client id and in reqCompletedOrders).

        permIds are IB's, unique per account; they are looked up per endpoint all the same, so that
        a different TWS (a simulator restarted on a new port) can never claim our orders."""
        keys = order_keys(order_ref=order_ref, perm_id=perm_id, endpoint=endpoint, client_id=client_id,
                          order_id=order_id)
        for key in keys:
            order = self._order_at(key)
            if order is not None:
                if not _placed_by(order, endpoint=endpoint, client_id=client_id, order_id=order_id, perm_id=perm_id):
                    log.info("IB report for orderRef %r permId %d from client id %d is not our order %s; ignored",
                             order_ref, perm_id, client_id, order.client_order_id)
                    return None
                return order
        return None

    def _order_at(self, key: OrderKey) -> OrderEntry | None:
        order = self._ledger.order_at(key)
        if order is None and key not in self._absent_orders:
            self._ledger.load_orders(self.session, [key])
            order = self._ledger.order_at(key)
            if order is None:
                self._absent_orders.add(key)
        return order

    def prefetch(self, reports: Iterable[ib.IbEvent]) -> None:
        """Loads into the ledger what a batch of IB reports will look up that it does not hold
        yet, a query per kind of row for the whole batch: the orders the reports name, all fills
        of the orders that have executions in it, and the fills its other commissions name.

        An execution's own exec id is not looked for: once its order's fills are loaded the
        ledger holds every fill of that order, so an exec id it does not hold is new. (Stored
        under another order, it would be a matching fault: the insert then breaks the unique
        exec id, and the report is skipped as poison with the first row kept.) That query was
        one database round trip per transaction, for live executions that are always new."""
        keys: list[OrderKey] = []
        executions: list[list[OrderKey]] = []
        executed: set[str] = set()
        charged: list[str] = []
        for report in reports:
            if isinstance(report, ib.ExecutionReport | ib.OrderStatusReport):
                named = order_keys(order_ref=report.order_ref, perm_id=report.perm_id, endpoint=report.endpoint,
                                   client_id=report.client_id, order_id=report.order_id)
                keys.extend(named)
                if isinstance(report, ib.ExecutionReport):
                    executions.append(named)
                    executed.add(report.exec_id)
            elif isinstance(report, ib.CommissionReport):
                charged.append(report.exec_id)
            elif isinstance(report, ib.IbError) and report.req_id > 0:
                keys.extend(order_keys(order_ref="", perm_id=0, endpoint=report.endpoint,
                                       client_id=report.client_id, order_id=report.req_id))
        ledger = self._ledger
        missing = {key for key in keys if ledger.order_at(key) is None and key not in self._absent_orders}
        if missing:
            ledger.load_orders(self.session, missing)
            self._absent_orders.update(key for key in missing if ledger.order_at(key) is None)
        filled = {order.id: order for named in executions
                  if (order := next(filter(None, map(ledger.order_at, named)), None)) is not None}
        ledger.load_fills(self.session, filled.values())
        unknown = {exec_id for exec_id in charged
                   if exec_id not in executed and not ledger.knows_fill(exec_id)} - self._checked_exec_ids
        self._checked_exec_ids |= executed  # their orders' fills are loaded: the ledger's answer is final
        if unknown:
            ledger.load_fills_by_exec_id(self.session, unknown)
            self._checked_exec_ids.update(unknown)

    def _set_perm_id(self, order: OrderEntry, perm_id: int) -> None:
        previous = order.ib_perm_id
        order.ib_perm_id = perm_id
        self._ledger.perm_id_changed(order, previous)
        self._writes.order_changed(order)

    def order_by_id(self, order_id: int) -> OrderEntry:
        order = self._ledger.order(order_id)
        if order is None:
            self._ledger.load_orders_by_id(self.session, [order_id])
            order = self._ledger.order(order_id)
        assert order is not None, "trade_fills.order_id is a foreign key"
        return order

    def fill(self, exec_id: str) -> FillEntry | None:
        fill = self._ledger.fill(exec_id)
        if fill is None and exec_id not in self._checked_exec_ids:
            self._ledger.load_fills_by_exec_id(self.session, [exec_id])
            self._checked_exec_ids.add(exec_id)
            fill = self._ledger.fill(exec_id)
        return fill

    # -- IB reports --------------------------------------------------------------------------------

    def apply_order_status(self, report: ib.OrderStatusReport) -> OrderEntry | None:
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
        self._writes.order_changed(order)
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

    def record_fill(self, execution: ib.ExecutionReport) -> FillEntry | None:
        """Stores a new execution; returns None for one already stored or for an unknown order."""
        order = self.find_order(
            order_ref=execution.order_ref, perm_id=execution.perm_id, endpoint=execution.endpoint,
            client_id=execution.client_id, order_id=execution.order_id,
        )
        if order is None:
            log.warning("execution %s for an order this gateway does not know; not stored", execution.exec_id)
            return None
        if not order.fills_loaded:
            self._ledger.load_fills(self.session, [order])
        stored = self.fill(execution.exec_id)
        if stored is not None:
            if stored.order_id != order.id:
                log.error("exec id %s reported for order %s but stored for another order; kept the first",
                          execution.exec_id, order.client_order_id)
            return None  # IB repeats execDetails (and reqExecutions re-sends them): one row each.
        if execution.perm_id > 0 and order.ib_perm_id is None:
            self._set_perm_id(order, execution.perm_id)
        base = execution.exec_base
        corrected = order.current.get(base)
        if corrected is not None and _version(execution.exec_id) < _version(corrected.exec_id):
            # The original arriving after its correction (a replay, a reconnect): it is history,
            # stored as replaced by the correction we hold, and counts for nothing.
            return self._store_replaced(order, execution, corrected)
        if corrected is not None:
            corrected.superseded_by = execution.exec_id
            self._writes.fill_changed(corrected)
            order.count_out(corrected)
        fill, row = self._new_fill(order, execution)
        order.current[base] = fill
        order.count_in(fill)
        # Filled quantity and average price come from the current (not superseded) executions.
        order.filled_qty = float(order.shares)
        order.avg_fill_price = float(order.notional / order.shares) if order.shares > 0 else None
        self._writes.order_changed(order)
        self.emit(
            order.run,
            EventKind.FILL,
            {
                "client_order_id": order.client_order_id,
                "fill": fill_row_payload(row),
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

    def _store_replaced(self, order: OrderEntry, execution: ib.ExecutionReport, current: FillEntry) -> FillEntry:
        fill, row = self._new_fill(order, execution)
        fill.superseded_by = row["superseded_by"] = current.exec_id
        self.emit(
            order.run,
            EventKind.FILL,
            {
                "client_order_id": order.client_order_id,
                "fill": fill_row_payload(row),
                "corrects_exec_id": "",
                "order_filled_quantity": order.filled_qty,
                "order_avg_fill_price": order.avg_fill_price or 0.0,
            },
            order=order,
            ib_time=execution.trade_time or execution.received_at,
        )
        return fill

    def _new_fill(self, order: OrderEntry, execution: ib.ExecutionReport) -> tuple[FillEntry, dict[str, Any]]:
        """A fill to insert: the ledger's entry, and its trade_fills row."""
        row = {
            "order_id": order.id,
            "exec_id": execution.exec_id,
            "exec_base": execution.exec_base,
            "filled_qty": execution.shares,
            "price": execution.price,
            "trade_time": naive_utc(execution.trade_time),
            "currency": execution.currency or None,
            "exchange": execution.exchange or None,
            "side": execution.side or None,
            "account": execution.account or None,
            "ib_perm_id": execution.perm_id or None,
            "raw_payload": _raw_payload(execution),
            "commission": None,
            "commission_currency": None,
            "realized_pnl": None,
            "superseded_by": None,
        }
        fill = FillEntry(order.id, execution.exec_id, execution.shares, execution.price, None, None, None, None)
        self._ledger.add_fill(fill)
        self._writes.new_fill(fill, row)
        return fill, row

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
        self._writes.fill_changed(fill)
        order = self.order_by_id(fill.order_id)
        payload: dict[str, Any] = {
            "client_order_id": order.client_order_id,
            "exec_id": fill.exec_id,
            "commission": report.commission if report.commission is not None else 0.0,
            "currency": report.currency,
        }
        if report.realized_pnl is not None:
            payload["realized_pnl"] = report.realized_pnl
        self.emit(order.run, EventKind.COMMISSION, payload, order=order, ib_time=report.received_at)
        return True

    def apply_error(self, error: ib.IbError) -> OrderEntry | None:
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
                self._set_reason(order, reason)
                self.set_order_status(order, OrderStatus.CANCELLED, f"error {error.code}", reason, error.received_at)
            return order
        if current in state.DONE_STATES:
            return order  # already settled; a fill arriving later still corrects it
        self._set_reason(order, reason)
        self.set_order_status(order, OrderStatus.REJECTED, f"error {error.code}", reason, error.received_at)
        return order

    def _set_reason(self, order: OrderEntry, reason: str | None) -> None:
        order.status_reason = reason
        self._writes.order_changed(order)

    # -- the gateway's own decisions about orders ------------------------------------------------

    def cancel_in_books(self, order: OrderEntry, ib_status: str, reason: str) -> None:
        self._set_reason(order, reason)
        self.set_order_status(order, OrderStatus.CANCELLED, ib_status, reason)

    def withdraw(self, order_id: int) -> None:
        """An order whose run ended while it waited for its pacing slot: it never went to IB."""
        order = self.order_by_id(order_id)
        if order.status == OrderStatus.PENDING_SUBMIT.value:
            self.cancel_in_books(order, "withdrawn",
                                 "withdrawn before it was sent to IB: the run ended first (deadline or cancel)")

    def mark_unknown(self, order_ids: list[int], why: str) -> None:
        self._ledger.load_orders_by_id(self.session, order_ids)
        for order_id in order_ids:
            order = self.order_by_id(order_id)
            if OrderStatus(order.status) not in state.DONE_STATES:
                self.set_order_status(order, OrderStatus.UNKNOWN, why, why)

    def resolve_unknown(
        self, endpoint: str, client_id: int, ib_day_began: datetime, written_before: int = 0,
    ) -> list[OrderEntry]:
        """After a complete reconciliation, an order IB reported nothing about never reached IB:
        it is cancelled in our books, and never sent again. Such an order is an UNKNOWN one, or
        one still PENDING_SUBMIT among those up to id `written_before`: written whole to a socket
        that closed before the one IB answered on. IB acknowledges every order it reads and
        reports it again on a new socket; TWS going away takes what it had not read with it.

        Only if IB's answer covers it: IB reports executions and completed orders of its current
        day only, so silence about an order created before that day began proves nothing. Such an
        order is (or becomes) UNKNOWN, with the reason, until IB reports it or an operator settles it."""
        self.write()  # the query reads statuses: this transaction's changes first
        unanswered = _orders.status == OrderStatus.UNKNOWN.value
        if written_before:
            unacknowledged = and_(_orders.status == OrderStatus.PENDING_SUBMIT.value,
                                  _orders.ib_order_id <= written_before)
            unanswered = or_(unanswered, unacknowledged)
        order_ids = list(self.session.scalars(
            select(_orders.id).where(
                unanswered,
                _orders.ib_endpoint == endpoint,
                _orders.ib_client_id == client_id,
            ).order_by(_orders.id)
        ))
        self._ledger.load_orders_by_id(self.session, order_ids)
        began = naive_utc(ib_day_began)
        resolved = []
        for order_id in order_ids:
            order = self.order_by_id(order_id)
            if began is not None and order.created_at is not None and order.created_at < began:
                unknown = order.status == OrderStatus.UNKNOWN.value
                if not order.status_reason or not unknown:
                    log.warning("%s %s UNKNOWN: created %sZ, before IB's current day began (%sZ); IB's "
                                "reconciliation cannot tell whether it reached IB", order.client_order_id,
                                "stays" if unknown else "is now", order.created_at.isoformat(timespec="seconds"),
                                began.isoformat(timespec="seconds"))
                    self._set_reason(order, _BEFORE_IBS_DAY)
                    if not unknown:
                        self.set_order_status(order, OrderStatus.UNKNOWN, "reconciliation", _BEFORE_IBS_DAY)
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

    def orders_of(self, run_id: str) -> list[OrderEntry]:
        run = self.run(run_id)
        if run is None:
            return []
        self._ledger.load_run_orders(self.session, run)
        return sorted(run.orders.values(), key=lambda order: order.id)

    def finish_run(self, run: RunEntry, cancelled_by_caller: bool) -> RunStatus:
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
        self._writes.run_changed(run)
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

    def refresh_finished_run(self, order: OrderEntry) -> None:
        """A fill after the run finished still counts: re-decide the finished run's status."""
        run = order.run
        if run.status != RunStatus.RUNNING.value:
            self.finish_run(run, cancelled_by_caller=run.status == RunStatus.CANCELLED.value)

    def note_cancel(self, run_id: str, cancelled_by: str) -> None:
        """Who cancelled the run and when, before anything goes to IB; the first cancel of a run is
        the one that ended it, so a second one does not overwrite it. (Columns the ledger does not
        hold: written at once.)"""
        self.session.execute(
            update(TradeRun.__table__)
            .where(_runs.id == run_id, _runs.cancelled_by.is_(None))
            .values(cancelled_by=cancelled_by, cancelled_at=utcnow())
        )


def fill_payload(fill: Any) -> dict[str, Any]:
    """A fill as events carry it, from a trade_fills row (or anything with its columns)."""
    return fill_row_payload({name: getattr(fill, name) for name in _FILL_PAYLOAD_COLUMNS})


_FILL_PAYLOAD_COLUMNS = ("exec_id", "filled_qty", "price", "commission", "commission_currency", "realized_pnl",
                         "currency", "exchange", "account", "superseded_by", "trade_time")


def fill_row_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """A fill as events carry it, from its trade_fills columns."""
    payload: dict[str, Any] = {
        "exec_id": row["exec_id"],
        "quantity": row["filled_qty"],
        "price": row["price"],
        "commission_currency": row["commission_currency"] or "",
        "currency": row["currency"] or "",
        "exchange": row["exchange"] or "",
        "account": row["account"] or "",
        "superseded_by": row["superseded_by"] or "",
    }
    if row["trade_time"] is not None:
        payload["trade_time"] = row["trade_time"].isoformat() + "Z"
    if row["commission"] is not None:
        payload["commission"] = row["commission"]
    if row["realized_pnl"] is not None:
        payload["realized_pnl"] = row["realized_pnl"]
    return payload


def _raw_payload(execution: ib.ExecutionReport) -> dict[str, Any]:
    """The execution as IB reported it, for trade_fills.raw_payload. Its datetimes stay datetimes
    here: the JSON encoder writes them as ISO text (server/db/driver_insert.py), in C."""
    # A dataclass's __dict__ holds its fields in their order: a copy is the fields by name.
    return dict(execution.__dict__) if _EXECUTION_DICT else dict(
        zip(_EXECUTION_FIELDS, _execution_values(execution), strict=True))


def _version(exec_id: str) -> tuple[int, str]:
    """The correction number: IB's exec id ends in .01 for the original, .02 for its first
    correction, and so on."""
    last = exec_id.rpartition(".")[2]
    return (int(last), "") if last.isdigit() else (-1, last)


def _placed_by(order: OrderEntry, *, endpoint: str, client_id: int, order_id: int, perm_id: int) -> bool:
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


def _refused_by_unknown_code(order: OrderEntry) -> bool:
    """The order was REJECTED on an error code this gateway does not classify (reason 'IB <code>: ...')."""
    reason = order.status_reason or ""
    head = reason[3:].split(":", 1)[0] if reason.startswith("IB ") else ""
    return head.isdigit() and classify_order_error(int(head)) == OrderErrorKind.UNKNOWN
