"""The writer's ledger: what the database holds about the runs, orders and fills the writer has
touched, kept in memory between transactions so that IB's reports are applied without reading
the same rows again for every report (under a flood, those reads were most of the writer's
cost).

Loaded on first use, a query per kind of row and batch, never per report. Only the writer
thread reads or changes it, and the writer is the only one that changes these rows, so what it
holds is what the database holds, plus the changes of the transaction under way.

Those changes are made to the entries themselves. A transaction that fails has changed entries
the database never got, so the ledger is then discarded whole and loaded again from the
database: the retried transaction starts from what was last committed. (Even a commit that
failed on a lost connection may have happened; the database is the only one that knows.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from execgw.server.db.models import TradeFill, TradeOrder, TradeRun, execution_base
from execgw.server.engine.entries import FillEntry, OrderEntry, RunEntry

OrderKey = tuple[Any, ...]

_runs = TradeRun.__table__.c
_orders = TradeOrder.__table__.c
_fills = TradeFill.__table__.c
RUN_COLUMNS = (_runs.id, _runs.status, _runs.status_reason, _runs.last_sequence, _runs.finished_at)
ORDER_COLUMNS = (
    _orders.id, _orders.run_id, _orders.client_order_id, _orders.ib_endpoint, _orders.ib_client_id,
    _orders.ib_order_id, _orders.ib_perm_id, _orders.quantity, _orders.status, _orders.filled_qty,
    _orders.avg_fill_price, _orders.status_reason, _orders.last_status_ts, _orders.created_at,
)
FILL_COLUMNS = (
    _fills.order_id, _fills.exec_id, _fills.exec_base, _fills.filled_qty, _fills.price, _fills.commission,
    _fills.commission_currency, _fills.realized_pnl, _fills.superseded_by,
)

# Bounds on what the ledger keeps. Past them, after a commit, the runs used least recently are
# forgotten with their orders and fills, down to three quarters; the runs of the transaction
# just committed are kept whatever their size. A fill held costs about 420 bytes (its entry, the
# strings and floats ibapi decoded, its exec base, two dict slots: tracemalloc over a soak), so
# 100,000 fills were 40 MiB of a soak's RSS growth; 10,000 are 4 MiB. What is forgotten is a
# query away: a late fill or commission of a forgotten order loads it and its fills again. (The
# price: two runs of over 5,000 fills each, reported in alternate transactions, reload each
# other's fills once per transaction.)
MAX_FILLS = 10_000
MAX_RUNS = 20_000


def order_keys(*, order_ref: str, perm_id: int, endpoint: str, client_id: int, order_id: int) -> list[OrderKey]:
    """The keys a report can name an order by, in the order they are tried: orderRef, then
    permId (at that endpoint), then IB order id (at that endpoint and client id)."""
    keys: list[OrderKey] = []
    if order_ref:
        keys.append(("ref", order_ref))
    if perm_id > 0:
        keys.append(("perm", endpoint, perm_id))
    if order_id > 0:
        keys.append(("id", endpoint, client_id, order_id))
    return keys


def keys_of(order: OrderEntry) -> list[OrderKey]:
    keys: list[OrderKey] = [("ref", order.client_order_id)]
    if order.ib_perm_id:
        keys.append(("perm", order.ib_endpoint, order.ib_perm_id))
    if order.ib_order_id:
        keys.append(("id", order.ib_endpoint, order.ib_client_id, order.ib_order_id))
    return keys


class Ledger:
    def __init__(self, max_fills: int = MAX_FILLS, max_runs: int = MAX_RUNS) -> None:
        self._max_fills = max_fills
        self._max_runs = max_runs
        self._runs: dict[str, RunEntry] = {}
        self._orders: dict[int, OrderEntry] = {}
        self._by_key: dict[OrderKey, OrderEntry] = {}
        self._fills: dict[str, FillEntry] = {}  # by exec id, of the orders whose fills are loaded
        self.transaction = 0  # counts the writer's transactions: when each run was last used

    # -- what the ledger holds ----------------------------------------------------------------

    def order_at(self, key: OrderKey) -> OrderEntry | None:
        order = self._by_key.get(key)
        if order is not None:
            order.run.used = self.transaction
        return order

    def order(self, order_id: int) -> OrderEntry | None:
        order = self._orders.get(order_id)
        if order is not None:
            order.run.used = self.transaction
        return order

    def run(self, run_id: str) -> RunEntry | None:
        run = self._runs.get(run_id)
        if run is not None:
            run.used = self.transaction
        return run

    def fill(self, exec_id: str) -> FillEntry | None:
        return self._fills.get(exec_id)

    def knows_fill(self, exec_id: str) -> bool:
        return exec_id in self._fills

    def size(self) -> tuple[int, int, int]:
        """(runs, orders, fills) held."""
        return len(self._runs), len(self._orders), len(self._fills)

    # -- loading on first use: one query per kind of row; what the ledger holds wins over the
    #    row read (it may carry changes of the transaction under way) -------------------------

    def load_orders(self, session: Session, keys: Iterable[OrderKey]) -> None:
        """The orders named by these keys, those that exist and are not held yet. One query per
        kind of key, each on its own index."""
        refs: set[str] = set()
        perms: set[int] = set()
        ids: dict[tuple[str, int], set[int]] = {}
        for key in keys:
            if key in self._by_key:
                continue
            if key[0] == "ref":
                refs.add(key[1])
            elif key[0] == "perm":
                perms.add(key[2])
            else:
                ids.setdefault((key[1], key[2]), set()).add(key[3])
        if refs:
            self._take_orders(session, session.execute(select(*ORDER_COLUMNS).where(_orders.client_order_id.in_(refs))))
        if perms:
            self._take_orders(session, session.execute(select(*ORDER_COLUMNS).where(_orders.ib_perm_id.in_(perms))))
        for (endpoint, client_id), order_ids in ids.items():
            self._take_orders(session, session.execute(select(*ORDER_COLUMNS).where(
                _orders.ib_endpoint == endpoint, _orders.ib_client_id == client_id, _orders.ib_order_id.in_(order_ids),
            )))

    def load_orders_by_id(self, session: Session, order_ids: Collection[int]) -> None:
        missing = {i for i in order_ids if i not in self._orders}
        if missing:
            self._take_orders(session, session.execute(select(*ORDER_COLUMNS).where(_orders.id.in_(missing))))

    def load_runs(self, session: Session, run_ids: Collection[str]) -> None:
        missing = {i for i in run_ids if i not in self._runs}
        if not missing:
            return
        for row in session.execute(select(*RUN_COLUMNS).where(_runs.id.in_(missing))):
            self._runs[row.id] = RunEntry(row.id, row.status, row.status_reason, row.last_sequence, row.finished_at,
                                          used=self.transaction)

    def load_run_orders(self, session: Session, run: RunEntry) -> None:
        """Every order of the run (a run's orders are all written with it, so once loaded, the
        list is complete for good)."""
        if not run.all_orders:
            self._take_orders(session, session.execute(select(*ORDER_COLUMNS).where(_orders.run_id == run.id)))
            run.all_orders = True

    def load_fills(self, session: Session, orders: Iterable[OrderEntry]) -> None:
        """Every fill of these orders, with the sums of those that count."""
        wanted = {order.id: order for order in orders if not order.fills_loaded}
        if not wanted:
            return
        for row in session.execute(select(*FILL_COLUMNS).where(_fills.order_id.in_(wanted))):
            fill = self._fills.get(row.exec_id)
            if fill is None:
                fill = FillEntry(row.order_id, row.exec_id, row.filled_qty, row.price, row.commission,
                                 row.commission_currency, row.realized_pnl, row.superseded_by)
                self._fills[fill.exec_id] = fill
            if fill.superseded_by is None:
                order = wanted[row.order_id]
                order.current[row.exec_base or execution_base(row.exec_id)] = fill
                order.count_in(fill)
        for order in wanted.values():
            order.fills_loaded = True

    def load_fills_by_exec_id(self, session: Session, exec_ids: Collection[str]) -> None:
        """The fills with these exec ids, wherever stored: loads their orders and all their fills."""
        missing = [i for i in exec_ids if i not in self._fills]
        if not missing:
            return
        order_ids = set(session.scalars(select(_fills.order_id).where(_fills.exec_id.in_(missing))))
        if order_ids:
            self.load_orders_by_id(session, order_ids)
            self.load_fills(session, (self._orders[i] for i in order_ids))

    def _take_orders(self, session: Session, rows: Iterable[Row[Any]]) -> None:
        fresh = [row for row in rows if row.id not in self._orders]
        self.load_runs(session, {row.run_id for row in fresh})
        for row in fresh:
            run = self._runs[row.run_id]  # trade_orders.run_id is a foreign key
            run.used = self.transaction
            order = OrderEntry(
                row.id, run, row.client_order_id, row.ib_endpoint, row.ib_client_id, row.ib_order_id,
                row.ib_perm_id, row.quantity, row.status, row.filled_qty, row.avg_fill_price, row.status_reason,
                row.last_status_ts, row.created_at,
            )
            self._orders[order.id] = order
            run.orders[order.id] = order
            for key in keys_of(order):
                self._by_key.setdefault(key, order)

    # -- what the recorder adds ------------------------------------------------------------------

    def add_fill(self, fill: FillEntry) -> None:
        self._fills[fill.exec_id] = fill

    def perm_id_changed(self, order: OrderEntry, previous: int | None) -> None:
        if previous and self._by_key.get(("perm", order.ib_endpoint, previous)) is order:
            del self._by_key[("perm", order.ib_endpoint, previous)]
        if order.ib_perm_id:
            self._by_key[("perm", order.ib_endpoint, order.ib_perm_id)] = order

    # -- transaction boundaries --------------------------------------------------------------------

    def committed(self) -> None:
        """After a commit: what the entries say is in the database. Keeps the ledger within its
        bounds."""
        if len(self._fills) > self._max_fills or len(self._runs) > self._max_runs:
            self._forget_least_used()
        self.transaction += 1

    def discard(self) -> None:
        """After a transaction failed (or might have): everything is loaded again from the database."""
        self._runs.clear()
        self._orders.clear()
        self._by_key.clear()
        self._fills.clear()
        self.transaction += 1

    def forget_run(self, run_id: str) -> None:
        """A run changed by other means than the recorder: loaded again when next used."""
        run = self._runs.get(run_id)
        if run is not None:
            self._forget([run])

    def _forget_least_used(self) -> None:
        fills_goal, runs_goal = self._max_fills * 3 // 4, self._max_runs * 3 // 4
        fills, runs = len(self._fills), len(self._runs)
        gone: list[RunEntry] = []
        for run in sorted(self._runs.values(), key=lambda r: r.used):
            if (fills <= fills_goal and runs <= runs_goal) or run.used >= self.transaction:
                break
            gone.append(run)
            runs -= 1
            fills -= sum(len(o.current) for o in run.orders.values())  # a close estimate: corrections aside
        self._forget(gone)

    def _forget(self, runs: list[RunEntry]) -> None:
        with_fills: set[int] = set()
        for run in runs:
            del self._runs[run.id]
            for order in run.orders.values():
                del self._orders[order.id]
                for key in keys_of(order):
                    if self._by_key.get(key) is order:
                        del self._by_key[key]
                if order.fills_loaded:
                    with_fills.add(order.id)
        if with_fills:
            self._fills = {exec_id: f for exec_id, f in self._fills.items() if f.order_id not in with_fills}
