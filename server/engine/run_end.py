"""A run's end: its deadline, or its caller's cancel, or all its orders done → cancel what is
still open at IB, reconcile the run's executions with IB, wait briefly for commissions, then
decide its status. Retried while IB cannot be asked (an unanswered reconciliation is not "no
fills") and while the database is down. Runs a previous process left open get their deadlines
back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.exc import InterfaceError, OperationalError

from execgw.server.db.models import DEFAULT_GATEWAY_NAME, OrderStatus, RunStatus, TradeRun, utcnow
from execgw.server.engine import state
from execgw.server.engine.books import Books
from execgw.server.engine.reconciler import Reconciler
from execgw.server.engine.runs import EngineTimings, OpenRun
from execgw.server.engine.tasks import TaskSupervisor
from execgw.server.ib.session import IBSession

log = logging.getLogger(__name__)


class RunEnder:
    def __init__(
        self,
        books: Books,
        open_runs: dict[str, OpenRun],
        session_of_mode: Callable[[str], IBSession | None],
        reconciler: Reconciler,
        tasks: TaskSupervisor,
        timings: EngineTimings,
        gateway_name: str = DEFAULT_GATEWAY_NAME,
    ) -> None:
        self._books = books
        self._open_runs = open_runs
        self._session_of_mode = session_of_mode
        self._reconciler = reconciler
        self._tasks = tasks
        self._timings = timings
        self._gateway_name = gateway_name

    def open_run(self, run_id: str) -> OpenRun:
        return self._open_runs.setdefault(run_id, OpenRun())

    def start_deadline(self, run_id: str, seconds: float) -> None:
        self.open_run(run_id).timer = asyncio.get_running_loop().call_later(
            max(seconds, 0.0), self._deadline_passed, run_id
        )

    def _deadline_passed(self, run_id: str) -> None:
        log.info("run %s reached its deadline", run_id)
        self.finish_soon(run_id)

    def finish_all_soon(self, run_ids: set[str]) -> None:
        for run_id in run_ids:
            self.finish_soon(run_id)

    def finish_soon(self, run_id: str) -> None:
        open_run = self.open_run(run_id)
        if open_run.finishing is None or open_run.finishing.done():
            open_run.finishing = self._tasks.spawn(self._finish(run_id), f"finish-{run_id}")

    def stop(self) -> None:
        for open_run in self._open_runs.values():
            if open_run.timer is not None:
                open_run.timer.cancel()

    async def _finish(self, run_id: str) -> None:
        open_run = self.open_run(run_id)
        while True:
            try:
                if await self._try_finish(run_id, open_run):
                    return
            except (OperationalError, InterfaceError, ConnectionError) as exc:
                log.warning("finishing run %s must wait: %s", run_id, exc)
            await asyncio.sleep(self._timings.retry_interval)

    async def _try_finish(self, run_id: str, open_run: OpenRun) -> bool:
        store = self._books.store
        run = await store.get_run(run_id, with_fills=False)
        if run is None or run.status != RunStatus.RUNNING.value:
            return True
        session = self._session_of_mode(run.mode)
        if session is None or not session.ready:
            return False
        await self.cancel_open_orders(session, run, open_run)
        if not await self._reconciler.reconcile(session, frozenset(o.symbol for o in run.orders)):
            return False
        await self._books.wait_until(lambda: store.all_fills_charged(run_id), self._timings.commission_grace)
        status = await self._books.commit(lambda rec: rec.finish_run(rec.run(run_id), open_run.cancelled_by_caller))
        if open_run.timer is not None:
            open_run.timer.cancel()
        # A long-lived gateway keeps no state for finished runs (a later fill needs none).
        self._open_runs.pop(run_id, None)
        log.info("run %s finished: %s", run_id, status.value)
        return True

    async def cancel_open_orders(self, session: IBSession, run: TradeRun, open_run: OpenRun) -> None:
        """Stops sending the run's orders and cancels at IB those that were sent; waits (bounded)
        until IB has answered for all of them."""
        open_run.sending_stopped = True
        open_orders = [o for o in run.orders if OrderStatus(o.status) not in state.DONE_STATES]
        if not open_orders:
            return
        for order in open_orders:
            never_sent = order.status == OrderStatus.PENDING_SUBMIT.value and order.ib_order_id not in open_run.sent
            if order.ib_order_id and not never_sent:  # a never-sent one is withdrawn by its sender
                await session.cancel_order(order.ib_order_id)
        await self._books.wait_until(lambda: self._books.store.all_orders_done(run.id), self._timings.cancel_wait)

    async def resume_open_runs(self) -> None:
        """Runs left RUNNING by a previous process get their deadlines back. The process may have
        died between writing an order and sending it, or missed IB's reports: their unfinished
        orders are UNKNOWN until IB tells (reconciliation on connect). Only this gateway's own
        runs: another gateway's are its to finish, over its own IB connection."""
        open_runs = await self._books.store.open_runs(self._gateway_name)
        if not open_runs:
            return
        unfinished = await self._books.store.unfinished_orders([run_id for run_id, _ in open_runs])
        await self._books.commit(
            lambda rec: rec.mark_unknown(unfinished, "gateway restarted; waiting for IB's account of the order")
        )
        now = utcnow()
        for run_id, deadline_at in open_runs:
            delay = (deadline_at - now).total_seconds() if deadline_at else 0.0
            self.start_deadline(run_id, delay)
            log.info("resuming open run %s (deadline in %.0fs)", run_id, max(delay, 0.0))
