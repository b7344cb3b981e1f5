"""The decoder floor: ibapi's own decoder (`comm.read_fields` + `Decoder.interpret`, what
`EClient.run` does per message) on the bytes of n executions as the simulator sends them
(execDetails, orderStatus, commissionReport each), into callbacks that do nothing.

Framing is left out (benchmarks/reader.py measures it: 510k-850k msg/s with the gateway's
reader), so this is what any ibapi-based receive path pays before its own work starts; compare
sim_flood.py's "ibapi EClient with LinearReader" (decoder + framing + a counting callback).
"""

from __future__ import annotations

import struct
import time
from typing import Any

from ibapi import comm
from ibapi.decoder import Decoder
from ibapi.wrapper import EWrapper

from benchmarks.reader import CONTRACT, sample_execution
from execgw.sim import messages
from execgw.sim.records import Order
from execgw.sim.wire import SERVER_VERSION

_LENGTH = struct.Struct(">I")


class _Quiet(EWrapper):
    """The callbacks an execution arrives through, doing nothing (EWrapper's own would log each)."""

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:
        pass

    def orderStatus(self, *args: Any) -> None:
        pass

    def commissionReport(self, commissionReport: Any) -> None:
        pass


def execution_payloads(executions: int) -> list[bytes]:
    """The message payloads (length prefix removed, as ibapi's reader queues them) of `executions`
    one-share executions of one order: execDetails, orderStatus, commissionReport each."""
    order = Order(order_id=501, client_id=1, perm_id=1_800_000_001, contract=CONTRACT, action="BUY",
                  quantity=float(executions), order_type="MKT", account="DU1234567", order_ref="run-7f3c-ord-0001",
                  status="Submitted")
    framed: list[bytes] = []
    for i in range(executions):
        execution = sample_execution(i)
        order.filled = float(i + 1)
        order.avg_fill_price = execution.avg_price
        framed += [messages.execution_data(-1, execution), messages.order_status(order),
                   messages.commission_report(execution)]
    return [message[_LENGTH.size:] for message in framed]


def measure(executions: int) -> float:
    """Executions per second through ibapi's decoder alone."""
    payloads = execution_payloads(executions)
    decoder = Decoder(_Quiet(), SERVER_VERSION)
    started = time.perf_counter()
    for payload in payloads:
        decoder.interpret(comm.read_fields(payload))
    return executions / (time.perf_counter() - started)
