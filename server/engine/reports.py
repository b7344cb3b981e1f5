"""IB's reports (order statuses, executions, commissions, errors about our orders) into our books.

They arrive on the loop from the IB sessions, wait in an inbox, and are applied in batches, in
arrival order, through the Recorder: one transaction per batch, published after the commit.
While the database is down they are held (retried until it is back); past a bound they are
dropped and recovered afterwards by reconciling with IB. A report that cannot be applied (a
bug) costs only itself: it is logged whole and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.exc import InterfaceError, OperationalError

from execgw.server.db.faults import is_outage
from execgw.server.db.models import RunStatus
from execgw.server.engine.books import Books
from execgw.server.engine.endpoints import Endpoints
from execgw.server.engine.entries import OrderEntry
from execgw.server.engine.reconciler import Reconciler
from execgw.server.engine.recorder import Recorder
from execgw.server.engine.runs import EngineTimings
from execgw.server.engine.tasks import TaskSupervisor
from execgw.server.ib import events as ib
from execgw.server.ib.backpressure import Backpressure
from execgw.server.ib.session import IBSession

log = logging.getLogger(__name__)

BATCH = 2000
REPORTS = (ib.OrderStatusReport, ib.ExecutionReport, ib.CommissionReport)


class ReportIntake:
    def __init__(
        self,
        books: Books,
        endpoints: Endpoints,
        reconciler: Reconciler,
        finish_soon: Callable[[str], None],
        tasks: TaskSupervisor,
        timings: EngineTimings,
    ) -> None:
        self._books = books
        self._endpoints = endpoints
        self._reconciler = reconciler
        self._finish_soon = finish_soon
        self._tasks = tasks
        self._timings = timings
        self._inbox: asyncio.Queue[ib.IbEvent | None] = asyncio.Queue()  # None: stop after the rest
        self._in_flight = 0  # events of the batch being applied
        # The IB sessions' decoding waits while this many reports wait here (ib/backpressure.py).
        self.backpressure = Backpressure(timings.max_decoded_reports, lambda: self.waiting)
        self.database_ok = True
        self.events_dropped = 0
        self.recovering = False
        self.poison_reports = 0  # IB reports that could not be applied (a bug), skipped and logged
        self.on_batch: Callable[[int], None] = lambda size: None  # told each batch's size (the metrics)
        # Told True / False each time the database starts or stops taking the writer's transactions
        # (health `execgw.database`, the outage count): a transition is seen where it happens, not
        # by looking at database_ok often enough.
        self.database_listeners: list[Callable[[bool], None]] = []
        # Commission reports that arrived before their execution. The writer thread only reads
        # it; it changes on the loop, after the transaction that used it committed, so a retried
        # transaction finds every report it needs again.
        self._early_commissions: dict[str, ib.CommissionReport] = {}

    def offer(self, event: ib.IbEvent) -> None:
        """The IB sessions' sink; called on the loop. Connection events and end markers are never
        dropped: recovery depends on them."""
        droppable = isinstance(event, REPORTS)
        if droppable and not self.database_ok and self._inbox.qsize() >= self._timings.max_held_events:
            if self.events_dropped == 0:
                log.error("database down and %d IB events held: dropping IB's reports, will reconcile with IB",
                          self._timings.max_held_events)
            self.events_dropped += 1
            return
        self._inbox.put_nowait(event)

    @property
    def held(self) -> int:
        return self._inbox.qsize()

    @property
    def waiting(self) -> int:
        """Events offered and not yet applied: the inbox and the batch being applied."""
        return self._inbox.qsize() + self._in_flight

    async def run(self) -> None:
        """Applies the inbox until `finish` is called and everything before it is applied."""
        while True:
            first = await self._inbox.get()
            if first is None:
                return
            batch = [first]
            while not self._inbox.empty() and len(batch) < BATCH:
                if (event := self._inbox.get_nowait()) is None:
                    self._inbox.put_nowait(None)  # seen after this batch
                    break
                batch.append(event)
            self.on_batch(len(batch))
            self._in_flight = len(batch)
            try:
                await self._handle(batch)
            except Exception:
                # A bug, not a database outage (those are retried in _apply). Apply the batch
                # again one event at a time, so that one poison report costs only itself;
                # reports already applied are ignored as duplicates the second time.
                log.exception("failed to apply a batch of %d IB events; applying them one by one", len(batch))
                await self._handle_one_by_one(batch)
            finally:
                self._in_flight = 0
                self.backpressure.room_made()
            if self.events_dropped and self._inbox.empty() and not self.recovering:
                self.recovering = True
                self._tasks.spawn(self._recover_dropped(), "recover-dropped-events")

    def finish(self) -> None:
        """Asks `run` to return once what is in the inbox now is applied (at shutdown, after the
        sessions stopped: nothing more arrives)."""
        self._inbox.put_nowait(None)

    async def _handle_one_by_one(self, batch: list[ib.IbEvent]) -> None:
        for event in batch:
            try:
                await self._handle([event])
            except Exception:
                # Not counted as dropped: reconciling would bring the same report back and fail
                # again, refusing new runs for ever. It is logged whole, to be fixed by a person.
                self.poison_reports += 1
                log.exception("IB report could not be applied and is skipped: %r", event)

    async def _handle(self, batch: list[ib.IbEvent]) -> None:
        """Applies a batch in arrival order; control events split it so that, e.g., the end of an
        execution request is seen only after the executions before it are committed."""
        pending: list[ib.IbEvent] = []
        for event in batch:
            if isinstance(event, REPORTS):
                pending.append(event)
                continue
            if isinstance(event, ib.IbError):
                self._endpoints.note_error(event)
                if self._endpoints.about_an_order(event):
                    pending.append(event)
                    continue
            await self._apply(pending)
            pending = []
            self._endpoints.control(event)
        await self._apply(pending)

    async def _apply(self, events: list[ib.IbEvent]) -> None:
        if not events:
            return
        early = self._early_commissions
        merged_early: list[str] = []
        arrived_early: dict[str, ib.CommissionReport] = {}
        answered: list[tuple[str, int, bool]] = []  # executions answering a reconciliation: stored anew?

        def work(rec: Recorder) -> tuple[set[str], list[tuple[str, str | None, int]]]:
            merged_early.clear()
            arrived_early.clear()
            answered.clear()
            touched: set[str] = set()
            rec.prefetch(events)
            for event in events:
                order: OrderEntry | None = None
                if isinstance(event, ib.OrderStatusReport):
                    order = rec.apply_order_status(event)
                elif isinstance(event, ib.ExecutionReport):
                    fill = rec.record_fill(event)
                    if event.req_id > 0:
                        answered.append((event.endpoint, event.req_id, fill is not None))
                    if fill is not None:
                        order = rec.order_by_id(fill.order_id)
                        waiting = arrived_early.pop(fill.exec_id, None) or early.get(fill.exec_id)
                        if waiting is not None:
                            rec.merge_commission(waiting)
                            merged_early.append(fill.exec_id)
                        rec.refresh_finished_run(order)
                elif isinstance(event, ib.CommissionReport):
                    if not rec.merge_commission(event):
                        arrived_early[event.exec_id] = event
                elif isinstance(event, ib.IbError):
                    order = rec.apply_error(event)
                if order is not None:
                    touched.add(order.run_id)
            revived = [(o.run_id, o.ib_endpoint, o.ib_order_id or 0) for o in rec.revived
                       if (run := rec.run(o.run_id)) is not None and run.status != RunStatus.RUNNING.value]
            return {run_id for run_id in touched if rec.all_done(run_id)}, revived

        delay = 0.2
        while True:
            try:
                (done_runs, revived), committed = await self._books.store.write(work)
                break
            except (OperationalError, InterfaceError) as exc:
                if not is_outage(exc):
                    raise  # the database refused what we wrote: a bug, not an outage to wait out
                # Held, not lost: retried until the database is back; nothing is emitted before.
                if self.database_ok:
                    log.error("database write failed (%s); holding %d IB events and retrying",
                              exc.orig if exc.orig is not None else exc, len(events) + self._inbox.qsize())
                    self._database_changed(False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for exec_id in merged_early:
            early.pop(exec_id, None)
        early.update(arrived_early)
        if not self.database_ok:
            log.info("database is back; held IB events written")
            self._database_changed(True)
        self._reconciler.answers_applied(
            answered, {e.endpoint for e in events if isinstance(e, ib.OrderStatusReport)})
        await self._books.committed(committed)
        for run_id in done_runs:
            self._finish_soon(run_id)
        for run_id, endpoint, order_id in revived:
            # IB works an order we had taken for refused, and its run is over: no order of ours
            # may outlive its run. The cancel's answer (or a fill) updates it like any other.
            session = self._endpoints.session_at(endpoint or "")
            if session is not None and order_id:
                log.warning("run %s is over but IB works its order %d: cancelling it", run_id, order_id)
                self._tasks.spawn(_cancel_quietly(session, order_id), f"cancel-revived-{order_id}")

    def _database_changed(self, ok: bool) -> None:
        self.database_ok = ok
        # While the database is down the held/dropped rule above applies, not the decoder's wait.
        self.backpressure.set_enabled(ok)
        for listener in self.database_listeners:
            try:
                listener(ok)
            except Exception:
                # A listener's bug must not stop IB's reports from being written.
                log.exception("a database state listener failed")

    async def _recover_dropped(self) -> None:
        """IB reports were dropped: new runs wait until every endpoint was reconciled in full."""
        try:
            self.events_dropped = 0
            for session in self._endpoints.sessions.values():
                while not await session.wait_ready(3600) or not await self._reconciler.reconcile(session):
                    await asyncio.sleep(self._timings.retry_interval)
            log.info("dropped IB reports recovered by reconciliation; taking new runs again")
        finally:
            self.recovering = False


async def _cancel_quietly(session: IBSession, order_id: int) -> None:
    try:
        await session.cancel_order(order_id)
    except ConnectionError as exc:
        log.error("could not cancel IB order %d (%s); the next reconciliation shows it", order_id, exc)
