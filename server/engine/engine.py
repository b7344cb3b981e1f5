"""The execution engine: the one place that decides what happens to runs and orders.

It takes commands from the API (submit and cancel, here) and reports from the IB sessions, and
hands each concern to a part of its own:

- `sending.OrderSender`: a session's orders to IB, in the order their ids were taken;
- `reports.ReportIntake`: IB's reports into our books (held while the database is down);
- `endpoints.Endpoints`: each IB endpoint's state and what IB's errors and notices mean;
- `run_end.RunEnder`: deadlines, and a run's end (cancel, reconcile, decide);
- `tasks.TaskSupervisor`: every background task owned, its failure logged.

Every state change goes through `books.Books`: stored first, then published to watchers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from execgw.server.db.models import (
    DEFAULT_GATEWAY_NAME,
    EventKind,
    OrderStatus,
    RunStatus,
    TradeOrder,
    TradeRun,
    utcnow,
)
from execgw.server.engine import state
from execgw.server.engine.account_guard import AccountGuard, EndpointAccountsMismatch
from execgw.server.engine.answers import IbAnswers
from execgw.server.engine.books import Books
from execgw.server.engine.bus import EventBus
from execgw.server.engine.endpoints import Endpoints
from execgw.server.engine.idempotency import existing_run
from execgw.server.engine.reconciler import Reconciler
from execgw.server.engine.recorder import Recorder, order_status_payload
from execgw.server.engine.reports import ReportIntake
from execgw.server.engine.run_end import RunEnder
from execgw.server.engine.runs import (
    CancelOutcome,
    DatabaseUnavailable,
    EndpointReadOnly,
    EngineTimings,
    ModeNotConfigured,
    NotConnected,
    OpenRun,
    RunNotFound,
)
from execgw.server.engine.sending import OrderSender
from execgw.server.engine.settling import OrderSettler
from execgw.server.engine.store import Store
from execgw.server.engine.tasks import TaskSupervisor
from execgw.server.engine.validation import OrderRequest, RunRequest
from execgw.server.ib import events as ib
from execgw.server.ib.session import IBSession

log = logging.getLogger(__name__)


class ExecutionEngine:
    def __init__(
        self, store: Store, bus: EventBus, timings: EngineTimings | None = None, account_guard: AccountGuard | None = None,
        gateway_name: str = DEFAULT_GATEWAY_NAME,
    ) -> None:
        self.store = store
        self.gateway_name = gateway_name  # recorded on every run it takes: it owns them
        self.bus = bus
        self.timings = timings or EngineTimings()
        self._books = Books(store, bus)
        self._tasks = TaskSupervisor()
        self._open_runs: dict[str, OpenRun] = {}
        self._senders: dict[str, OrderSender] = {}
        self._intake: asyncio.Task[None] | None = None
        answers = IbAnswers()
        reconciler = Reconciler(
            answers, self._books.commit, lambda run_ids: self._run_end.finish_all_soon(run_ids),
            self.timings.reconcile_timeout, self.timings.retry_interval,
        )
        self.reconciler = reconciler  # read by the metrics (reconciliations asked, failed, settled)
        self._endpoints = Endpoints(answers, reconciler, self._open_runs, self._tasks, account_guard)
        self._run_end = RunEnder(
            self._books, self._open_runs, self._endpoints.sessions.get, reconciler, self._tasks, self.timings,
            gateway_name,
        )
        self._reports = ReportIntake(
            self._books, self._endpoints, reconciler, self._run_end.finish_soon, self._tasks, self.timings
        )
        # A request is unanswered only once IB is quiet: nothing of its waits, decoded or not.
        answers.backlog = lambda: self._reports.waiting + sum(s.undecoded for s in self.sessions.values())
        # An operator's word on an UNKNOWN order (AdminService.SettleOrder), through the same books.
        self.settler = OrderSettler(self._books, self._endpoints.sessions, self._run_end.finish_soon)

    # -- wiring -------------------------------------------------------------------------------

    def on_ib_event(self, event: ib.IbEvent) -> None:
        """The IB sessions' sink; called on the loop."""
        self._reports.offer(event)

    def add_session(self, session: IBSession) -> None:
        self._endpoints.sessions[session.endpoint.mode] = session
        session.backpressure = self._reports.backpressure  # its decoding waits for the writer
        self._senders[session.endpoint.mode] = OrderSender(session, self._books.commit)

    @property
    def sessions(self) -> dict[str, IBSession]:
        return self._endpoints.sessions

    @property
    def read_only(self) -> dict[str, str]:
        """mode → IB's words, while TWS answers that its API is read-only."""
        return self._endpoints.read_only

    @property
    def wrong_accounts(self) -> dict[str, str]:
        """mode → why, while that endpoint reports accounts of the other kind (paper vs live)."""
        return self._endpoints.wrong_accounts

    @property
    def connection_listeners(self) -> list[Callable[[str, bool], None]]:
        """Told (mode, ready) whenever an IB endpoint comes or goes."""
        return self._endpoints.listeners

    def orders_waiting(self, mode: str) -> int:
        """Orders queued for that endpoint and not sent yet (the operator's status)."""
        sender = self._senders.get(mode)
        return sender.waiting if sender is not None else 0

    @property
    def open_run_ids(self) -> list[str]:
        """Runs this engine has open: taken here, or resumed after a restart."""
        return list(self._open_runs)

    @property
    def poison_reports(self) -> int:
        return self._reports.poison_reports

    @property
    def reports(self) -> ReportIntake:
        """IB's reports on their way into the books, for the metrics (held, dropped, database ok)."""
        return self._reports

    async def start(self) -> None:
        for session in self.sessions.values():
            floor = await self.store.max_ib_order_id(session.endpoint.address, session.endpoint.client_id)
            session.order_ids.raise_floor(floor + 1)
        await self._run_end.resume_open_runs()
        # Not one of the supervised tasks: at shutdown it is not cancelled but finishes the inbox.
        self._intake = asyncio.get_running_loop().create_task(self._reports.run(), name="engine-inbox")
        self._intake.add_done_callback(_log_failure)
        for mode, sender in self._senders.items():
            self._tasks.spawn(sender.run(), f"send-{mode}")
        for session in self.sessions.values():
            session.start()

    async def stop(self) -> None:
        self._run_end.stop()
        await self._tasks.stop()
        for session in self.sessions.values():
            await session.stop()
        if self._intake is not None:
            self._reports.finish()
            await asyncio.gather(self._intake, return_exceptions=True)

    # -- commands -----------------------------------------------------------------------------

    def mode_ready(self, mode: str) -> bool:
        """Connected, IB linked, and TWS takes orders from the API."""
        return self._endpoints.mode_ready(mode)

    @property
    def accepting_runs(self) -> bool:
        """New runs need a database that takes writes and no IB events waiting to be recovered."""
        reports = self._reports
        return reports.database_ok and reports.events_dropped == 0 and not reports.recovering

    async def submit_run(self, request: RunRequest) -> tuple[TradeRun, bool]:
        """Records the run and its orders, then queues them for sending. Returns (run, existing)."""
        session = self.sessions.get(request.mode)
        if session is None:
            raise ModeNotConfigured(request.mode)
        if not self._reports.database_ok:
            # Known down (or hung): answer at once rather than after the reads below time out.
            raise DatabaseUnavailable("the database is not taking writes; IB events are held")
        existing = await self._existing_run(request)
        if existing is not None:
            return existing, True
        if not session.ready:
            raise NotConnected(request.mode)
        if request.mode in self.read_only:
            raise EndpointReadOnly(request.mode, self.read_only[request.mode])
        # What the session holds now, not what the inbox has processed: no run slips in between.
        guard = self._endpoints.account_guard
        mismatch = guard.endpoint_mismatch(request.mode, session.accounts)
        if mismatch is not None:
            raise EndpointAccountsMismatch(request.mode, session.accounts, mismatch)
        guard.refuse_run_account(request.mode, request.account, session.accounts)
        if not self.accepting_runs:
            raise DatabaseUnavailable("the database is not taking writes; IB events are held")
        # Shielded: a caller that goes away mid-commit must not leave a stored run without its
        # deadline or its orders unqueued.
        admission = asyncio.ensure_future(self._admit(request, self._senders[request.mode]))
        try:
            return await asyncio.shield(admission)
        except asyncio.CancelledError:
            admission.add_done_callback(_log_abandoned_admission)  # nobody else will hear of it
            raise

    async def _admit(self, request: RunRequest, sender: OrderSender) -> tuple[TradeRun, bool]:
        session = sender.session
        async with sender.admission:
            ids = session.order_ids.allocate(len(request.orders))
            run_id = str(uuid.uuid4())
            deadline_at = utcnow() + request.deadline
            try:
                run = await self._books.commit(
                    lambda rec: _create_run(rec, run_id, request, deadline_at, session, ids, self.gateway_name))
            except IntegrityError:
                # Another request with these client_order_ids committed first: answer as a retry
                # would. (Its ids are never used: a gap in the ids is fine, a reversal is not.)
                existing = await self._existing_run(request)
                if existing is None:
                    raise
                return existing, True
            open_run = self._run_end.open_run(run_id)
            self._run_end.start_deadline(run_id, request.deadline.total_seconds())
            sender.enqueue(run, open_run)
        return run, False

    async def _existing_run(self, request: RunRequest) -> TradeRun | None:
        holding = await self.store.runs_holding([o.client_order_id for o in request.orders])
        return existing_run(holding, request)

    async def cancel_run(self, run_id: str, cancelled_by: str) -> tuple[TradeRun, list[CancelOutcome]]:
        run = await self.store.get_run(run_id, with_fills=False)
        if run is None:
            raise RunNotFound(run_id)
        open_run = self._open_runs.get(run_id) or OpenRun()
        outcomes: list[CancelOutcome] = []
        if run.status == RunStatus.RUNNING.value:
            session = self.sessions.get(run.mode)
            if session is None or not session.ready:
                raise NotConnected(run.mode)  # refused: the run is not the caller's to call cancelled
            await self.store.write(lambda rec: rec.note_cancel(run_id, cancelled_by))
            open_run = self._run_end.open_run(run_id)
            open_run.cancelled_by_caller = True
            await self._run_end.cancel_open_orders(session, run, open_run)
            self._run_end.finish_soon(run_id)
            # The answer waits for the run's end, within bounds: should IB go away meanwhile, the
            # run still ends in the background and the caller gets the state as it stands.
            finishing = open_run.finishing
            if finishing is not None:
                bound = self.timings.reconcile_timeout + self.timings.commission_grace + 5.0
                await asyncio.wait([finishing], timeout=bound)
        refreshed = await self.store.get_run(run_id, with_fills=False)
        assert refreshed is not None
        for order in refreshed.orders:
            code, message = open_run.cancel_answers.get((order.ib_endpoint, order.ib_order_id or -1), (0, ""))
            if not message and OrderStatus(order.status) in state.DONE_STATES and run.status != RunStatus.RUNNING.value:
                message = "run had already finished; nothing sent"
            outcomes.append(CancelOutcome(order.client_order_id, order.ib_order_id or 0, order.status, code, message))
        return refreshed, outcomes


def _log_abandoned_admission(task: asyncio.Future[tuple[TradeRun, bool]]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("recording a run whose caller went away failed", exc_info=task.exception())


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("the engine's inbox stopped: IB reports are no longer applied", exc_info=task.exception())


def _create_run(
    rec: Recorder, run_id: str, request: RunRequest, deadline_at: object, session: IBSession, ids: list[int],
    gateway: str,
) -> TradeRun:
    """The run and its orders as committed. They are returned loaded (orders, and their empty
    fills), so SubmitRun answers without reading back what it just wrote."""
    now = utcnow()
    run = TradeRun(
        id=run_id, mode=request.mode, account=request.account or None, status=RunStatus.RUNNING.value,
        status_reason="submitted", submitted_by=request.submitted_by or None, deadline_at=deadline_at,
        submitted_note=request.submitted_note or None, submitted_from=request.submitted_from or None,
        last_sequence=0, created_at=now, updated_at=now, gateway=gateway, orders=[],
    )
    rec.session.add(run)
    rec.session.flush()  # the run row first: events and orders refer to it
    rec.emit(run, EventKind.RUN_STATUS, {
        "status": "RUN_STATUS_RUNNING", "previous_status": "RUN_STATUS_UNSPECIFIED",
        "reason": f"submitted {len(request.orders)} orders", "final": False,
    })
    for order_id, spec in zip(ids, request.orders, strict=True):
        order = _order_row(run_id, spec, request.account, session, order_id)
        order.fills = []
        run.orders.append(order)
    # One flush for all the orders (one multi-row insert, not one statement per order: a
    # 1,000-order run took a second before its first order could leave); their events need
    # their ids, and go in together at the commit.
    rec.session.flush()
    for order in run.orders:
        rec.emit(run, EventKind.ORDER_STATUS, order_status_payload(order, "UNSPECIFIED", ""), order=order)
    return run


def _order_row(run_id: str, spec: OrderRequest, account: str, session: IBSession, ib_order_id: int) -> TradeOrder:
    now = utcnow()
    return TradeOrder(
        run_id=run_id, client_order_id=spec.client_order_id, symbol=spec.symbol, sec_type=spec.sec_type,
        exchange=spec.exchange, primary_exchange=spec.primary_exchange or None, currency=spec.currency,
        side=spec.side, quantity=spec.quantity, order_type=spec.order_type, account=account or None,
        status=OrderStatus.PENDING_SUBMIT.value, filled_qty=0.0, ib_endpoint=session.endpoint.address,
        ib_client_id=session.endpoint.client_id, ib_order_id=ib_order_id, created_at=now, updated_at=now,
    )
