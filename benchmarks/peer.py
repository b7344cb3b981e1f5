"""Section 8, the peer: the same flood of executions (one order filled in `peer_executions`
one-share executions back to back, each an execDetails, an orderStatus and a commissionReport)
received three ways from one simulator, each in a fresh process, one after the other:

- ib_async 2.1 through its own event path (its decoder, wrapper, Trade/Fill objects, events):
  done when its execDetailsEvent and commissionReportEvent fired for every execution;
- the gateway's receive path, before storage: an IBSession (server/ib/session.py: the linear
  reader, ibapi's decoder, the CallbackTranslator of server/ib/wrapper.py, the hop onto the event
  loop) whose sink only counts the domain events: done when every ExecutionReport and
  CommissionReport reached it;
- a bare socket reader that only frames and counts (sim.flood.read_flood): the simulator's own
  ceiling, the floor of both (section 1 row).

Executions per second from placing the order until the last one arrived, at each size of
`peer_executions`. A path gets at most `peer_time_cap` seconds per size; past it the row says how
many had arrived and is not tried again. ib_async 2.1 needs the cap: its orderStatus handler
formats `f"orderStatus: {trade}"` for its log whatever the log level, and that repr holds every
fill of the order so far, so one order's flood costs it time quadratic in its executions.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from benchmarks import floors
from benchmarks.figures import Figure, guarded
from benchmarks.plan import Context
from benchmarks.simproc import SimProcess
from execgw.sim.flood import read_flood

SECTION = "peer"
CONNECT_TIMEOUT = 60.0


class Counts:
    """Executions and commissions seen, in memory the parent reads too: a receive path that
    runs out of time may be busy inside one long callback, where no timer of its own can fire,
    so the parent keeps the time, reads how far it got and ends it."""

    def __init__(self, expected: int, shared: Any) -> None:
        self.expected = expected
        self.shared = shared  # multiprocessing Array('q', 2): executions, commissions
        self.done = asyncio.Event()

    def seen(self, kind: str) -> None:
        self.shared[0 if kind == "execution" else 1] += 1
        if self.shared[0] >= self.expected and self.shared[1] >= self.expected:
            self.done.set()


async def _ib_async(port: int, counts: Counts, order_ref: str, placing: Callable[[], None]) -> None:
    from ib_async import IB, MarketOrder, Stock

    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=61, timeout=30)
    ib.execDetailsEvent += lambda *_: counts.seen("execution")
    ib.commissionReportEvent += lambda *_: counts.seen("commission")
    try:
        placing()
        ib.placeOrder(Stock("SPY", "SMART", "USD"), MarketOrder("BUY", counts.expected, orderRef=order_ref))
        await counts.done.wait()
    finally:
        ib.disconnect()


async def _gateway_session(port: int, counts: Counts, order_ref: str, placing: Callable[[], None]) -> None:
    from execgw.server.ib import events as ev
    from execgw.server.ib.endpoint import Endpoint
    from execgw.server.ib.session import IBSession, MarketOrder

    def sink(event: ev.IbEvent) -> None:
        if isinstance(event, ev.ExecutionReport):
            counts.seen("execution")
        elif isinstance(event, ev.CommissionReport):
            counts.seen("commission")

    session = IBSession(Endpoint("paper", "127.0.0.1", port, 62), sink)
    session.start()
    try:
        if not await session.wait_ready(30):
            raise RuntimeError("the IB session did not connect")
        [order_id] = session.order_ids.allocate(1)
        placing()
        await session.place_market_order(MarketOrder(order_id, order_ref, "SPY", "STK", "SMART", "", "USD", "BUY",
                                                     float(counts.expected), "DU1234567"))
        await counts.done.wait()
    finally:
        await session.stop()


PATHS = {"ib_async": _ib_async, "gateway": _gateway_session}


def _child(path: str, port: int, executions: int, order_ref: str, shared: Any, pipe: Connection) -> None:
    """In a fresh process: neither path inherits the other's memory, threads or warm caches.
    Sends the perf_counter of the order's placement, then of the last execution's arrival."""
    counts = Counts(executions, shared)
    try:
        asyncio.run(PATHS[path](port, counts, order_ref, lambda: pipe.send(("placing", time.perf_counter()))))
        pipe.send(("done", time.perf_counter()))
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


def flood(path: str, port: int, executions: int, order_ref: str, cap: float) -> dict[str, Any]:
    """One receive path taking the flood; gives up (and ends the process) after `cap` seconds,
    reporting how many executions had arrived by then."""
    context = multiprocessing.get_context("spawn")
    shared = context.Array("q", 2, lock=False)
    ours, theirs = context.Pipe()
    process = context.Process(target=_child, args=(path, port, executions, order_ref, shared, theirs), daemon=True)
    process.start()
    try:
        if not ours.poll(CONNECT_TIMEOUT):
            raise TimeoutError(f"{path} did not connect within {CONNECT_TIMEOUT:g}s")
        kind, placed = ours.recv()
        if kind != "placing":
            raise RuntimeError(f"{path}: {placed}")
        if not ours.poll(cap):
            # perf_counter is system-wide on Linux (CLOCK_MONOTONIC): comparable across processes.
            seconds = time.perf_counter() - placed
            return {"finished": False, "executions": shared[0], "commissions": shared[1], "seconds": seconds}
        kind, done = ours.recv()
        if kind != "done":
            raise RuntimeError(f"{path}: {done}")
        return {"finished": True, "executions": shared[0], "commissions": shared[1], "seconds": done - placed}
    finally:
        if process.is_alive():
            process.kill()
        process.join(10)


def _rate(figure: Figure, executions: int, outcome: dict[str, Any], cap: float) -> None:
    if not outcome["finished"]:
        so_far = outcome["executions"] / outcome["seconds"]
        raise RuntimeError(f"not finished in {cap:g} s: {outcome['executions']:,} of {executions:,} executions "
                           f"arrived ({so_far:,.0f}/s so far)")
    figure.add(executions / outcome["seconds"], outcome)


def _repeat(ctx: Context, figures: dict[tuple[str, int], Figure], given_up: set[str]) -> None:
    sizes, tag = ctx.sizes, ctx.tag()
    cap = sizes.peer_time_cap
    behaviours = {f"peer{n}-*": {"fills": n, "price": 100.0} for n in sizes.peer_executions}
    with SimProcess({"orders": behaviours}) as sim:
        largest = max(sizes.peer_executions)
        socket = asyncio.run(read_flood("127.0.0.1", sim.port, largest, f"peer{largest}-raw-{tag}", timeout=cap))
        figures[("socket", largest)].add(socket.executions_per_second)
        for executions in sizes.peer_executions:
            for path in PATHS:
                figure = figures[(path, executions)]
                if figure.key in given_up:
                    continue  # it ran out of time before: another try costs the same and says nothing new
                ref = f"peer{executions}-{path}-{tag}"
                if not guarded([figure], lambda f=figure, p=path, r=ref, n=executions: _rate(
                        f, n, flood(p, sim.port, n, r, cap), cap)):
                    given_up.add(figure.key)


def run(ctx: Context) -> None:
    report, sizes = ctx.report, ctx.sizes
    largest = max(sizes.peer_executions)
    figures: dict[tuple[str, int], Figure] = {
        ("socket", largest): report.figure(
            floors.SECTION, floors.SOCKET, "executions/s",
            note=f"{largest:,} executions (execDetails + orderStatus + commissionReport each), measured in section 8"),
    }
    for executions in sizes.peer_executions:
        figures[("ib_async", executions)] = report.figure(
            SECTION, f"ib_async 2.1, {executions:,} executions: its own event path", "executions/s",
            floor=floors.key(floors.SOCKET), note=f"at most {sizes.peer_time_cap:g} s")
        figures[("gateway", executions)] = report.figure(
            SECTION, f"gateway receive path, {executions:,} executions: IBSession → counting sink", "executions/s",
            floor=floors.key(floors.DECODER), note="socket → LinearReader → ibapi decoder → CallbackTranslator → loop")
    given_up: set[str] = set()
    for repeat in range(ctx.repeat):
        ctx.say(f"peer: ib_async and the gateway's receive path, repeat {repeat + 1}/{ctx.repeat}")
        guarded([figures[("socket", largest)]], lambda: _repeat(ctx, figures, given_up))
