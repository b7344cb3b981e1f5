"""What one transaction writes, gathered while IB's reports are applied and written together:
new fills and events in multi-row INSERTs, changed orders, runs and fills in one UPDATE per
table (`KeyedUpdate`: one statement on MariaDB, not one per row). (The ORM's unit of work
flushed these object by object, and was a third of the writer's time under a flood.)

A new fill changed again in the same transaction (its commission came too, a correction
superseded it) is inserted as it finally is, not inserted then updated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from execgw.server.db.driver_insert import DriverInsert
from execgw.server.db.keyed_update import KeyedUpdate
from execgw.server.db.models import TradeEvent, TradeFill, TradeOrder, TradeRun, utcnow
from execgw.server.engine.entries import FillEntry, OrderEntry, RunEntry
from execgw.server.engine.stored_event import StoredEvent

_events = TradeEvent.__table__
_fills = TradeFill.__table__
_orders = TradeOrder.__table__
_runs = TradeRun.__table__

# updated_at is left out: the columns' onupdate sets it, as the ORM did.
_UPDATE_ORDERS = KeyedUpdate(_orders, "id", ("status", "status_reason", "filled_qty", "avg_fill_price", "ib_perm_id",
                                             "last_status_ts"))
_UPDATE_RUNS = KeyedUpdate(_runs, "id", ("status", "status_reason", "last_sequence", "finished_at"))
_UPDATE_FILLS = KeyedUpdate(_fills, "exec_id", ("commission", "commission_currency", "realized_pnl", "superseded_by"))


FILL_COLUMNS = ("order_id", "exec_id", "exec_base", "filled_qty", "price", "trade_time", "currency", "exchange",
                "side", "account", "ib_perm_id", "raw_payload", "commission", "commission_currency", "realized_pnl",
                "superseded_by")
EVENT_COLUMNS = ("run_id", "sequence", "kind", "order_id", "payload", "ib_time", "stored_at")
_INSERT_FILLS = DriverInsert(_fills, FILL_COLUMNS)
_INSERT_EVENTS = DriverInsert(_events, EVENT_COLUMNS)


class PendingWrites:
    def __init__(self) -> None:
        self._new_fills: dict[str, tuple[FillEntry, dict[str, Any]]] = {}
        self._fills: dict[str, FillEntry] = {}
        self._orders: dict[int, OrderEntry] = {}
        self._runs: dict[str, RunEntry] = {}
        self._events: list[dict[str, Any]] = []

    def new_fill(self, fill: FillEntry, row: dict[str, Any]) -> None:
        """`row` holds the fill's trade_fills columns (FILL_COLUMNS); those the transaction may
        still change are taken from `fill` when written."""
        self._new_fills[fill.exec_id] = (fill, row)

    def fill_changed(self, fill: FillEntry) -> None:
        if fill.exec_id not in self._new_fills:
            self._fills[fill.exec_id] = fill

    def order_changed(self, order: OrderEntry) -> None:
        self._orders[order.id] = order

    def run_changed(self, run: RunEntry) -> None:
        self._runs[run.id] = run

    def event(self, row: dict[str, Any]) -> None:
        """`row` holds the event's trade_events columns (EVENT_COLUMNS) but stored_at, which is
        when it is written."""
        self._events.append(row)

    def write(self, session: Session) -> list[StoredEvent]:
        """Everything gathered so far, in the transaction of `session`; returns the events
        written. (No row here refers to another row written here: fills and events name orders
        and runs that exist.)"""
        connection = session.connection()
        if self._new_fills:
            rows = []
            for fill, row in self._new_fills.values():
                row["commission"] = fill.commission
                row["commission_currency"] = fill.commission_currency
                row["realized_pnl"] = fill.realized_pnl
                row["superseded_by"] = fill.superseded_by
                rows.append(row)
            _INSERT_FILLS.execute(connection, rows)
        _UPDATE_FILLS.execute(connection, [
            {"exec_id": f.exec_id, "commission": f.commission, "commission_currency": f.commission_currency,
             "realized_pnl": f.realized_pnl, "superseded_by": f.superseded_by}
            for f in self._fills.values()
        ])
        _UPDATE_ORDERS.execute(connection, [
            {"id": o.id, "status": o.status, "status_reason": o.status_reason, "filled_qty": o.filled_qty,
             "avg_fill_price": o.avg_fill_price, "ib_perm_id": o.ib_perm_id, "last_status_ts": o.last_status_ts}
            for o in self._orders.values()
        ])
        _UPDATE_RUNS.execute(connection, [
            {"id": r.id, "status": r.status, "status_reason": r.status_reason, "last_sequence": r.last_sequence,
             "finished_at": r.finished_at}
            for r in self._runs.values()
        ])
        events: list[StoredEvent] = []
        if self._events:
            stored_at = utcnow()  # one commit stores them all
            for row in self._events:
                row["stored_at"] = stored_at
                events.append(StoredEvent(row["run_id"], row["sequence"], row["kind"], row["payload"], row["ib_time"],
                                          stored_at))
            _INSERT_EVENTS.execute(connection, self._events)
        for written in (self._new_fills, self._fills, self._orders, self._runs):
            written.clear()
        self._events = []
        return events
