"""The store: the one place that writes. Blocking SQLAlchemy work runs off the event loop,
writes on a single thread (so the per-run sequence needs no locking), reads on a small pool, and
the watchers' reads (WatchRun replays) on a pool of their own: thousands of streams catching up
at once then queue behind each other, never in front of a SubmitRun's reads.

Every write returns the events it committed; the caller publishes them only after that.

The writer keeps a ledger of the rows it writes (ledger.py) between transactions. A transaction
that fails discards it: the next one, a retry included, reads again what was last committed.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import NamedTuple, TypeVar

from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session, selectinload

from execgw.server.db.engine import make_session_factory
from execgw.server.db.models import OrderStatus, RunStatus, TradeEvent, TradeFill, TradeOrder, TradeRun
from execgw.server.engine.ledger import Ledger
from execgw.server.engine.recorder import Recorder
from execgw.server.engine.state import DONE_STATES
from execgw.server.engine.stored_event import StoredEvent

T = TypeVar("T")


class RunProgress(NamedTuple):
    account: str | None
    status: str
    last_sequence: int
    gateway: str = ""  # the gateway that owns the run (TradeRun.gateway)


class WriterTimes(NamedTuple):
    """One committed writer transaction's legs, in seconds: applying its work (in memory, with
    the reads it needs), sending its statements, and the COMMIT (where a database that flushes its
    log to a slow disk stalls)."""

    apply: float
    statements: float
    commit: float


class Store:
    def __init__(
        self, engine: Engine, *, readers: int = 4, watch_readers: int = 2, ledger: Ledger | None = None
    ) -> None:
        self.engine = engine
        self._sessions = make_session_factory(engine)
        event.listen(self._sessions, "before_flush", _note_runs_the_orm_changes)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="execgw-writer")
        self._ledger = ledger or Ledger()  # the writer thread's alone
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="execgw-reader")
        self._watch_readers = ThreadPoolExecutor(watch_readers, thread_name_prefix="execgw-watch-reader")
        # Told, on the loop, the legs of every committed writer transaction (the metrics set it).
        self.on_transaction: Callable[[WriterTimes], None] | None = None

    async def write(self, work: Callable[[Recorder], T]) -> tuple[T, list[StoredEvent]]:
        """Runs `work` in one transaction on the writer thread; returns its result and the
        events it wrote, after the commit."""

        def transaction() -> tuple[T, list[StoredEvent], WriterTimes]:
            ledger = self._ledger
            began = time.perf_counter()
            try:
                with self._sessions() as session, session.begin():
                    recorder = Recorder(session, ledger)
                    with session.no_autoflush:
                        result = work(recorder)
                    applied = time.perf_counter()
                    session.flush()  # rows the ORM holds (a new run, its orders) before the events naming them
                    recorder.write()
                    written = time.perf_counter()
                    changed_by_orm: set[str] = session.info.get(ORM_RUNS, set())
            except BaseException:
                # Entries may hold changes the database never got (or got: a commit cut off by a
                # lost connection may have happened). Read it all again from the database.
                ledger.discard()
                raise
            committed = time.perf_counter()
            for run_id in changed_by_orm:
                ledger.forget_run(run_id)
            ledger.committed()
            return result, recorder.events, WriterTimes(applied - began, written - applied, committed - written)

        result, events, times = await self._run(self._writer, transaction)
        if self.on_transaction is not None:
            self.on_transaction(times)
        return result, events

    async def read(self, work: Callable[[Session], T]) -> T:
        return await self._run(self._readers, self._query(work))

    async def watch_read(self, work: Callable[[Session], T]) -> T:
        """A read for a WatchRun stream, on the watchers' own pool."""
        return await self._run(self._watch_readers, self._query(work))

    async def ping(self) -> None:
        """One round trip to the database (SELECT 1) on a reader; raises what the driver raises."""
        await self.read(lambda session: session.execute(text("SELECT 1")).scalar_one())

    def _query(self, work: Callable[[Session], T]) -> Callable[[], T]:
        def query() -> T:
            with self._sessions() as session:
                return work(session)

        return query

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(pool, ctx.run, fn)

    def close(self) -> None:
        """Lets in-flight writes finish, then releases the connections."""
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._watch_readers.shutdown(wait=True)
        self.engine.dispose()

    # -- queries the API needs ------------------------------------------------------------------

    async def get_run(self, run_id: str, *, with_fills: bool = True) -> TradeRun | None:
        def query(session: Session) -> TradeRun | None:
            load = selectinload(TradeRun.orders)
            if with_fills:
                load = load.selectinload(TradeOrder.fills)
            return session.scalar(select(TradeRun).where(TradeRun.id == run_id).options(load))

        return await self.read(query)

    async def list_runs(
        self, limit: int, before: tuple[datetime, str] | None, accounts: Collection[str] | None = None
    ) -> list[TradeRun]:
        """Newest first; only runs booked to `accounts` when given (a caller limited to them)."""

        def query(session: Session) -> list[TradeRun]:
            stmt = select(TradeRun).options(selectinload(TradeRun.orders))
            if accounts is not None:
                stmt = stmt.where(TradeRun.account.in_(sorted(accounts)))
            if before is not None:
                created, run_id = before
                stmt = stmt.where(
                    (TradeRun.created_at < created) | ((TradeRun.created_at == created) & (TradeRun.id < run_id))
                )
            stmt = stmt.order_by(TradeRun.created_at.desc(), TradeRun.id.desc()).limit(limit)
            return list(session.scalars(stmt))

        return await self.read(query)

    async def run_progress(self, run_id: str, *, for_watcher: bool = True) -> RunProgress | None:
        """Where a run stands, or None if there is no such run: one small row. A watcher's read
        goes to the watchers' pool, so a storm of new streams never queues in front of a
        SubmitRun; others (GetRun, CancelRun) to the readers' pool, never behind such a storm."""

        def query(session: Session) -> RunProgress | None:
            row = session.execute(
                select(TradeRun.account, TradeRun.status, TradeRun.last_sequence, TradeRun.gateway)
                .where(TradeRun.id == run_id)
            ).one_or_none()
            return None if row is None else RunProgress(row[0], row[1], row[2], row[3])

        return await (self.watch_read(query) if for_watcher else self.read(query))

    async def events_after(self, run_id: str, after_sequence: int, limit: int) -> list[StoredEvent]:
        """Up to `limit` stored events of a run after a sequence, in order. (A watcher's read:
        plain rows, no ORM objects, as thousands of streams may replay at once.)"""
        columns = (TradeEvent.run_id, TradeEvent.sequence, TradeEvent.kind, TradeEvent.payload,
                   TradeEvent.ib_time, TradeEvent.stored_at)

        def query(session: Session) -> list[StoredEvent]:
            rows = session.execute(
                select(*columns)
                .where(TradeEvent.run_id == run_id, TradeEvent.sequence > after_sequence)
                .order_by(TradeEvent.sequence)
                .limit(limit)
            )
            return [StoredEvent(*row) for row in rows]

        return await self.watch_read(query)

    async def max_ib_order_id(self, endpoint: str, client_id: int) -> int:
        def query(session: Session) -> int:
            value = session.scalar(
                select(func.max(TradeOrder.ib_order_id)).where(
                    TradeOrder.ib_endpoint == endpoint, TradeOrder.ib_client_id == client_id
                )
            )
            return int(value or 0)

        return await self.read(query)

    # -- queries the engine needs -----------------------------------------------------------------

    async def runs_holding(self, client_order_ids: list[str]) -> list[TradeRun]:
        """The runs (with their orders) that hold any of these client_order_ids."""

        def query(session: Session) -> list[TradeRun]:
            run_ids = select(TradeOrder.run_id).where(TradeOrder.client_order_id.in_(client_order_ids))
            return list(session.scalars(
                select(TradeRun).where(TradeRun.id.in_(run_ids)).options(selectinload(TradeRun.orders))
            ))

        return await self.read(query)

    async def open_runs(self, gateway: str | None = None) -> list[tuple[str, datetime | None]]:
        """(run id, deadline) of every run still RUNNING; only those `gateway` owns when given
        (several gateways share the database, and each resumes and counts only its own)."""

        def query(session: Session) -> list[tuple[str, datetime | None]]:
            stmt = select(TradeRun.id, TradeRun.deadline_at).where(TradeRun.status == RunStatus.RUNNING.value)
            if gateway is not None:
                stmt = stmt.where(TradeRun.gateway == gateway)
            return [(row[0], row[1]) for row in session.execute(stmt)]

        return await self.read(query)

    async def unfinished_orders(self, run_ids: list[str]) -> list[int]:
        """Row ids of these runs' orders that are not in a final state."""

        def query(session: Session) -> list[int]:
            return list(session.scalars(
                select(TradeOrder.id).where(
                    TradeOrder.run_id.in_(run_ids), TradeOrder.status.not_in([s.value for s in DONE_STATES])
                )
            ))

        return await self.read(query)

    async def all_orders_done(self, run_id: str) -> bool:
        def query(session: Session) -> bool:
            statuses = session.scalars(select(TradeOrder.status).where(TradeOrder.run_id == run_id))
            return all(OrderStatus(s) in DONE_STATES for s in statuses)

        return await self.read(query)

    async def all_fills_charged(self, run_id: str) -> bool:
        """Whether every current fill of the run has its commission."""

        def query(session: Session) -> bool:
            return session.scalar(
                select(TradeFill.id)
                .join(TradeOrder, TradeFill.order_id == TradeOrder.id)
                .where(TradeOrder.run_id == run_id, TradeFill.commission.is_(None), TradeFill.superseded_by.is_(None))
                .limit(1)
            ) is None

        return await self.read(query)


ORM_RUNS = "runs changed through the ORM"


def _note_runs_the_orm_changes(session: Session, _context: object, _instances: object) -> None:
    """The recorder writes runs and orders without the ORM; should anything change one through
    the ORM all the same, the ledger must not keep its own copy of that run."""
    runs: set[str] = session.info.setdefault(ORM_RUNS, set())
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, TradeRun):
            runs.add(row.id)
        elif isinstance(row, TradeOrder):
            runs.add(row.run_id)
