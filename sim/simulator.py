"""The in-process simulator: start it, point a client at its port, read back what it executed.

::

    sim = Simulator(scenario=Scenario.from_dict({"orders": {"r-2": {"fills": 3}}}), seed=7)
    port = await sim.start()
    ...                                        # a client connects to 127.0.0.1:port, places r-1, r-2
    order = await sim.wait_for_order("r-2", timeout=5, status="Filled")
    assert [e.order_ref for e in sim.executions()] == ["r-1", "r-2", "r-2", "r-2"]
    await sim.stop()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from execgw.sim.engine import CONNECTIVITY_TEXT, Engine
from execgw.sim.messages import error
from execgw.sim.records import Execution, OrderSnapshot, ReceivedOrder, ReceivedRequest, Refusal
from execgw.sim.scenario import Scenario
from execgw.sim.server import Server

log = logging.getLogger("execgw.sim")

DEFAULT_ACCOUNT = "DU1234567"


class Simulator:
    """A TWS (server version 157) on a local port, driven by a :class:`Scenario`.

    Every method runs on the simulator's event loop; from another thread use
    :class:`execgw.sim.SimulatorThread`.
    """

    def __init__(self, scenario: Scenario | None = None, accounts: Sequence[str] | None = None,
                 seed: int = 0) -> None:
        self.scenario = scenario or Scenario()
        chosen = list(accounts or self.scenario.accounts or [DEFAULT_ACCOUNT])
        for account in chosen:
            if not account.startswith(("DU", "DF", "U", "F")):
                raise ValueError(f"{account!r} does not look like an IB account (DU…, U…)")
        self.accounts = chosen
        self.seed = seed
        self._engine: Engine | None = None
        self._server: Server | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._background: set[asyncio.Task[None]] = set()
        self._accepting = asyncio.Event()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the simulator is not started")
        return self._engine

    @property
    def server(self) -> Server:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return self._server

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the bound port."""
        self._engine = Engine(self.scenario, self.accounts, seed=self.seed)
        self._server = Server(self._engine, self.scenario.drops)
        bound = await self._server.listen(host, port)
        self._accepting.set()
        self._schedule_scenario_faults()
        log.info("TWS simulator listening on %s:%d for accounts %s", host, bound, ",".join(self.accounts))
        return bound

    async def stop(self) -> None:
        """Close every connection, stop listening and end pending order runs."""
        for timer in self._timers:
            timer.cancel()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._server is not None:
            await self._server.close()
        if self._engine is not None:
            await self._engine.shutdown()
        log.info("TWS simulator stopped")

    def _schedule_scenario_faults(self) -> None:
        loop = asyncio.get_running_loop()
        for drop in self.scenario.drops:
            if drop.at is not None:
                self._timers.append(loop.call_later(drop.at, self.drop_connections, drop.client_id))
        for outage in self.scenario.outages:
            self._timers.append(loop.call_later(
                outage.at, self.refuse_connections, outage.duration, outage.next_valid_id))
        for loss in self.scenario.connectivity:
            self._timers.append(loop.call_later(loss.at, self.send_error, 1100))
            self._timers.append(loop.call_later(loss.at + loss.duration, self.send_error, loss.restored_code))

    # ---- what happened -------------------------------------------------------------------

    def executions(self) -> list[Execution]:
        """Every execution since the simulator started, corrections included (``corrects`` names
        the replaced one); ``day`` tells IB's day, of which reqExecutions answers only the last."""
        return list(self.engine.executions)

    def orders(self) -> list[OrderSnapshot]:
        """Every order IB created since the simulator started, in arrival order, with its current
        state and IB's ``day``. Orders TWS refused without creating them are in :meth:`refusals`."""
        return [OrderSnapshot.of(o) for o in self.engine.orders]

    def refusals(self) -> list[Refusal]:
        """Orders answered with an error and never created (10268/10269, 321, error outcomes
        without a status), in arrival order."""
        return list(self.engine.refusals)

    def received_orders(self) -> list[ReceivedOrder]:
        """Every PLACE_ORDER received, in arrival order, with the error code it was refused with
        (103 for a reused order id, 10268, 321, …) or None when IB created the order: what TWS's
        API message log shows. A resend under the same order id is here, not in :meth:`orders`."""
        return list(self.engine.received)

    def received_requests(self) -> list[ReceivedRequest]:
        """Every API message received after START_API, by name and client id, in arrival order
        (those answered with pacing error 100 included)."""
        return list(self.engine.requests)

    async def wait_for_order(self, order_ref: str, timeout: float = 5.0,
                             status: str | None = None) -> OrderSnapshot:
        """Wait until an order with this orderRef was received (and reached ``status``, if given).

        Raises TimeoutError.
        """
        return OrderSnapshot.of(await self.engine.wait_for_order(order_ref, timeout, status))

    def connected_clients(self) -> list[int]:
        """Client ids with a live API session (after START_API)."""
        return sorted(self.engine.sessions)

    async def wait_for_client(self, client_id: int, connected: bool = True, timeout: float = 5.0) -> None:
        """Wait until ``client_id`` has (or, with ``connected=False``, no longer has) a session."""
        await self.engine.wait_until(
            lambda: True if (client_id in self.engine.sessions) == connected else None,
            timeout, f"client {client_id} {'connected' if connected else 'disconnected'}")

    # ---- faults ----------------------------------------------------------------------------

    def drop_connections(self, client_id: int | None = None) -> int:
        """Close every client socket (or one client id's); returns how many were closed."""
        return self.server.drop(client_id)

    def drop_before_order(self, order_ref: str) -> None:
        """TWS goes away just as the next placeOrder with ``order_ref`` arrives: the socket closes
        with it unread, so IB never has the order (see Server.drop_before_order)."""
        self.server.drop_before_order(order_ref)

    def refuse_connections(self, seconds: float, next_valid_id: int | None = None) -> None:
        """A Gateway restart: drop every client and refuse connections for ``seconds``; when it comes
        back, report ``next_valid_id`` (possibly lower than ids already used) if given."""
        self._accepting.clear()

        async def outage() -> None:
            if next_valid_id is not None:
                self.engine.set_next_valid_id(next_valid_id)
            await self.server.refuse(seconds)
            self._accepting.set()

        task = asyncio.get_running_loop().create_task(outage())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait_accepting(self, timeout: float = 10.0) -> None:
        """Return once the simulator accepts connections (after :meth:`refuse_connections`)."""
        await asyncio.wait_for(self._accepting.wait(), timeout)

    def set_next_valid_id(self, value: int, client_id: int | None = None) -> None:
        """Report ``value`` as nextValidId from now on and accept ids from it again (a rollback)."""
        self.engine.set_next_valid_id(value, client_id)

    def send_error(self, code: int, message: str | None = None, req_id: int = -1) -> None:
        """Send an error to every connected client. 1100/1101/1102 also hold, discard or deliver
        the order events of the outage, as IB's connectivity loss does."""
        if code in CONNECTIVITY_TEXT and message is None and req_id == -1:
            self.engine.connectivity(code)
        else:
            self.engine.broadcast(error(req_id, code, message or f"Simulated error {code}"))

    def open_market(self) -> None:
        """The regular session opens: MKT orders held PreSubmitted since their 399 go Submitted
        and are treated as their behaviour says; later orders are not held."""
        self.engine.open_market()

    def new_day(self) -> None:
        """IB's day rolls over: working DAY orders expire (Cancelled), and reqExecutions and
        reqCompletedOrders no longer return what happened before. Introspection keeps it all."""
        self.engine.new_day()

    def add_foreign_order(self, order_ref: str, symbol: str = "AAPL", side: str = "BUY",
                          quantity: float = 10, client_id: int = 0, order_id: int | None = None,
                          fill: bool = True) -> OrderSnapshot:
        """An order another API client (or a TWS user, with client id 0) placed in the same account,
        with its own permId; ``order_id`` may deliberately equal one of another client's ids.
        It fills at once when ``fill``, else it rests. TWS reports it to the master client id live,
        in reqAllOpenOrders, reqCompletedOrders and (for the master) reqExecutions."""
        return OrderSnapshot.of(self.engine.add_foreign_order(
            order_ref, symbol, side, quantity, client_id, order_id, fill))

    def release_order(self, order_ref: str) -> None:
        """Fill a resting order (or one waiting out its fill delay) now."""
        matching = [o for o in self.engine.orders if o.order_ref == order_ref and not o.is_final]
        if not matching:
            raise KeyError(f"no working order with orderRef {order_ref!r}")
        self.engine.release(matching[-1])
