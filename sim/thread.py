"""Run the simulator on its own event loop in a background thread, for synchronous callers.

::

    with run_in_thread(accounts=["DU1234567"]) as sim:
        app.connect("127.0.0.1", sim.port, clientId=1)   # an ibapi EClient, say
        ...
        order = sim.wait_for_order("run-1-0001", timeout=5, status="Filled")
        assert sim.executions()[0].order_ref == "run-1-0001"
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from execgw.sim.records import Execution, OrderSnapshot, ReceivedOrder, ReceivedRequest, Refusal
from execgw.sim.scenario import Scenario
from execgw.sim.simulator import Simulator

T = TypeVar("T")

CALL_TIMEOUT = 30.0


class SimulatorThread:
    """A :class:`Simulator` whose methods may be called from any thread."""

    def __init__(self, scenario: Scenario | None = None, accounts: Sequence[str] | None = None,
                 seed: int = 0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = Simulator(scenario=scenario, accounts=accounts, seed=seed)
        self.host = host
        self._requested_port = port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Start the loop thread and the simulator; returns the bound port."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="execgw-sim", daemon=True)
        self._thread.start()
        ready.wait()
        self.port = self._await(self.simulator.start(self.host, self._requested_port))
        return self.port

    def stop(self) -> None:
        """Stop the simulator and its thread. Safe to call twice."""
        if self._loop is None or self._thread is None:
            return
        try:
            self._await(self.simulator.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CALL_TIMEOUT)
            self._loop = None
            self._thread = None

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- bridging --------------------------------------------------------------------------

    def _await(self, awaitable: Awaitable[T], timeout: float = CALL_TIMEOUT) -> T:
        if self._loop is None:
            raise RuntimeError("the simulator thread is not running")

        async def wrapped() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def _call(self, function: Callable[[], T]) -> T:
        async def on_loop() -> T:
            return function()

        return self._await(on_loop())

    # ---- the Simulator's methods, thread-safe ----------------------------------------------

    def executions(self) -> list[Execution]:
        return self._call(self.simulator.executions)

    def orders(self) -> list[OrderSnapshot]:
        return self._call(self.simulator.orders)

    def wait_for_order(self, order_ref: str, timeout: float = 5.0, status: str | None = None) -> OrderSnapshot:
        return self._await(self.simulator.wait_for_order(order_ref, timeout, status), timeout + CALL_TIMEOUT)

    def connected_clients(self) -> list[int]:
        return self._call(self.simulator.connected_clients)

    def wait_for_client(self, client_id: int, connected: bool = True, timeout: float = 5.0) -> None:
        self._await(self.simulator.wait_for_client(client_id, connected, timeout), timeout + CALL_TIMEOUT)

    def drop_connections(self, client_id: int | None = None) -> int:
        return self._call(lambda: self.simulator.drop_connections(client_id))

    def drop_before_order(self, order_ref: str) -> None:
        self._call(lambda: self.simulator.drop_before_order(order_ref))

    def refuse_connections(self, seconds: float, next_valid_id: int | None = None) -> None:
        self._call(lambda: self.simulator.refuse_connections(seconds, next_valid_id))

    def wait_accepting(self, timeout: float = 10.0) -> None:
        self._await(self.simulator.wait_accepting(timeout), timeout + CALL_TIMEOUT)

    def set_next_valid_id(self, value: int, client_id: int | None = None) -> None:
        self._call(lambda: self.simulator.set_next_valid_id(value, client_id))

    def send_error(self, code: int, message: str | None = None, req_id: int = -1) -> None:
        self._call(lambda: self.simulator.send_error(code, message, req_id))

    def release_order(self, order_ref: str) -> None:
        self._call(lambda: self.simulator.release_order(order_ref))

    def refusals(self) -> list[Refusal]:
        return self._call(self.simulator.refusals)

    def received_orders(self) -> list[ReceivedOrder]:
        return self._call(self.simulator.received_orders)

    def received_requests(self) -> list[ReceivedRequest]:
        return self._call(self.simulator.received_requests)

    def open_market(self) -> None:
        self._call(self.simulator.open_market)

    def new_day(self) -> None:
        self._call(self.simulator.new_day)

    def add_foreign_order(self, order_ref: str, symbol: str = "AAPL", side: str = "BUY",
                          quantity: float = 10, client_id: int = 0, order_id: int | None = None,
                          fill: bool = True) -> OrderSnapshot:
        return self._call(lambda: self.simulator.add_foreign_order(
            order_ref, symbol, side, quantity, client_id, order_id, fill))


@contextmanager
def run_in_thread(scenario: Scenario | None = None, accounts: Sequence[str] | None = None,
                  seed: int = 0, host: str = "127.0.0.1", port: int = 0) -> Iterator[SimulatorThread]:
    """A started :class:`SimulatorThread`, stopped on exit."""
    runner = SimulatorThread(scenario=scenario, accounts=accounts, seed=seed, host=host, port=port)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()
