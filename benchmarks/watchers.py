"""SubmitRun latency with 0 watchers and with N WatchRun streams open, and how those streams end.

    .venv/bin/python benchmarks/watchers.py [--watchers 2000] [--submits 20] [--database-url URL]

The gateway and the simulator run in this process; the watchers in a child process (grpc.aio,
spread over a few channels) so that their client work does not share the gateway's GIL. All N
watch one run that stays open (its order rests at IB), so every stream replays the run from the
database and then stays live with heartbeats. Printed, in milliseconds:

- SubmitRun with no watcher;
- SubmitRun while the N streams connect (each replays from the database at once);
- SubmitRun with the N streams open;
- the gateway's CPU with the N streams open and nothing else to do (their heartbeats);
- how the N streams ended: refused (RESOURCE_EXHAUSTED), cut otherwise (by status code), or
  still open when the child closed them.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import grpc

from execgw.server.config import Settings
from execgw.server.embedded import GatewayThread
from execgw.server.engine.runs import EngineTimings
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

CHANNELS = 8


def watchers(target: str, run_id: str, count: int, hold: float, pipe: Connection) -> None:
    """Child process: opens `count` streams, reports when all got their first message, keeps
    them for `hold` seconds after being told to, then reports how each ended."""

    async def main() -> None:
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(CHANNELS)]
        opened = 0
        endings: Counter[str] = Counter()
        all_open = asyncio.Event()

        async def watch(index: int) -> None:
            nonlocal opened
            stub = pb_grpc.ExecutionServiceStub(channels[index % CHANNELS])
            call = stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=hold + 600)
            first = True
            try:
                async for _message in call:
                    if first:
                        first = False
                        opened += 1
                        if opened == count:
                            all_open.set()
            except asyncio.CancelledError:
                endings["open until the end"] += 1
                raise
            except grpc.aio.AioRpcError as error:
                endings[f"{error.code().name} ({error.details()})"] += 1
                if first:
                    opened += 1  # answered, if by a refusal
                    if opened == count:
                        all_open.set()
                return
            endings["ended by the server (OK)"] += 1

        started = time.perf_counter()
        tasks = [asyncio.create_task(watch(i)) for i in range(count)]
        await all_open.wait()
        pipe.send(("all answered", time.perf_counter() - started))
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()
        pipe.send(("endings", dict(endings)))

    asyncio.run(main())


def submit(stub: pb_grpc.ExecutionServiceStub) -> float:
    order = pb.OrderSpec(client_order_id=f"bench-{uuid.uuid4().hex[:12]}", symbol="AAPL",
                         side=pb.ORDER_SIDE_BUY, quantity=1)
    started = time.perf_counter()
    stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order]), timeout=120)
    return (time.perf_counter() - started) * 1000


def summary(name: str, latencies: list[float]) -> str:
    if not latencies:
        return f"{name:<44} (none)"
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (f"{name:<44} n={len(ordered):<4} p50 {statistics.median(ordered):8.1f}  p90 {p90:8.1f}  "
            f"max {ordered[-1]:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=2000)
    parser.add_argument("--submits", type=int, default=20, help="SubmitRuns timed in each phase")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--max-streams", type=int, help="gateway's max_watch_streams (default: room for all)")
    parser.add_argument("--max-streams-per-caller", type=int, help="default: room for all")
    parser.add_argument("--heartbeat-seconds", type=float, default=5.0, help="gateway's heartbeat on quiet streams")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="how long the gateway's CPU is measured with the streams open and nothing to do")
    args = parser.parse_args()

    scenario = Scenario.from_dict({"orders": {"watched-*": {"outcome": "rest"}}})
    sim = SimulatorThread(scenario=scenario)
    sim.start()
    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite:///{Path(folder) / 'watchers.sqlite3'}"
        settings = Settings(
            database_url=database_url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{sim.port}",
            max_watch_streams=args.max_streams or args.watchers + 10,
            max_watch_streams_per_caller=args.max_streams_per_caller or args.watchers + 10,
            heartbeat_seconds=args.heartbeat_seconds, max_deadline_seconds=3600,
        )
        gateway = GatewayThread(settings, timings=EngineTimings(commission_grace=0.5)).start()
        channel = grpc.insecure_channel(gateway.target)
        stub = pb_grpc.ExecutionServiceStub(channel)
        try:
            watched = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[pb.OrderSpec(
                client_order_id=f"watched-{uuid.uuid4().hex[:8]}", symbol="AAPL", side=pb.ORDER_SIDE_BUY,
                quantity=1)])
            watched.deadline.FromTimedelta(timedelta(minutes=30))
            run_id = stub.SubmitRun(watched, timeout=30).run.run_id
            for _ in range(3):
                submit(stub)  # warm-up
            idle = [submit(stub) for _ in range(args.submits)]

            ours, theirs = multiprocessing.Pipe()
            child = multiprocessing.get_context("spawn").Process(
                target=watchers, args=(gateway.target, run_id, args.watchers, 5.0, theirs))
            child.start()
            connecting: list[float] = []
            while not ours.poll():
                connecting.append(submit(stub))
            _, storm_seconds = ours.recv()
            established = [submit(stub) for _ in range(args.submits)]
            # The gateway, simulator and this thread share this process; with nothing submitted
            # the simulator and this thread are idle, so the CPU is the streams' upkeep.
            time.sleep(2.0)  # the last submitted runs finish first (fills, commissions, run end)
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            time.sleep(args.idle_seconds)
            idle_cpu = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
            ours.send("stop")
            _, endings = ours.recv()
            child.join(60)
        finally:
            channel.close()
            gateway.stop()
            sim.stop()

    print(f"database: {database_url.split('://')[0]}, watchers: {args.watchers}, "
          f"limits: {settings.max_watch_streams} total / {settings.max_watch_streams_per_caller} per caller")
    print("SubmitRun latency, ms")
    print(summary("0 watchers", idle))
    print(summary(f"while {args.watchers} watchers connect ({storm_seconds:.1f} s)", connecting))
    print(summary(f"with {args.watchers} watchers open", established))
    print(f"gateway CPU with {args.watchers} streams open and idle (heartbeat every "
          f"{args.heartbeat_seconds:g} s): {idle_cpu * 100:.1f}% of one core")
    print("how the streams ended:", ", ".join(f"{name} {count}" for name, count in sorted(endings.items())))


if __name__ == "__main__":
    main()
