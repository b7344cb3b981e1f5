"""Reconciliation with IB: ask what IB knows, wait until its answers are stored.

On every (re)connect and after 1101/1102 in full: open orders, completed orders and the day's
executions of our client id; then UNKNOWN orders IB knows nothing of are cancelled in our books,
and so are orders written to an earlier socket that IB never acknowledged (TWS went away with
them unread).
At a run's end: the day's executions of the run's symbols. An unanswered request leaves the state
unknown and reports failure, so the caller retries; it is never read as "no orders".
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import InterfaceError, OperationalError

from execgw.server.engine.answers import COMPLETED_ORDERS, OPEN_ORDER_KEYS, OPEN_ORDERS, IbAnswers
from execgw.server.engine.reconciliations import FULL, RUN_END, ReconciliationLog
from execgw.server.engine.recorder import Recorder
from execgw.server.ib.session import IBSession

log = logging.getLogger(__name__)

MAX_RETRY_INTERVAL = 60.0  # seconds between attempts once IB keeps refusing

# Orders created up to this long after midnight (TWS time) still count as "before IB's day":
# clocks differ, and IB's day does not roll over to the second.
DAY_BOUNDARY_MARGIN = timedelta(minutes=15)


def ib_day_start(now: datetime, zone: ZoneInfo) -> datetime:
    """When IB's current day began (midnight in the TWS login time zone), less a safety margin:
    reqExecutions and reqCompletedOrders answer for that day only."""
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC) + DAY_BOUNDARY_MARGIN


class Reconciler:
    def __init__(
        self,
        answers: IbAnswers,
        commit: Callable[[Callable[[Recorder], set[str]]], Awaitable[set[str]]],
        runs_done: Callable[[set[str]], None],
        timeout: float,
        retry_interval: float,
    ) -> None:
        self._answers = answers
        self._commit = commit
        self._runs_done = runs_done
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._locks: dict[str, asyncio.Lock] = {}
        # (endpoint, symbol or None for all) → loop time the last complete reconciliation started
        self._last: dict[tuple[str, str | None], float] = {}
        # For the metrics: (mode, "full" | "run_end") → reconciliations that asked IB, and those
        # that failed; mode → orders a full one settled (IB knew nothing of them).
        self.asked: Counter[tuple[str, str]] = Counter()
        self.failed: Counter[tuple[str, str]] = Counter()
        self.orders_settled: Counter[str] = Counter()
        # What the last ones asked and found, for the operator's status (AdminService.GetStatus).
        self.records = ReconciliationLog()

    async def reconcile(self, session: IBSession, symbols: frozenset[str] | None = None) -> bool:
        """Asks IB and waits until its answers are stored. In full (`symbols` None): open orders,
        completed orders and the day's executions of our client id; for a run's end: the day's
        executions of its symbols. False if IB did not answer: state stays unknown."""
        lock = self._locks.setdefault(session.endpoint.mode, asyncio.Lock())
        address, timeout = session.endpoint.address, self._timeout
        scopes: list[str | None] = [None] if symbols is None else sorted(symbols)
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        connection = session.connection  # the socket IB's answers come on

        def covered(scope: str | None) -> bool:
            last = self._last
            return max(last.get((address, scope), -1.0), last.get((address, None), -1.0)) > asked_at

        async with lock:
            # A reconciliation that started after we asked answers our question too: with many
            # runs ending at once, one round trip to IB serves them all.
            if all(covered(scope) for scope in scopes):
                return True
            started_at = loop.time()
            counted = (session.endpoint.mode, FULL if symbols is None else RUN_END)
            self.asked[counted] += 1
            record = self.records.begin(*counted)
            try:
                if symbols is None:
                    await self._answers.ask(address, OPEN_ORDERS, session.request_open_orders, timeout)
                    await self._answers.ask(address, COMPLETED_ORDERS, session.request_completed_orders, timeout)
                for scope in scopes:
                    req_id = session.new_request_id()
                    self.records.expect_executions(record, address, req_id)
                    await self._answers.ask(
                        address, req_id, lambda r=req_id, s=scope: session.request_executions(r, s or ""), timeout
                    )
            except (TimeoutError, ConnectionError) as exc:
                why = str(exc) or f"IB said nothing of it for {timeout:g}s"
                log.warning("reconciling with IB %s failed: %s", session.endpoint.mode, why)
                self.failed[counted] += 1
                self.records.end(record, failure=f"IB did not answer: {why}")
                return False
            settled = 0
            if symbols is None:
                try:
                    settled = await self._resolve_unknown_orders(
                        session, session.highest_order_written_before(connection))
                except (OperationalError, InterfaceError) as exc:
                    log.warning("reconciliation with IB %s must wait for the database: %s",
                                session.endpoint.mode, exc)
                    self.failed[counted] += 1
                    self.records.end(record, failure=f"the database could not take the answers: {exc}")
                    return False
            self.records.end(record, orders_settled=settled)
            for scope in scopes:
                self._last[(address, scope)] = started_at
        return True

    def answers_applied(self, executions: list[tuple[str, int, bool]], statuses_from: set[str]) -> None:
        """What a committed transaction applied of IB's answers: (endpoint, request id, stored
        anew) of each execution, and the endpoints that reported order statuses (IB's open and
        completed orders carry no request id: any status counts toward both)."""
        self.records.executions_committed(executions)
        # Once per request and transaction: the wait asks only whether anything came since.
        self._answers.heard({(endpoint, req_id) for endpoint, req_id, _ in executions})
        self._answers.heard({(endpoint, key) for endpoint in statuses_from for key in OPEN_ORDER_KEYS})

    async def reconcile_until_done(self, session: IBSession) -> None:
        """Retries a full reconciliation while connected, backing off: when IB refuses to answer
        (Read-Only API mode refuses reqOpenOrders) asking again at once would only spin."""
        delay = self._retry_interval
        while session.ready and not await self.reconcile(session):
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(MAX_RETRY_INTERVAL, self._retry_interval))

    async def _resolve_unknown_orders(self, session: IBSession, written_before: int) -> int:
        """Returns how many orders it settled: UNKNOWN ones, and those still unacknowledged of
        the orders up to id `written_before`, which went out on an earlier socket."""
        endpoint = session.endpoint
        day_began = ib_day_start(datetime.now(UTC), ZoneInfo(endpoint.time_zone))

        cancelled_in_books: list[int] = []
        settled = [0]  # orders the transaction settled, counted once it committed

        def work(rec: Recorder) -> set[str]:
            resolved = rec.resolve_unknown(endpoint.address, endpoint.client_id, day_began, written_before)
            cancelled_in_books[:] = [o.ib_order_id for o in resolved if o.ib_order_id]
            settled[0] = len(resolved)
            return {o.run_id for o in resolved if rec.all_done(o.run_id)}

        self._runs_done(await self._commit(work))
        self.orders_settled[endpoint.mode] += settled[0]
        # IB said nothing of these orders, yet one may have been in flight while IB answered:
        # cancel at IB too, never only in our books (IB answers 10147 for an id it never saw).
        for order_id in cancelled_in_books:
            log.info("cancelling IB order %d at IB as well: IB reported nothing of it", order_id)
            try:
                await session.cancel_order(order_id)
            except ConnectionError as exc:
                log.error("could not cancel IB order %d at IB (%s): it is cancelled in our books only; "
                          "check it in TWS", order_id, exc)
        return settled[0]
