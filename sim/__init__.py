"""A TWS API simulator (server version 157) for the gateway's tests, benchmarks and demos.

Unmodified ``ibapi`` 9.81 and ``ib_async`` 2.1 clients connect to it over TCP. A declarative
:class:`Scenario` chooses how each order is treated (filled at once or in parts, rejected, left
resting, corrected, ...) and when the connection misbehaves; the simulator's records of orders and
executions are the truth a test checks the gateway against.

Public API: :class:`Simulator` (asyncio), :class:`SimulatorThread` / :func:`run_in_thread` (any
thread), :class:`Scenario` and its parts, the :class:`Execution` and :class:`OrderSnapshot` records.
"""

from execgw.sim.records import Contract, Execution, OrderSnapshot, ReceivedOrder, ReceivedRequest, Refusal
from execgw.sim.scenario import ConnectivityLoss, Drop, OrderBehaviour, Outage, Scenario
from execgw.sim.simulator import DEFAULT_ACCOUNT, Simulator
from execgw.sim.thread import SimulatorThread, run_in_thread
from execgw.sim.wire import SERVER_VERSION

__all__ = [
    "DEFAULT_ACCOUNT",
    "SERVER_VERSION",
    "ConnectivityLoss",
    "Contract",
    "Drop",
    "Execution",
    "OrderBehaviour",
    "OrderSnapshot",
    "Outage",
    "ReceivedOrder",
    "ReceivedRequest",
    "Refusal",
    "Scenario",
    "Simulator",
    "SimulatorThread",
    "run_in_thread",
]
