"""What the engine knows of each IB endpoint (connected, linked to IB's servers, taking orders
from the API or read-only) and what IB's errors and notices mean for it: connection changes
start a reconciliation, 1100/1101/1102 move health, answers to our requests end them, an error
addressed to one of our orders goes to that order."""

from __future__ import annotations

import logging
from collections.abc import Callable

from execgw.server.engine.account_guard import AccountGuard
from execgw.server.engine.answers import OPEN_ORDER_KEYS, IbAnswers
from execgw.server.engine.reconciler import Reconciler
from execgw.server.engine.runs import OpenRun
from execgw.server.engine.tasks import TaskSupervisor
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
from execgw.server.ib.session import IBSession

log = logging.getLogger(__name__)

CONNECTIVITY_LOST = 1100
CONNECTIVITY_CODES = frozenset({1100, 1101, 1102})


class Endpoints:
    def __init__(
        self, answers: IbAnswers, reconciler: Reconciler, open_runs: dict[str, OpenRun], tasks: TaskSupervisor,
        account_guard: AccountGuard | None = None,
    ) -> None:
        self.sessions: dict[str, IBSession] = {}
        # mode → IB's words, while TWS answers that its API is read-only (orders get 321).
        self.read_only: dict[str, str] = {}
        # mode → why, while the endpoint reports accounts of the other kind (paper vs live).
        self.wrong_accounts: dict[str, str] = {}
        self.account_guard = account_guard or AccountGuard()
        # Told (mode, ready) whenever an IB endpoint comes or goes; the health service listens.
        self.listeners: list[Callable[[str, bool], None]] = []
        self._answers = answers
        self._reconciler = reconciler
        self._open_runs = open_runs
        self._tasks = tasks

    def mode_ready(self, mode: str) -> bool:
        """Connected, IB linked, and TWS takes orders from the API."""
        session = self.sessions.get(mode)
        return (session is not None and session.ready and mode not in self.read_only
                and mode not in self.wrong_accounts)

    def session_at(self, address: str) -> IBSession | None:
        return next((s for s in self.sessions.values() if s.endpoint.address == address), None)

    def _tell(self, mode: str, ready: bool) -> None:
        for listener in self.listeners:
            listener(mode, ready)

    # -- errors ---------------------------------------------------------------------------------

    def about_an_order(self, error: ib.IbError) -> bool:
        """An error for one of our order ids (not for a request of ours, not a link notice)."""
        if error.req_id <= 0 or error.code in NOT_ABOUT_ORDERS:
            return False
        if self._answers.fail_request(error.endpoint, error.req_id, f"IB {error.code}: {error.message}"):
            return False  # it answered a request (reqExecutions), which now fails: state unknown
        return True

    def note_error(self, error: ib.IbError) -> None:
        """Keeps what an error says beyond its order (cancel answers, read-only mode) and logs it
        at the level it deserves."""
        if error.code in CANCEL_ANSWER_CODES or error.code == ORDER_CANCELLED_CODE:
            for open_run in self._open_runs.values():
                # Order ids are per endpoint: the answer belongs to the run that has that order there.
                open_run.cancel_answers.setdefault((error.endpoint, error.req_id), (error.code, error.message))
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
        session = self.session_at(error.endpoint)
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
        self._tell(mode, False)

    def _read_only_cleared(self, mode: str, why: str) -> None:
        if self.read_only.pop(mode, None) is None:
            return
        log.warning("IB %s takes orders again (%s)", mode, why)
        self._tell(mode, self.mode_ready(mode))

    # -- connection and answers -------------------------------------------------------------------

    def control(self, event: ib.IbEvent) -> None:
        """Events that are not reports about orders: connection changes, link notices, and the
        ends of our requests."""
        if isinstance(event, ib.OpenOrdersEnd):
            # TWS refuses reqOpenOrders in Read-Only API mode: an answer means the mode is off.
            session = self.session_at(event.endpoint)
            if session is not None:
                self._read_only_cleared(session.endpoint.mode, "IB answered reqOpenOrders")
        if self._answers.resolve(event):
            return
        if isinstance(event, ib.Connected | ib.Disconnected):
            self._connection_changed(event)
        elif isinstance(event, ib.IbError) and event.code in CONNECTIVITY_CODES:
            session = self.session_at(event.endpoint)
            if session is None:
                return
            self._tell(session.endpoint.mode, self.mode_ready(session.endpoint.mode))
            if event.code != CONNECTIVITY_LOST:
                # 1101 says data was lost; after 1102 a reconciliation is cheap insurance.
                self._reconcile_soon(session)

    def _connection_changed(self, event: ib.Connected | ib.Disconnected) -> None:
        session = self.session_at(event.endpoint)
        if session is None:
            return
        if isinstance(event, ib.Connected):
            self._check_accounts(session.endpoint.mode, event.accounts)
        mode = session.endpoint.mode
        self._tell(mode, isinstance(event, ib.Connected) and mode not in self.wrong_accounts)
        if isinstance(event, ib.Connected):
            # A new socket may find the TWS setting changed: ask again rather than remember.
            self.read_only.pop(session.endpoint.mode, None)
            # Whatever IB did while we were away is recovered by asking IB, on every connect.
            self._reconcile_soon(session)
        else:
            self._answers.fail(event.endpoint, f"IB disconnected: {event.reason}")

    def _check_accounts(self, mode: str, accounts: tuple[str, ...]) -> None:
        """On every connect: a login may have changed while we were away."""
        reason = self.account_guard.endpoint_mismatch(mode, accounts)
        if reason is None:
            if self.wrong_accounts.pop(mode, None) is not None:
                log.warning("IB %s reports %s accounts only again: trading there resumes", mode, mode)
            return
        self.wrong_accounts[mode] = reason
        log.error("refusing to trade on the IB %s endpoint: %s", mode, reason)

    def _reconcile_soon(self, session: IBSession) -> None:
        self._tasks.spawn(self._reconciler.reconcile_until_done(session), f"reconcile-{session.endpoint.mode}")
