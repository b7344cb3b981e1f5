"""How many execution messages per second the TWS simulator delivers to a reading client.

    .venv/bin/python benchmarks/sim_flood.py [--executions 100000] [--ibapi-executions 20000]

The simulator runs as its own process (``execgw sim``), as it would beside a gateway, and floods
one market order with one-share executions (each an execDetails, an orderStatus and a
commissionReport). Two readers are measured, one after the other:

- a bare socket reader that splits frames and counts execDetails: the simulator's own ceiling;
- an unmodified ibapi EClient (reader thread, decoder, EWrapper.execDetails): what a gateway
  built on ibapi can take in before its own work starts;
- the same EClient reading with the gateway's LinearReader (server/ib/reader.py) in place of
  ibapi's EReader: ibapi's decoder and callbacks unchanged, only the framing differs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.execution import Execution
from ibapi.order import Order
from ibapi.wrapper import EWrapper

from execgw.server.ib.reader import LinearReaderClient
from execgw.sim.flood import read_flood

REQUIRED = 20_000


class CountingApp(EWrapper, EClient):
    def __init__(self, expected: int) -> None:
        EClient.__init__(self, self)
        self.expected = expected
        self.count = 0
        self.next_id = threading.Event()
        self.done = threading.Event()
        self.order_id = 0

    def nextValidId(self, orderId: int) -> None:
        self.order_id = orderId
        self.next_id.set()

    def execDetails(self, reqId: int, contract: Contract, execution: Execution) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done.set()

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:
        if not 2100 <= errorCode < 2200:
            print(f"ibapi error {errorCode}: {errorString}", file=sys.stderr)


class LinearCountingApp(CountingApp, LinearReaderClient):
    """The same client, framing with the gateway's reader."""


def measure_ibapi(port: int, executions: int, order_ref: str, app_class: type[CountingApp], client_id: int) -> float:
    app = app_class(executions)
    app.connect("127.0.0.1", port, client_id)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        if not app.next_id.wait(10):
            raise RuntimeError("ibapi client got no nextValidId")
        contract = Contract()
        contract.symbol, contract.secType, contract.exchange, contract.currency = "SPY", "STK", "SMART", "USD"
        order = Order()
        order.action, order.totalQuantity, order.orderType, order.orderRef = "BUY", executions, "MKT", order_ref
        for attribute in ("eTradeOnly", "firmQuoteOnly"):  # ibapi 9.81's True: refused with 10268 today
            if hasattr(order, attribute):
                setattr(order, attribute, False)
        started = time.perf_counter()
        app.placeOrder(app.order_id, contract, order)
        if not app.done.wait(300):
            raise RuntimeError(f"ibapi client got {app.count} of {executions} executions")
        return executions / (time.perf_counter() - started)
    finally:
        app.disconnect()
        thread.join(10)


def start_simulator(scenario: Path) -> tuple[subprocess.Popen[str], int]:
    execgw = Path(sys.executable).parent / "execgw"
    process = subprocess.Popen([str(execgw), "sim", "--port", "0", "--scenario", str(scenario)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on [\d.]+:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"execgw sim did not start: {line!r}")
    return process, int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000, help="executions for the socket reader")
    parser.add_argument("--ibapi-executions", type=int, default=20_000,
                        help="executions for the ibapi EClient (0 skips it)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "flood.json"
        scenario.write_text(json.dumps({"orders": {
            "flood": {"fills": args.executions, "price": 100.0},
            "flood-ibapi": {"fills": max(args.ibapi_executions, 1), "price": 100.0},
            "flood-linear": {"fills": max(args.ibapi_executions, 1), "price": 100.0},
        }}))
        process, port = start_simulator(scenario)
        try:
            result = asyncio.run(read_flood("127.0.0.1", port, args.executions))
            print(f"socket reader: {result.executions} executions ({result.messages} messages) in "
                  f"{result.seconds:.2f}s = {result.executions_per_second:,.0f} execution messages/s")
            if args.ibapi_executions:
                rate = measure_ibapi(port, args.ibapi_executions, "flood-ibapi", CountingApp, 91)
                print(f"ibapi EClient: {args.ibapi_executions} executions = {rate:,.0f} execution messages/s")
                rate = measure_ibapi(port, args.ibapi_executions, "flood-linear", LinearCountingApp, 92)
                print(f"ibapi EClient with LinearReader: {args.ibapi_executions} executions = "
                      f"{rate:,.0f} execution messages/s")
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)
    ok = result.executions_per_second >= REQUIRED
    print(f"{'PASS' if ok else 'FAIL'}: required {REQUIRED:,} execution messages/s to a reading client")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
