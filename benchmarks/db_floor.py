"""The database floor: the rows the gateway writes per execution (benchmarks/run_events.py: one
trade_fills row with its commission, the fill and commission events, the order's and the run's
updates) written by bare SQLAlchemy Core transactions on the gateway's own engine settings
(make_engine: WAL on SQLite; READ COMMITTED, utf8mb4 on MySQL) and schema (upgrade), nothing else:

- one commit per execution (what a gateway that commits each report alone could reach), with the
  time of each commit (the floor of "execution → stored");
- batched: `batch` executions per transaction, every table's rows in one multi-row statement
  (the gateway applies up to 500 IB reports per transaction);
- batched and lean: the same, the fills and events written by the gateway's own multi-row
  INSERTs (server/db/driver_insert.py) instead of SQLAlchemy Core's. Core's client spent 96-108
  µs an execution on MariaDB, 47-49 on SQLite, against 24-27 for the gateway's statements (ad hoc,
  2026-11-29, 50,000 executions): Core's is no floor for the gateway's writer. The reconnect
  replay is held against this one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, insert, update

from benchmarks.figures import percentiles
from benchmarks.run_events import (
    ORDER_REF,
    PRICE,
    commission_payload,
    execution_report,
    fill_event_payload,
    fill_row,
)
from execgw.server.db.driver_insert import DriverInsert
from execgw.server.db.engine import make_engine
from execgw.server.db.migrations import upgrade
from execgw.server.db.models import TradeEvent, TradeFill, TradeOrder, TradeRun, utcnow
from execgw.server.engine.writes import EVENT_COLUMNS, FILL_COLUMNS

BATCH = 500
_LEAN_FILLS = DriverInsert(TradeFill.__table__, FILL_COLUMNS)
_LEAN_EVENTS = DriverInsert(TradeEvent.__table__, EVENT_COLUMNS)


@dataclass(frozen=True)
class DbFloor:
    per_commit_rate: float  # executions per second
    per_commit_ms: dict[str, float]  # p50/p95/p99 of one execution's transaction
    batched_rate: float


class _Run:
    """One run with one order, and the rows one execution adds to them."""

    def __init__(self, conn: Connection, executions: int) -> None:
        self.run_id = str(uuid.uuid4())
        now = utcnow()
        conn.execute(insert(TradeRun), [{"id": self.run_id, "mode": "paper", "status": "RUNNING",
                                         "created_at": now, "updated_at": now, "last_sequence": 1}])
        self.order_id = conn.execute(insert(TradeOrder), [{
            "run_id": self.run_id, "client_order_id": f"{ORDER_REF}-{self.run_id[:8]}", "symbol": "AAPL",
            "sec_type": "STK", "exchange": "SMART", "currency": "USD", "side": "BUY",
            "quantity": float(executions), "order_type": "MKT", "status": "SUBMITTED", "created_at": now,
            "updated_at": now, "ib_endpoint": "127.0.0.1:4002", "ib_client_id": 1,
            "ib_order_id": int(self.run_id[:7], 16),  # unique per endpoint and client id, as IB's
        }]).inserted_primary_key[0]
        self.sequence = 1
        self.filled = 0

    def rows(self, first: int, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        fills, events = [], []
        for i in range(first, first + count):
            report = execution_report(i, source=self.run_id[:8])
            self.filled += 1
            fills.append({**dict.fromkeys(FILL_COLUMNS), **fill_row(self.order_id, report)})
            stored = utcnow()
            for kind, payload in (("fill", fill_event_payload(report, float(self.filled))),
                                  ("commission", commission_payload(report))):
                self.sequence += 1
                events.append({"run_id": self.run_id, "sequence": self.sequence, "kind": kind,
                               "order_id": self.order_id, "payload": payload,
                               "ib_time": report.received_at.replace(tzinfo=None), "stored_at": stored})
        return fills, events

    def write(self, conn: Connection, fills: list[dict[str, Any]], events: list[dict[str, Any]],
              filled: int, sequence: int, lean: bool = False) -> None:
        """One transaction's statements: every table's rows in one (multi-row) statement; `lean`:
        the fills and events in the gateway's own INSERTs."""
        if lean:
            _LEAN_FILLS.execute(conn, fills)
            _LEAN_EVENTS.execute(conn, events)
        else:
            conn.execute(insert(TradeFill), fills)
            conn.execute(insert(TradeEvent), events)
        now = utcnow()
        conn.execute(update(TradeOrder).where(TradeOrder.id == self.order_id).values(
            filled_qty=float(filled), avg_fill_price=PRICE, status="PARTIALLY_FILLED", last_status_ts=now,
            updated_at=now))
        conn.execute(update(TradeRun).where(TradeRun.id == self.run_id).values(
            last_sequence=sequence, updated_at=now))

    def transactions(self, executions: int, batch: int) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]]:
        """Every transaction's rows, built before the clock starts: the floor is the database's."""
        out = []
        for first in range(0, executions, batch):
            fills, events = self.rows(first, min(batch, executions - first))
            out.append((fills, events, self.filled, self.sequence))
        return out


def _per_commit(engine: Engine, executions: int) -> tuple[float, dict[str, float]]:
    with engine.begin() as conn:
        run = _Run(conn, executions)
    transactions = run.transactions(executions, 1)
    seconds: list[float] = []
    started = time.perf_counter()
    for rows in transactions:
        begun = time.perf_counter()
        with engine.begin() as conn:
            run.write(conn, *rows)
        seconds.append(time.perf_counter() - begun)
    rate = executions / (time.perf_counter() - started)
    return rate, percentiles([s * 1000 for s in seconds])


class BareWrite(NamedTuple):
    """The batched floor writing some executions' rows: how long it took, and the CPU it cost."""

    seconds: float
    client_cpu: float  # this thread's: making the statements, the driver (and SQLite's engine, in-process)
    server_cpu: float | None  # the database server's over the same time, when it was given to watch


def _batched(engine: Engine, executions: int, batch: int,
             server_cpu: Callable[[], float] | None = None, lean: bool = False) -> BareWrite:
    with engine.begin() as conn:
        run = _Run(conn, executions)
    transactions = run.transactions(executions, batch)
    server_before = server_cpu() if server_cpu is not None else 0.0
    client_before = time.thread_time()
    started = time.perf_counter()
    for rows in transactions:
        with engine.begin() as conn:
            run.write(conn, *rows, lean=lean)
    seconds = time.perf_counter() - started
    return BareWrite(seconds, time.thread_time() - client_before,
                     server_cpu() - server_before if server_cpu is not None else None)


def batched_write(database_url: str, executions: int, batch: int = BATCH,
                  server_cpu: Callable[[], float] | None = None, lean: bool = False) -> BareWrite:
    """The batched floor (`lean`: in the gateway's own INSERTs) writing `executions` executions'
    rows on a database at the gateway's schema: the database's own share of a replay of that
    many. `server_cpu` tells the database server's CPU seconds so far (a MySQL server on this
    machine), to count its share too."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        return _batched(engine, executions, batch, server_cpu, lean)
    finally:
        engine.dispose()


def measure(database_url: str, per_commit: int, batched: int, batch: int = BATCH) -> DbFloor:
    """Both floors on a database at the gateway's schema (created here if it is empty)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        rate, commit_ms = _per_commit(engine, per_commit)
        return DbFloor(rate, commit_ms, batched / _batched(engine, batched, batch).seconds)
    finally:
        engine.dispose()
