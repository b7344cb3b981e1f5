"""ibapi EWrapper → domain events. Runs on ibapi's reader thread; touches no shared state
beyond handing each event to `deliver` (which hops to the event loop)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ibapi.commission_report import CommissionReport as IbCommissionReport
from ibapi.contract import Contract
from ibapi.execution import Execution
from ibapi.order import Order
from ibapi.order_state import OrderState
from ibapi.wrapper import EWrapper

from execgw.server.ib import events as ev
from execgw.server.ib.endpoint import Endpoint

log = logging.getLogger(__name__)


def parse_execution_time(text: str) -> datetime | None:
    """IB sends 'YYYYMMDD  HH:MM:SS' (two spaces), sometimes with a time zone name after."""
    parts = text.split()
    if len(parts) < 2:
        return None
    try:
        return datetime.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


class CallbackTranslator(EWrapper):
    def __init__(self, endpoint: Endpoint, deliver: Callable[[ev.IbEvent], None]) -> None:
        super().__init__()
        self._address = endpoint.address
        self._client_id = endpoint.client_id
        self.deliver = deliver
        self.last_error: str | None = None
        self._accounts: tuple[str, ...] = ()
        self._connected_sent = False

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

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:
        self.last_error = f"{errorCode} {errorString}"
        self.deliver(ev.IbError(self._address, self._client_id, reqId, errorCode, errorString, self._now()))

    # -- orders ---------------------------------------------------------------------------------

    def orderStatus(
        self,
        orderId: int,
        status: str,
        filled: float,
        remaining: float,
        avgFillPrice: float,
        permId: int,
        parentId: int,
        lastFillPrice: float,
        clientId: int,
        whyHeld: str,
        mktCapPrice: float,
    ) -> None:
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
        self.deliver(
            ev.ExecutionReport(
                endpoint=self._address,
                req_id=reqId,
                order_id=execution.orderId,
                perm_id=execution.permId,
                client_id=execution.clientId,
                order_ref=execution.orderRef or "",
                exec_id=execution.execId,
                symbol=contract.symbol,
                sec_type=contract.secType,
                currency=contract.currency,
                exchange=execution.exchange,
                side=execution.side,
                shares=float(execution.shares),
                price=float(execution.price),
                cum_qty=float(execution.cumQty),
                avg_price=float(execution.avgPrice),
                account=execution.acctNumber,
                trade_time=parse_execution_time(execution.time),
                received_at=self._now(),
            )
        )

    def execDetailsEnd(self, reqId: int) -> None:
        self.deliver(ev.ExecutionsEnd(self._address, reqId))

    def commissionReport(self, commissionReport: IbCommissionReport) -> None:
        self.deliver(
            ev.CommissionReport(
                self._address,
                commissionReport.execId,
                ev.ib_double(commissionReport.commission),
                commissionReport.currency or "",
                ev.ib_double(commissionReport.realizedPNL),
                self._now(),
            )
        )
