"""Flood mode: one market order filled in very many back-to-back executions.

A flood is an ordinary scenario behaviour (``fills=N, fill_interval=0``): each execution is a real
one (execDetails, orderStatus, commissionReport), recorded and returned by REQ_EXECUTIONS, so a
gateway under a flood does all of its normal work. The simulator yields to other clients every
few hundred executions and waits for the reader's socket, so the reading side sets the pace.

:func:`read_flood` is the measuring end: a bare socket client that places the flood order and
counts execution messages until all arrived.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from execgw.sim.scenario import OrderBehaviour, Scenario
from execgw.sim.wire import API_PREFIX, FrameReader, frame

FLOOD_ORDER_REF = "flood"


def flood_scenario(executions: int, order_ref: str = FLOOD_ORDER_REF, price: float = 100.0) -> Scenario:
    """A scenario in which the order with ``order_ref`` fills in ``executions`` executions of one
    share each at a fixed price; other orders fill at once."""
    return Scenario(orders={order_ref: OrderBehaviour(fills=executions, price=price)})


@dataclass(frozen=True)
class FloodResult:
    executions: int
    messages: int
    seconds: float
    """From the order's placement to the last execution received."""

    @property
    def executions_per_second(self) -> float:
        return self.executions / self.seconds if self.seconds else float("inf")


async def read_flood(host: str, port: int, executions: int, order_ref: str = FLOOD_ORDER_REF,
                     client_id: int = 90, timeout: float = 120.0) -> FloodResult:
    """Connect, place the flood order (``executions`` shares) and read until every execution came."""
    reader, writer = await asyncio.open_connection(host, port)
    frames = FrameReader()
    try:
        writer.write(API_PREFIX + frame(["v100..157"]))
        writer.write(frame([71, 2, client_id, ""]))
        order_id = await _next_valid_id(reader, frames)
        writer.write(frame(_market_order(order_id, executions, order_ref)))
        started = time.perf_counter()
        seen = messages = 0
        async with asyncio.timeout(timeout):
            while seen < executions:
                data = await reader.read(1 << 20)
                if not data:
                    raise ConnectionError(f"closed after {seen} of {executions} executions")
                for message in frames.feed(data):
                    messages += 1
                    if message[0] == "11":
                        seen += 1
        return FloodResult(seen, messages, time.perf_counter() - started)
    finally:
        writer.close()
        await writer.wait_closed()


async def _next_valid_id(reader: asyncio.StreamReader, frames: FrameReader) -> int:
    while True:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("closed during the handshake")
        for message in frames.feed(data):
            if message[0] == "9" and len(message) == 3:
                return int(message[2])


def _market_order(order_id: int, quantity: int, order_ref: str) -> list[object]:
    """PLACE_ORDER head as ibapi writes it for a SMART stock MKT order; the simulator ignores the tail."""
    return [
        3, order_id, 0, "SPY", "STK", "", 0.0, "", "", "SMART", "", "USD", "", "", "", "",
        "BUY", quantity, "MKT", "", "", "DAY", "", "", "", 0, order_ref, 1, 0, 0, 0, 0, 0, 0, 0,
    ]
