"""A run whose orders rest at IB until every watcher is open, then fill as the scenario says: the
shape of sections 2, 3 and 5. Resting first means no watcher misses the start and the clock
starts at a known moment (the release), not at a stream's connect.

A rate is offered as k orders of one run filling side by side, each about 100 executions a
second: one order cannot offer more than a few hundred a second, because the simulator's pause
between two executions is an asyncio timed wait, which epoll rounds up to the next millisecond
(fill_interval 1 ms gave 650-690/s, 1.4 ms and 2 ms both about 390/s). The rate really offered is
measured from the simulator's execution times and reported beside every figure."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.rig import submit, wait_order_status
from benchmarks.simproc import SimProcess
from benchmarks.watch_clients import StreamResult, Watchers
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc


@dataclass
class WatchedRun:
    run_id: str
    released_at: float  # time.time() just before the simulator was told to fill
    sequence_at_release: int  # the run's last event sequence before the fills
    last_sequence: int  # after its final status
    results: list[StreamResult]
    sent: dict[str, float]  # exec id → time.time() the simulator made the execution

    @property
    def incomplete(self) -> list[StreamResult]:
        """Streams that missed, repeated or reordered an event, or ended before the final status."""
        return [r for r in self.results if not r.complete or r.last_sequence != self.last_sequence]


PER_ORDER_PER_SECOND = 100
TIMER_OVERHEAD = 0.001  # what the simulator's pause adds to fill_interval: the millisecond round-up


def paced(rate: float, executions: int) -> tuple[int, int, float]:
    """(orders, executions per order, fill_interval) offering about `rate` executions per second
    in about `executions` executions."""
    orders = max(1, round(rate / PER_ORDER_PER_SECOND))
    interval = max(0.001, orders / rate - TIMER_OVERHEAD)
    return orders, max(2, executions // orders), interval


def resting_behaviour(executions: int, interval: float = 0.0) -> dict[str, object]:
    """A scenario entry: rest until released, then `executions` one-share executions `interval`
    seconds apart (0: back to back, the simulator's flood), each with its commission."""
    return {"outcome": "rest", "fills": executions, "fill_interval": interval, "price": 100.0}


def last_sequence(stub: pb_grpc.ExecutionServiceStub, run_id: str) -> int:
    return stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=30).run.last_sequence


def watch_release(stub: pb_grpc.ExecutionServiceStub, target: str, sim: SimProcess, ref: str, symbol: str,
                  executions: int, watchers: int, *, orders: int = 1, processes: int = 1, keep_fills: bool = False,
                  before_watchers: Callable[[], None] | None = None,
                  watchers_open: Callable[[], None] | None = None, events_per_message: int = 0) -> WatchedRun:
    """Submits `orders` orders of `executions` shares each (orderRefs `ref-00`, `ref-01`, …),
    opens the watchers, releases the orders and waits until every watcher has the run's final
    status. The callbacks run just before the watchers open and once they all are (section 5
    reads the gateway's RSS there)."""
    refs = [f"{ref}-{number:02d}" for number in range(orders)]
    run_id = submit(stub, [(order_ref, symbol, executions) for order_ref in refs])
    wait_order_status(stub, run_id, pb.ORDER_STATUS_SUBMITTED)
    if before_watchers is not None:
        before_watchers()
    clients = Watchers(target, run_id, watchers, processes=processes, keep_fills=keep_fills,
                       events_per_message=events_per_message)
    clients.start(ready_timeout=300 + watchers * 0.3)
    try:
        if watchers_open is not None:
            watchers_open()
        before = last_sequence(stub, run_id)
        released = time.time()
        for order_ref in refs:
            sim.call("release_order", order_ref)
        results = clients.results()
    finally:
        clients.stop()
    sent = {exec_id: made for exec_id, _, made, _ in sim.call("executions", ref)}
    return WatchedRun(run_id, released, before, last_sequence(stub, run_id), results, sent)
