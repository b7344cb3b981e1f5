"""Where the gateway, not the simulator, becomes the limit.

    .venv/bin/python -m benchmarks.gateway_throughput [--fills 5000] [--runs 50] [--database-url URL]

The simulator runs as its own process (`execgw sim`), the gateway in this process, the client
over gRPC. Two figures:

- fills per second stored and streamed: one market order that IB (the simulator) fills in
  `--fills` one-share executions back to back; timed from SubmitRun until a watcher received the
  run's final status, i.e. every execution, its commission and the status changes committed to
  the database and sent;
- run latency: `--runs` single-order runs one after another, SubmitRun until the watcher has the
  final status (which includes the reconciliation with IB that ends every run), p50/p90/max.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

from benchmarks.simproc import start_sim_cli
from execgw.server.config import Settings
from execgw.server.embedded import GatewayThread
from execgw.server.engine.runs import EngineTimings
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc


def start_simulator(folder: Path, fills: int) -> tuple[subprocess.Popen[bytes], int]:
    process, port, _ = start_sim_cli(folder, {"orders": {"flood-*": {"fills": fills, "price": 100.0}}})
    return process, port


def run_to_end(stub: pb_grpc.ExecutionServiceStub, order: pb.OrderSpec) -> tuple[float, int]:
    started = time.perf_counter()
    run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order]), timeout=30).run.run_id
    fills = 0
    for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=600):
        if message.event.HasField("fill"):
            fills += 1
        if message.event.HasField("run_status") and message.event.run_status.final:
            if message.event.run_status.status != pb.RUN_STATUS_SUCCESS:
                raise RuntimeError(f"run {run_id} ended {message.event.run_status.reason}")
            break
    return time.perf_counter() - started, fills


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        simulator, port = start_simulator(Path(folder), args.fills)
        url = args.database_url or f"sqlite:///{folder}/bench.sqlite3"
        timings = EngineTimings(commission_grace=0.5)
        gateway = GatewayThread(Settings(database_url=url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{port}"),
                                timings=timings).start()
        channel = grpc.insecure_channel(gateway.target)
        stub = pb_grpc.ExecutionServiceStub(channel)
        tag = uuid.uuid4().hex[:6]
        try:
            seconds, fills = run_to_end(stub, pb.OrderSpec(
                client_order_id=f"flood-{tag}", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=args.fills))
            assert fills == args.fills, (fills, args.fills)
            print(f"database: {url.split(':', 1)[0]}")
            print(f"fills stored and streamed: {fills} in {seconds:.2f}s = {fills / seconds:,.0f} fills/s")
            latencies = [
                run_to_end(stub, pb.OrderSpec(client_order_id=f"one-{tag}-{i}", symbol="MSFT",
                                              side=pb.ORDER_SIDE_SELL, quantity=10))[0]
                for i in range(args.runs)
            ]
            cuts = statistics.quantiles(latencies, n=10)
            print(f"single-order run, SubmitRun to final status: p50 {cuts[4] * 1000:.0f} ms, "
                  f"p90 {cuts[8] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms over {args.runs} runs")
        finally:
            channel.close()
            gateway.stop()
            simulator.terminate()
            simulator.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
