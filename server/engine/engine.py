"""The execution engine: the one place that decides what happens to runs and orders.

It takes commands (submit, cancel) from the API and events from the IB sessions, applies them
through the store (state change and event row in one transaction), publishes what committed,
and drives each run to its end: all orders done or the deadline passed → cancel what is left,
reconcile executions with IB, decide the run's status.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from execgw.server.db.faults import is_outage
from execgw.server.db.models import EventKind, OrderStatus, RunStatus, TradeFill, TradeOrder, TradeRun, utcnow
from execgw.server.engine import state
from execgw.server.engine.answers import OPEN_ORDER_KEYS, IbAnswers
from execgw.server.engine.bus import EventBus
from execgw.server.engine.idempotency import existing_run
from execgw.server.engine.reconciler import Reconciler
from execgw.server.engine.recorder import Recorder, order_status_payload
from execgw.server.engine.runs import (
    CancelOutcome,
    DatabaseUnavailable,
    EndpointReadOnly,
    EngineTimings,
    ModeNotConfigured,
    NotConnected,
    RunClock,
    RunNotFound,
)
from execgw.server.engine.store import Store
from execgw.server.engine.validation import OrderRequest, RunRequest
from execgw.server.ib import events as ib
from execgw.server.ib.error_codes import (
    CANCEL_ANSWER_CODES,
    NOT_ABOUT_ORDERS,
    NOT_CONNECTED_CODE,
    ORDER_CANCELLED_CODE,
    OrderErrorKind,
    classify_order_error,
    is_read_only_refusal,
)
from execgw.server.ib.session import IBSession, MarketOrder, NotSent, Withdrawn

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECTIVITY_LOST = 1100
CONNECTIVITY_RESTORED_DATA_LOST = 1101
CONNECTIVITY_RESTORED = 1102


class ExecutionEngine:
    def __init__(self, store: Store, bus: EventBus, timings: EngineTimings | None = None) -> None:
        self.store = store
        self.bus = bus
        self.timings = timings or EngineTimings()
        self.sessions: dict[str, IBSession] = {}
        self._inbox: asyncio.Queue[ib.IbEvent] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self._runs: dict[str, RunClock] = {}
        self._changed = asyncio.Condition()
        self._answers = IbAnswers()
        self._reconciler = Reconciler(
            self._answers, self._commit, self._finish_all_soon, self.timings.reconcile_timeout,
            self.timings.retry_interval,
        )
        self._database_ok = True
        self._events_dropped = 0
        self.poison_reports = 0  # IB reports that could not be applied (a bug), skipped and logged
        self._recovering = False
        # Commission reports that arrived before their execution. The writer thread only reads
        # it; it changes on the loop, after the transaction that used it committed, so a retried
        # transaction finds every report it needs again.
        self._early_commissions: dict[str, ib.CommissionReport] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False
        # Told (mode, connected) whenever an IB endpoint comes or goes; the health service listens.
        self.connection_listeners: list[Callable[[str, bool], None]] = []
        # mode → IB's words, while TWS answers that its API is read-only (orders get 321).
        self.read_only: dict[str, str] = {}

    # -- wiring -------------------------------------------------------------------------------

    def on_ib_event(self, event: ib.IbEvent) -> None:
        """The IB sessions' sink; called on the loop. While the database is down IB's reports are
        held, up to a bound; past it they are dropped and recovered afterwards by reconciling with
        IB. Connection events and end markers are never dropped: recovery depends on them."""
        droppable = isinstance(event, ib.OrderStatusReport | ib.ExecutionReport | ib.CommissionReport)
        if droppable and not self._database_ok and self._inbox.qsize() >= self.timings.max_held_events:
            if self._events_dropped == 0:
                log.error("database down and %d IB events held: dropping IB's reports, will reconcile with IB",
                          self.timings.max_held_events)
            self._events_dropped += 1
            return
        self._inbox.put_nowait(event)

    def add_session(self, session: IBSession) -> None:
        self.sessions[session.endpoint.mode] = session

    async def start(self) -> None:
        for session in self.sessions.values():
            floor = await self.store.max_ib_order_id(session.endpoint.address, session.endpoint.client_id)
            session.order_ids.raise_floor(floor + 1)
        await self._resume_open_runs()
        self._consumer = asyncio.get_running_loop().create_task(self._consume(), name="engine-inbox")
        for session in self.sessions.values():
            session.start()

    async def stop(self) -> None:
        self._stopping = True
        for clock in self._runs.values():
            if clock.timer is not None:
                clock.timer.cancel()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for session in self.sessions.values():
            await session.stop()
        if self._consumer is not None:
            await self._drain_inbox()
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, object], name: str) -> asyncio.Task[Any] | None:
        if self._stopping:
            # Shutting down: what this would have done is redone by the next start's
            # reconciliation and resumed deadlines.
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    # -- commands -----------------------------------------------------------------------------

    def mode_ready(self, mode: str) -> bool:
        """Connected, IB linked, and TWS takes orders from the API."""
        session = self.sessions.get(mode)
        return session is not None and session.ready and mode not in self.read_only

    @property
    def accepting_runs(self) -> bool:
        """New runs need a database that takes writes and no IB events waiting to be recovered."""
        return self._database_ok and self._events_dropped == 0 and not self._recovering

    async def submit_run(self, request: RunRequest) -> tuple[TradeRun, bool]:
        """Records the run and its orders, then sends them. Returns (run, existing)."""
        session = self.sessions.get(request.mode)
        if session is None:
            raise ModeNotConfigured(request.mode)
        existing = await self._existing_run(request)
        if existing is not None:
            return existing, True
        if not session.ready:
            raise NotConnected(request.mode)
        if request.mode in self.read_only:
            raise EndpointReadOnly(request.mode, self.read_only[request.mode])
        if not self.accepting_runs:
            raise DatabaseUnavailable("the database is not taking writes; IB events are held")
        ids = session.order_ids.allocate(len(request.orders))
        run_id = str(uuid.uuid4())
        deadline_at = utcnow() + request.deadline

        def create(rec: Recorder) -> None:
            now = utcnow()
            run = TradeRun(
                id=run_id, mode=request.mode, account=request.account or None, status=RunStatus.RUNNING.value,
                status_reason="submitted", submitted_by=request.submitted_by or None, deadline_at=deadline_at,
                last_sequence=0, created_at=now, updated_at=now,
            )
            rec.session.add(run)
            rec.session.flush()  # the run row first: events and orders refer to it
            rec.emit(run, EventKind.RUN_STATUS, {
                "status": "RUN_STATUS_RUNNING", "previous_status": "RUN_STATUS_UNSPECIFIED",
                "reason": f"submitted {len(request.orders)} orders", "final": False,
            })
            for order_id, spec in zip(ids, request.orders, strict=True):
                order = _order_row(run_id, spec, request.account, session, order_id)
                rec.session.add(order)
                rec.session.flush()
                rec.emit(run, EventKind.ORDER_STATUS, order_status_payload(order, "UNSPECIFIED", ""), order=order)

        try:
            await self._commit(create)
        except IntegrityError:
            # Another request with these client_order_ids committed first: answer as a retry would.
            existing = await self._existing_run(request)
            if existing is None:
                raise
            return existing, True
        self._runs[run_id] = clock = RunClock()
        clock.timer = asyncio.get_running_loop().call_later(
            request.deadline.total_seconds(), self._deadline_passed, run_id
        )
        run = await self.store.get_run(run_id)
        assert run is not None
        self._spawn(self._send_orders(session, run, clock), f"send-{run_id}")
        return run, False

    async def _existing_run(self, request: RunRequest) -> TradeRun | None:
        return await self.store.read(lambda session: existing_run(session, request))

    async def _send_orders(self, session: IBSession, run: TradeRun, clock: RunClock) -> None:
        # The clock is held here, not looked up per order: once the run ends its clock says
        # "stop sending" even after the engine has forgotten the run.
        for position, order in enumerate(run.orders):
            try:
                await self._send_order(session, run, order, clock)
            except Exception:
                # Not an IB or socket answer we know: the order may or may not have gone out, and
                # sending more after an unexplained failure is not safe. Nothing is left pending.
                log.exception("sending %s failed unexpectedly; the rest of run %s is withdrawn",
                              order.client_order_id, run.id)
                clock.sending_stopped = True
                failed, rest = order.id, [o.id for o in run.orders[position + 1:]]
                await self._commit(lambda rec: self._abandon_sending(rec, failed, rest))  # noqa: B023 (awaited here)
                return

    @staticmethod
    def _abandon_sending(rec: Recorder, failed: int, rest: list[int]) -> None:
        rec.mark_unknown([failed], "sending to IB failed unexpectedly; waiting for IB's account of the order")
        for order_id in rest:
            rec.withdraw(order_id)

    async def _send_order(self, session: IBSession, run: TradeRun, order: TradeOrder, clock: RunClock) -> None:
        market_order = MarketOrder(
            order_id=order.ib_order_id or 0, order_ref=order.client_order_id, symbol=order.symbol,
            sec_type=order.sec_type, exchange=order.exchange, primary_exchange=order.primary_exchange or "",
            currency=order.currency, side=order.side, quantity=order.quantity, account=order.account or "",
        )
        while True:
            try:
                await session.place_market_order(market_order, lambda: not clock.sending_stopped)
                clock.sent.add(market_order.order_id)
            except Withdrawn:
                await self._commit(lambda rec: rec.withdraw(order.id))
            except NotSent as exc:
                # Certainly not sent: wait for the socket to come back, until the run's deadline.
                remaining = (run.deadline_at - utcnow()).total_seconds() if run.deadline_at else 0.0
                if remaining > 0 and await session.wait_ready(remaining):
                    continue
                log.error("%s was never sent to IB: %s", order.client_order_id, exc)
                await self._commit(lambda rec: rec.mark_unknown([order.id], "IB was not connected until the run's deadline"))
            except OSError as exc:
                # Maybe sent, maybe not: UNKNOWN until reconciliation by orderRef tells. Never resent.
                log.error("sending %s to IB failed: %s", order.client_order_id, exc)
                await self._commit(lambda rec: rec.mark_unknown([order.id], "sending to IB failed"))
            else:
                log.info("placed %s %s %g %s as IB order %s (run %s)", order.client_order_id, order.side,
                         order.quantity, order.symbol, order.ib_order_id, run.id)
            return

    async def cancel_run(self, run_id: str) -> tuple[TradeRun, list[CancelOutcome]]:
        run = await self.store.get_run(run_id, with_fills=False)
        if run is None:
            raise RunNotFound(run_id)
        clock = self._runs.setdefault(run_id, RunClock())
        outcomes: list[CancelOutcome] = []
        if run.status == RunStatus.RUNNING.value:
            session = self.sessions.get(run.mode)
            if session is None or not session.ready:
                raise NotConnected(run.mode)  # refused: the run is not the caller's to call cancelled
            clock.cancelled_by_caller = True
            await self._cancel_open_orders(session, run, clock)
            self._finish_soon(run_id)
            # The answer waits for the run's end, within bounds: should IB go away meanwhile, the
            # run still ends in the background and the caller gets the state as it stands.
            finishing = clock.finishing
            if finishing is not None:
                bound = self.timings.reconcile_timeout + self.timings.commission_grace + 5.0
                await asyncio.wait([finishing], timeout=bound)
        refreshed = await self.store.get_run(run_id, with_fills=False)
        assert refreshed is not None
        for order in refreshed.orders:
            code, message = clock.cancel_answers.get((order.ib_endpoint, order.ib_order_id or -1), (0, ""))
            if not message and OrderStatus(order.status) in state.DONE_STATES and run.status != RunStatus.RUNNING.value:
                message = "run had already finished; nothing sent"
            outcomes.append(CancelOutcome(order.client_order_id, order.ib_order_id or 0, order.status, code, message))
        if refreshed.status != RunStatus.RUNNING.value:
            self._runs.pop(run_id, None)
        return refreshed, outcomes

    # -- events from IB ---------------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            first = await self._inbox.get()
            batch = [first]
            while not self._inbox.empty() and len(batch) < 500:
                batch.append(self._inbox.get_nowait())
            try:
                await self._handle(batch)
            except Exception:
                # A bug, not a database outage (those are retried in _apply). Apply the batch
                # again one event at a time, so that one poison report costs only itself;
                # reports already applied are ignored as duplicates the second time.
                log.exception("failed to apply a batch of %d IB events; applying them one by one", len(batch))
                await self._handle_one_by_one(batch)
            if self._events_dropped and self._inbox.empty() and not self._recovering:
                self._recovering = True
                self._spawn(self._recover_dropped(), "recover-dropped-events")

    async def _handle_one_by_one(self, batch: list[ib.IbEvent]) -> None:
        for event in batch:
            try:
                await self._handle([event])
            except Exception:
                # Not counted as dropped: reconciling would bring the same report back and fail
                # again, refusing new runs for ever. It is logged whole, to be fixed by a person.
                self.poison_reports += 1
                log.exception("IB report could not be applied and is skipped: %r", event)

    async def _drain_inbox(self) -> None:
        batch = []
        while not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        if batch:
            await self._handle(batch)

    async def _handle(self, batch: list[ib.IbEvent]) -> None:
        """Applies a batch in arrival order; control events split it so that, e.g., the end of an
        execution request is seen only after the executions before it are committed."""
        pending: list[ib.IbEvent] = []
        for event in batch:
            if isinstance(event, ib.OrderStatusReport | ib.ExecutionReport | ib.CommissionReport):
                pending.append(event)
                continue
            if isinstance(event, ib.IbError):
                self._note_error(event)
                if self._about_an_order(event):
                    pending.append(event)
                    continue
            await self._apply(pending)
            pending = []
            self._control(event)
        await self._apply(pending)

    async def _apply(self, events: list[ib.IbEvent]) -> None:
        if not events:
            return
        early = self._early_commissions
        merged_early: list[str] = []
        arrived_early: dict[str, ib.CommissionReport] = {}

        def work(rec: Recorder) -> tuple[set[str], list[tuple[str, str | None, int]]]:
            merged_early.clear()
            arrived_early.clear()
            touched: set[str] = set()
            rec.prefetch(events)
            for event in events:
                order: TradeOrder | None = None
                if isinstance(event, ib.OrderStatusReport):
                    order = rec.apply_order_status(event)
                elif isinstance(event, ib.ExecutionReport):
                    fill = rec.record_fill(event)
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
                (done_runs, revived), committed = await self.store.write(work)
                break
            except (OperationalError, InterfaceError) as exc:
                if not is_outage(exc):
                    raise  # the database refused what we wrote: a bug, not an outage to wait out
                # Held, not lost: retried until the database is back; nothing is emitted before.
                if self._database_ok:
                    log.error("database write failed (%s); holding %d IB events and retrying",
                              exc.orig if exc.orig is not None else exc, len(events) + self._inbox.qsize())
                self._database_ok = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for exec_id in merged_early:
            early.pop(exec_id, None)
        early.update(arrived_early)
        if not self._database_ok:
            log.info("database is back; held IB events written")
            self._database_ok = True
        self.bus.publish(committed)
        async with self._changed:
            self._changed.notify_all()
        for run_id in done_runs:
            self._finish_soon(run_id)
        for run_id, endpoint, order_id in revived:
            # IB works an order we had taken for refused, and its run is over: no order of ours
            # may outlive its run. The cancel's answer (or a fill) updates it like any other.
            session = self._session_at(endpoint or "")
            if session is not None and order_id:
                log.warning("run %s is over but IB works its order %d: cancelling it", run_id, order_id)
                self._spawn(self._cancel_quietly(session, order_id), f"cancel-revived-{order_id}")

    async def _cancel_quietly(self, session: IBSession, order_id: int) -> None:
        try:
            await session.cancel_order(order_id)
        except ConnectionError as exc:
            log.error("could not cancel IB order %d (%s); the next reconciliation shows it", order_id, exc)

    def _about_an_order(self, error: ib.IbError) -> bool:
        """An error for one of our order ids (not for a request of ours, not a link notice)."""
        if error.req_id <= 0 or error.code in NOT_ABOUT_ORDERS:
            return False
        if self._answers.fail_request(error.endpoint, error.req_id, f"IB {error.code}: {error.message}"):
            return False  # it answered a request (reqExecutions), which now fails: state unknown
        return True

    def _note_error(self, error: ib.IbError) -> None:
        if error.code in CANCEL_ANSWER_CODES or error.code == ORDER_CANCELLED_CODE:
            for clock in self._runs.values():
                # Order ids are per endpoint: the answer belongs to the run that has that order there.
                clock.cancel_answers.setdefault((error.endpoint, error.req_id), (error.code, error.message))
        if is_read_only_refusal(error.code, error.message):
            self._read_only_seen(error)
        if error.req_id > 0 and error.code not in NOT_ABOUT_ORDERS and error.code != NOT_CONNECTED_CODE:
            kind = classify_order_error(error.code)
            if kind == OrderErrorKind.UNKNOWN:
                log.warning("IB %s error %d for id %d is not a code this gateway classifies; an order with "
                            "that id is taken as refused unless IB reports it alive: %s",
                            error.endpoint, error.code, error.req_id, error.message)
                return
            level = logging.INFO if kind in (OrderErrorKind.WARNING, OrderErrorKind.CANCEL_ANSWER) else logging.WARNING
        else:
            level = logging.INFO if 2100 <= error.code < 2200 else logging.WARNING
        log.log(level, "IB %s error %d (id %d): %s", error.endpoint, error.code, error.req_id, error.message)

    def _read_only_seen(self, error: ib.IbError) -> None:
        """TWS answered that its API is read-only: no run can trade there until that changes."""
        session = self._session_at(error.endpoint)
        if session is None:
            return
        mode = session.endpoint.mode
        self._answers.fail(error.endpoint, f"IB {error.code}: {error.message}", keys=OPEN_ORDER_KEYS)
        if mode in self.read_only:
            return
        self.read_only[mode] = error.message
        log.error("IB %s (%s) is in Read-Only API mode, no order can be placed: uncheck 'Read-Only API' in "
                  "TWS / IB Gateway Global Configuration > API > Settings (IB %d: %s)",
                  mode, error.endpoint, error.code, error.message)
        for listener in self.connection_listeners:
            listener(mode, False)

    def _read_only_cleared(self, mode: str, why: str) -> None:
        if self.read_only.pop(mode, None) is None:
            return
        log.warning("IB %s takes orders again (%s)", mode, why)
        for listener in self.connection_listeners:
            listener(mode, self.mode_ready(mode))

    def _control(self, event: ib.IbEvent) -> None:
        if isinstance(event, ib.OpenOrdersEnd):
            # TWS refuses reqOpenOrders in Read-Only API mode: an answer means the mode is off.
            session = self._session_at(event.endpoint)
            if session is not None:
                self._read_only_cleared(session.endpoint.mode, "IB answered reqOpenOrders")
        if self._answers.resolve(event):
            return
        if isinstance(event, ib.Connected | ib.Disconnected):
            self._connection_changed(event)
        elif isinstance(event, ib.IbError) and event.code in (
            CONNECTIVITY_LOST, CONNECTIVITY_RESTORED_DATA_LOST, CONNECTIVITY_RESTORED
        ):
            session = self._session_at(event.endpoint)
            if session is None:
                return
            for listener in self.connection_listeners:
                listener(session.endpoint.mode, self.mode_ready(session.endpoint.mode))
            if event.code != CONNECTIVITY_LOST:
                # 1101 says data was lost; after 1102 a reconciliation is cheap insurance.
                self._spawn(self._reconciler.reconcile_until_done(session), f"reconcile-{session.endpoint.mode}")

    def _connection_changed(self, event: ib.Connected | ib.Disconnected) -> None:
        session = self._session_at(event.endpoint)
        if session is None:
            return
        for listener in self.connection_listeners:
            listener(session.endpoint.mode, isinstance(event, ib.Connected))
        if isinstance(event, ib.Connected):
            # A new socket may find the TWS setting changed: ask again rather than remember.
            self.read_only.pop(session.endpoint.mode, None)
            # Whatever IB did while we were away is recovered by asking IB, on every connect.
            self._spawn(self._reconciler.reconcile_until_done(session), f"reconcile-{session.endpoint.mode}")
        else:
            self._answers.fail(event.endpoint, f"IB disconnected: {event.reason}")

    def _session_at(self, address: str) -> IBSession | None:
        return next((s for s in self.sessions.values() if s.endpoint.address == address), None)

    # -- reconciliation and finishing runs ----------------------------------------------------------

    async def _recover_dropped(self) -> None:
        """IB reports were dropped: new runs wait until every endpoint was reconciled in full."""
        try:
            self._events_dropped = 0
            for session in self.sessions.values():
                while not await session.wait_ready(3600) or not await self._reconciler.reconcile(session):
                    await asyncio.sleep(self.timings.retry_interval)
            log.info("dropped IB reports recovered by reconciliation; taking new runs again")
        finally:
            self._recovering = False

    async def _commit(self, work: Callable[[Recorder], T]) -> T:
        """One transaction; its events go to watchers after the commit; waiters re-check."""
        result, events = await self.store.write(work)
        self.bus.publish(events)
        async with self._changed:
            self._changed.notify_all()
        return result

    def _deadline_passed(self, run_id: str) -> None:
        log.info("run %s reached its deadline", run_id)
        self._finish_soon(run_id)

    def _finish_all_soon(self, run_ids: set[str]) -> None:
        for run_id in run_ids:
            self._finish_soon(run_id)

    def _finish_soon(self, run_id: str) -> None:
        clock = self._runs.setdefault(run_id, RunClock())
        if clock.finishing is None or clock.finishing.done():
            clock.finishing = self._spawn(self._finish(run_id), f"finish-{run_id}")

    async def _finish(self, run_id: str) -> None:
        """Cancel what is open, reconcile executions with IB, then decide the run's status.
        Retried while IB cannot be asked (an unanswered reconciliation is not "no fills") and
        while the database is down."""
        clock = self._runs.setdefault(run_id, RunClock())
        while True:
            try:
                if await self._try_finish(run_id, clock):
                    return
            except (OperationalError, InterfaceError, ConnectionError) as exc:
                log.warning("finishing run %s must wait: %s", run_id, exc)
            await asyncio.sleep(self.timings.retry_interval)

    async def _try_finish(self, run_id: str, clock: RunClock) -> bool:
        run = await self.store.get_run(run_id, with_fills=False)
        if run is None or run.status != RunStatus.RUNNING.value:
            return True
        session = self.sessions.get(run.mode)
        if session is None or not session.ready:
            return False
        await self._cancel_open_orders(session, run, clock)
        if not await self._reconciler.reconcile(session, frozenset(o.symbol for o in run.orders)):
            return False
        await self._wait_for_commissions(run_id)
        status = await self._commit(lambda rec: rec.finish_run(rec.run(run_id), clock.cancelled_by_caller))
        if clock.timer is not None:
            clock.timer.cancel()
        # A long-lived gateway keeps no state for finished runs (a later fill needs none).
        self._runs.pop(run_id, None)
        log.info("run %s finished: %s", run_id, status.value)
        return True

    async def _cancel_open_orders(self, session: IBSession, run: TradeRun, clock: RunClock) -> None:
        clock.sending_stopped = True
        open_orders = [o for o in run.orders if OrderStatus(o.status) not in state.DONE_STATES]
        if not open_orders:
            return
        for order in open_orders:
            never_sent = order.status == OrderStatus.PENDING_SUBMIT.value and order.ib_order_id not in clock.sent
            if order.ib_order_id and not never_sent:  # a never-sent one is withdrawn by its sender
                await session.cancel_order(order.ib_order_id)
        await self._wait_until(lambda: self._orders_done(run.id), self.timings.cancel_wait)

    async def _orders_done(self, run_id: str) -> bool:
        return await self.store.read(lambda s: _all_done_in(s, run_id))

    async def _wait_for_commissions(self, run_id: str) -> None:
        def all_charged(session: Session) -> bool:
            return session.scalar(
                select(TradeFill.id)
                .join(TradeOrder, TradeFill.order_id == TradeOrder.id)
                .where(TradeOrder.run_id == run_id, TradeFill.commission.is_(None), TradeFill.superseded_by.is_(None))
                .limit(1)
            ) is None

        await self._wait_until(lambda: self.store.read(all_charged), self.timings.commission_grace)

    async def _wait_until(self, predicate: Callable[[], object], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            if await predicate():  # type: ignore[misc]
                return True
            remaining = end - loop.time()
            if remaining <= 0:
                return False
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
                except TimeoutError:
                    pass

    async def _resume_open_runs(self) -> None:
        """Runs left RUNNING by a previous process get their deadlines back."""

        def query(session: Session) -> list[tuple[str, object]]:
            rows = session.execute(
                select(TradeRun.id, TradeRun.deadline_at).where(TradeRun.status == RunStatus.RUNNING.value)
            )
            return [(r[0], r[1]) for r in rows]

        open_runs = await self.store.read(query)
        if open_runs:
            # A previous process may have died between writing an order and sending it, or missed
            # IB's reports: its open orders are UNKNOWN until IB tells (reconciliation on connect).
            run_ids = [run_id for run_id, _ in open_runs]
            unfinished = await self.store.read(lambda s: list(s.scalars(
                select(TradeOrder.id).where(
                    TradeOrder.run_id.in_(run_ids),
                    TradeOrder.status.not_in([st.value for st in state.DONE_STATES]),
                )
            )))
            await self._commit(
                lambda rec: rec.mark_unknown(unfinished, "gateway restarted; waiting for IB's account of the order")
            )
        now = utcnow()
        for run_id, deadline_at in open_runs:
            delay = max((deadline_at - now).total_seconds(), 0.0) if deadline_at else 0.0  # type: ignore[operator]
            clock = self._runs.setdefault(run_id, RunClock())
            clock.timer = asyncio.get_running_loop().call_later(delay, self._deadline_passed, run_id)
            log.info("resuming open run %s (deadline in %.0fs)", run_id, delay)


def _order_row(run_id: str, spec: OrderRequest, account: str, session: IBSession, ib_order_id: int) -> TradeOrder:
    now = utcnow()
    return TradeOrder(
        run_id=run_id, client_order_id=spec.client_order_id, symbol=spec.symbol, sec_type=spec.sec_type,
        exchange=spec.exchange, primary_exchange=spec.primary_exchange or None, currency=spec.currency,
        side=spec.side, quantity=spec.quantity, order_type=spec.order_type, account=account or None,
        status=OrderStatus.PENDING_SUBMIT.value, filled_qty=0.0, ib_endpoint=session.endpoint.address,
        ib_client_id=session.endpoint.client_id, ib_order_id=ib_order_id, created_at=now, updated_at=now,
    )


def _all_done_in(session: Session, run_id: str) -> bool:
    statuses = session.scalars(select(TradeOrder.status).where(TradeOrder.run_id == run_id))
    return all(OrderStatus(s) in state.DONE_STATES for s in statuses)

