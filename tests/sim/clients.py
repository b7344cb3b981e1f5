"""Test clients: an unmodified ibapi EClient recording its callbacks, and order builders."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.wrapper import EWrapper

from execgw.sim.wire import API_PREFIX, FrameReader, frame

WAIT = 5.0


class IbApiApp(EWrapper, EClient):
    """An ibapi EClient + EWrapper that records every callback as (name, *args)."""

    def __init__(self) -> None:
        EClient.__init__(self, self)
        self.events: list[tuple[Any, ...]] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def _record(self, *event: Any) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    # -- callbacks the tests look at --
    def nextValidId(self, orderId: int) -> None:
        self._record("nextValidId", orderId)

    def managedAccounts(self, accountsList: str) -> None:
        self._record("managedAccounts", accountsList)

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:
        self._record("error", reqId, errorCode, errorString)

    def openOrder(self, orderId, contract, order, orderState) -> None:
        self._record("openOrder", orderId, contract, order, orderState)

    def openOrderEnd(self) -> None:
        self._record("openOrderEnd")

    def orderStatus(self, orderId, status, filled, remaining, avgFillPrice, permId, parentId,
                    lastFillPrice, clientId, whyHeld, mktCapPrice) -> None:
        self._record("orderStatus", orderId, status, filled, remaining, avgFillPrice, permId, clientId)

    def execDetails(self, reqId, contract, execution) -> None:
        self._record("execDetails", reqId, contract, execution)

    def execDetailsEnd(self, reqId) -> None:
        self._record("execDetailsEnd", reqId)

    def commissionReport(self, commissionReport) -> None:
        self._record("commissionReport", commissionReport)

    def completedOrder(self, contract, order, orderState) -> None:
        self._record("completedOrder", contract, order, orderState)

    def completedOrdersEnd(self) -> None:
        self._record("completedOrdersEnd")

    def currentTime(self, time: int) -> None:
        self._record("currentTime", time)

    def connectionClosed(self) -> None:
        self._record("connectionClosed")

    # -- helpers --
    def start(self, port: int, client_id: int = 1) -> IbApiApp:
        self.connect("127.0.0.1", port, client_id)
        self._thread = threading.Thread(target=self.run, name=f"ibapi-reader-{client_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.disconnect()
        if self._thread is not None:
            self._thread.join(WAIT)
            assert not self._thread.is_alive(), "ibapi's run loop did not end"

    def named(self, name: str) -> list[tuple[Any, ...]]:
        with self._changed:
            return [e for e in self.events if e[0] == name]

    def wait_for(self, predicate: Callable[[list[tuple[Any, ...]]], Any], timeout: float = WAIT) -> Any:
        """Wait until ``predicate(events)`` is truthy and return its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate(list(self.events))
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out; events: {[e[:3] for e in self.events]}")
                self._changed.wait(remaining)

    def wait_named(self, name: str, count: int = 1, timeout: float = WAIT) -> list[tuple[Any, ...]]:
        return self.wait_for(lambda events: (found := [e for e in events if e[0] == name])[count - 1:]
                             and found, timeout)

    def next_order_id(self) -> int:
        return self.wait_named("nextValidId")[-1][1]

    def errors(self) -> list[tuple[int, int, str]]:
        return [e[1:] for e in self.named("error") if not 2100 <= e[2] < 2200]


def stock(symbol: str = "AAPL") -> Contract:
    contract = Contract()
    contract.symbol = symbol
    contract.secType = "STK"
    contract.exchange = "SMART"
    contract.currency = "USD"
    return contract


def market_order(action: str, quantity: float, order_ref: str, account: str = "") -> Order:
    """A MKT order as a correct client sends it to today's TWS: ibapi 9.81's Order() defaults
    eTradeOnly and firmQuoteOnly to true, which TWS refuses (10268/10269), so both are cleared."""
    order = ibapi_default_order(action, quantity, order_ref, account)
    order.eTradeOnly = False
    order.firmQuoteOnly = False
    return order


def ibapi_default_order(action: str, quantity: float, order_ref: str, account: str = "") -> Order:
    """A MKT order with every other field left at ibapi 9.81's default (eTradeOnly, firmQuoteOnly true)."""
    order = Order()
    order.action = action
    order.totalQuantity = quantity
    order.orderType = "MKT"
    order.orderRef = order_ref
    order.account = account
    return order


class RawClient:
    """A bare socket speaking the protocol, for what a library client would hide."""

    def __init__(self, port: int, versions: str = "v100..157") -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.frames = FrameReader()
        self.pending: list[list[str]] = []
        self.socket.sendall(API_PREFIX + frame([versions]))

    def handshake(self) -> list[str]:
        return self.receive()

    def start_api(self, client_id: int) -> RawClient:
        self.handshake()
        self.send([71, 2, client_id, ""])
        return self

    def send(self, fields: list[object]) -> None:
        self.socket.sendall(frame(fields))

    def receive(self) -> list[str]:
        """The next message; raises ConnectionError when the simulator closed the socket."""
        while not self.pending:
            data = self.socket.recv(65536)
            if not data:
                raise ConnectionError("closed by the simulator")
            self.pending = self.frames.feed(data)
        return self.pending.pop(0)

    def receive_until(self, message_id: int) -> list[list[str]]:
        """Messages up to and including the first one with this id."""
        received = [self.receive()]
        while received[-1][0] != str(message_id):
            received.append(self.receive())
        return received

    def is_closed_by_peer(self) -> bool:
        try:
            while True:
                self.receive()
        except ConnectionError:
            return True

    def close(self) -> None:
        self.socket.close()
