"""ibapi EWrapper → domain events. Runs on ibapi's reader thread; touches no shared state
beyond handing each event to `deliver` (which hops to the event loop).

Works with both ibapi lines on PyPI: `ibapi` 9.81 and `ibapi-stable` 10.x (the current official
client). Where they differ, toward a server version 157 TWS:

- `error`: 9.81 calls `error(reqId, errorCode, errorString)`; 10.1x-10.3x added
  `advancedOrderRejectJson` after the string; 10.37+ put `errorTime` (epoch ms, 0 below server
  version 194) before the code. `_error_fields` reads all three.
- commissions: 9.81 calls `commissionReport(CommissionReport)` with `.commission`; 10.x calls
  `commissionAndFeesReport(CommissionAndFeesReport)` with `.commissionAndFees`.
- quantities (`filled`, `remaining`, `shares`, `cumQty`) are `Decimal` in 10.x: the events carry
  floats, so every one goes through `float()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ibapi.contract import Contract
from ibapi.execution import Execution
from ibapi.order import Order
from ibapi.order_state import OrderState
from ibapi.wrapper import EWrapper

from execgw.server.ib import events as ev
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.times import parse_ib_time

log = logging.getLogger(__name__)

TRADE_TIMES_KEPT = 4096
"""Execution time texts whose parse is remembered (then forgotten all at once)."""


def _error_fields(args: tuple[Any, ...]) -> tuple[int, str, str]:
    """(code, message, advancedOrderRejectJson) from what follows reqId in either ibapi's
    `error` call: `(code, msg[, json])` (9.81 to 10.3x) or `(time, code, msg[, json])` (10.37+).
    The message is the only str among the leading fields, which tells the two apart."""
    if len(args) >= 2 and isinstance(args[1], str):
        code, message, *rest = args
    else:
        _time, code, message, *rest = args
    return int(code), str(message), str(rest[0]) if rest and rest[0] else ""


def _no_wait() -> None:
    """The translator's `before_report` until a session bounds what waits decoded."""


class CallbackTranslator(EWrapper):
    def __init__(
        self,
        endpoint: Endpoint,
        deliver: Callable[[ev.IbEvent], None],
        claims_error: Callable[[int, str], bool] | None = None,
    ) -> None:
        super().__init__()
        # ibapi's own verdict on a send (504 not connected, 512 send failed) belongs to the
        # sender, not to the order's history: see `execgw.server.ib.writer`.
        self._claims_error = claims_error
        self._address = endpoint.address
        self._client_id = endpoint.client_id
        # Execution times without a zone are in the TWS login zone (validated at start-up).
        self._tws_zone = ZoneInfo(endpoint.time_zone)
        self.deliver = deliver
        # Called before each report (status, execution, commission) is handed on; may wait
        # (the session's backpressure, see backpressure.py). Errors and end markers never wait.
        self.before_report: Callable[[], None] = _no_wait
        self.last_error: str | None = None
        self._accounts: tuple[str, ...] = ()
        self._connected_sent = False
        # Execution time text → its UTC time: a burst of executions shares a handful of seconds,
        # and strptime was a tenth of this thread's time in a replay.
        self._trade_times: dict[str, datetime | None] = {}

    def _now(self) -> datetime:
        return datetime.now(UTC)

    # -- connection ---------------------------------------------------------------------------

    def managedAccounts(self, accountsList: str) -> None:
        self._accounts = tuple(a for a in accountsList.split(",") if a)

    def nextValidId(self, orderId: int) -> None:
        if self._connected_sent:
            return
        self._connected_sent = True
        self.deliver(ev.Connected(self._address, self._client_id, orderId, self._accounts))

    def connectionClosed(self) -> None:
        log.debug("ibapi connectionClosed for %s", self._address)

    def error(self, reqId: int, *args: Any) -> None:
        """ibapi 9.81 `error(reqId, errorCode, errorString)`, 10.x `error(reqId, errorTime,
        errorCode, errorString, advancedOrderRejectJson="")`; see `_error_fields`."""
        code, message, reject_json = _error_fields(args)
        if self._claims_error is not None and self._claims_error(code, message):
            return
        if reject_json:
            log.info("IB %s error %d for %d carries advancedOrderRejectJson %s", self._address, code, reqId,
                     reject_json)
        self.last_error = f"{code} {message}"
        self.deliver(ev.IbError(self._address, self._client_id, reqId, code, message, self._now()))

    # -- orders ---------------------------------------------------------------------------------

    def orderStatus(
        self,
        orderId: int,
        status: str,
        filled: Any,  # float in 9.81, Decimal in 10.x
        remaining: Any,
        avgFillPrice: float,
        permId: int,
        parentId: int,
        lastFillPrice: float,
        clientId: int,
        whyHeld: str,
        mktCapPrice: float,
    ) -> None:
        self.before_report()
        self.deliver(
            ev.OrderStatusReport(
                self._address, clientId, orderId, permId, status, float(filled), float(remaining),
                float(avgFillPrice), whyHeld or "", "", self._now(),
            )
        )

    def openOrder(self, orderId: int, contract: Contract, order: Order, orderState: OrderState) -> None:
        self._order_state(orderId, order, orderState)

    def completedOrder(self, contract: Contract, order: Order, orderState: OrderState) -> None:
        self._order_state(order.orderId, order, orderState)

    def _order_state(self, order_id: int, order: Order, state: OrderState) -> None:
        # openOrder carries no fill quantities worth trusting; the engine derives them from
        # executions. What it adds over orderStatus is the orderRef ↔ permId link.
        self.before_report()
        self.deliver(
            ev.OrderStatusReport(
                self._address, order.clientId, order_id, order.permId, state.status, -1.0, -1.0, 0.0,
                "", order.orderRef or "", self._now(),
            )
        )

    def openOrderEnd(self) -> None:
        self.deliver(ev.OpenOrdersEnd(self._address))

    def completedOrdersEnd(self) -> None:
        self.deliver(ev.CompletedOrdersEnd(self._address))

    # -- executions -------------------------------------------------------------------------------

    def execDetails(self, reqId: int, contract: Contract, execution: Execution) -> None:
        # Positional, in the fields' order (endpoint, req_id, order_id, perm_id, client_id,
        # order_ref, exec_id, symbol, sec_type, currency, exchange, side, shares, price, cum_qty,
        # avg_price, account, trade_time, received_at): keywords cost a third more per execution.
        self.before_report()
        self.deliver(
            ev.ExecutionReport(
                self._address, reqId, execution.orderId, execution.permId, execution.clientId,
                execution.orderRef or "", execution.execId, contract.symbol, contract.secType, contract.currency,
                execution.exchange, execution.side, float(execution.shares), float(execution.price),
                float(execution.cumQty), float(execution.avgPrice), execution.acctNumber,
                self._trade_time(execution), self._now(),
            )
        )

    def _trade_time(self, execution: Execution) -> datetime | None:
        """UTC; None (stored as NULL, so unknown rather than wrong) only with a warning."""
        text = execution.time or ""
        try:
            parsed = self._trade_times[text]
        except KeyError:
            if len(self._trade_times) >= TRADE_TIMES_KEPT:
                self._trade_times.clear()
            parsed = self._trade_times[text] = parse_ib_time(text, self._tws_zone)
        if parsed is None:
            log.warning(
                "IB %s execution %s: time %r is in no form we read; stored without a trade time",
                self._address, execution.execId, execution.time,
            )
        return parsed

    def execDetailsEnd(self, reqId: int) -> None:
        self.deliver(ev.ExecutionsEnd(self._address, reqId))

    def commissionReport(self, commissionReport: Any) -> None:
        """ibapi 9.81: `CommissionReport` with `.commission`."""
        self._commission(commissionReport, commissionReport.commission)

    def commissionAndFeesReport(self, commissionAndFeesReport: Any) -> None:
        """ibapi 10.x: `CommissionAndFeesReport` with `.commissionAndFees`."""
        self._commission(commissionAndFeesReport, commissionAndFeesReport.commissionAndFees)

    def _commission(self, report: Any, amount: float | None) -> None:
        self.before_report()
        self.deliver(
            ev.CommissionReport(
                self._address,
                report.execId,
                ev.ib_double(amount),
                report.currency or "",
                ev.ib_double(report.realizedPNL),
                self._now(),
            )
        )
