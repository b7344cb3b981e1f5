"""Several gateways on one database: what watching a run on a gateway that does not own it costs.

Two gateways ("a", IB client id 1, and "b", client id 2) on one simulator and one database, in
this process (each on its own event loop, with its own store and IB connection):

1. tail latency: one run on "a" filled in --fills executions (each with its commission); one
   watcher on "a" and one on "b". For every event, the time from its stored_at (set by a's
   writer in the transaction that commits it) to its arrival at each watcher: p50 / p99 / max.
2. database load of tailed runs: --runs resting runs on "a", each watched on "b"; the statements
   b sends to the database per second while they stay quiet (its tails' polls, its registry
   heartbeat), and the same with --watchers-per-run watchers on each run.

    .venv/bin/python benchmarks/two_gateways.py                      # MariaDB on 127.0.0.1:3306
    .venv/bin/python benchmarks/two_gateways.py --sqlite
    .venv/bin/python benchmarks/two_gateways.py --poll-seconds 0.05 --fills 500 --runs 1 10 100

On MariaDB a database of its own is made and dropped afterwards.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from tempfile import TemporaryDirectory

import grpc
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from execgw.server.config import Settings
from execgw.server.embedded import GatewayThread
from execgw.server.engine.runs import EngineTimings
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

TIMINGS = EngineTimings(cancel_wait=1.5, reconcile_timeout=5.0, commission_grace=1.0, retry_interval=0.3)


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    if args.sqlite:
        with TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        return
    name = f"execgw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.mysql_server)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield make_url(args.mysql_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def watch(stub: pb_grpc.ExecutionServiceStub, run_id: str, arrivals: list[tuple[float, pb.RunEvent]]) -> None:
    for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=600):
        if message.HasField("event"):
            arrivals.append((time.time(), message.event))


def latencies_ms(arrivals: list[tuple[float, pb.RunEvent]]) -> list[float]:
    return [(at - e.stored_at.ToDatetime(tzinfo=UTC).timestamp()) * 1000 for at, e in arrivals]


def tail_latency(a: GatewayThread, b: GatewayThread, fills: int) -> None:
    with grpc.insecure_channel(a.target) as on_a, grpc.insecure_channel(b.target) as on_b:
        order = pb.OrderSpec(client_order_id=f"lat-{uuid.uuid4().hex[:8]}", symbol="FLOOD",
                             side=pb.ORDER_SIDE_BUY, quantity=fills)
        run_id = pb_grpc.ExecutionServiceStub(on_a).SubmitRun(
            pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order]), timeout=10).run.run_id
        local: list[tuple[float, pb.RunEvent]] = []
        foreign: list[tuple[float, pb.RunEvent]] = []
        threads = [threading.Thread(target=watch, args=(pb_grpc.ExecutionServiceStub(ch), run_id, into))
                   for ch, into in ((on_a, local), (on_b, foreign))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
    assert [e.sequence for _, e in local] == [e.sequence for _, e in foreign], "the two streams differ"
    for label, arrivals in (("on a (owner, live)", local), ("on b (tailed)", foreign)):
        ms = latencies_ms(arrivals)
        print(f"  {label:20s} {len(ms)} events: p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms,"
              f" max {max(ms):.1f} ms")


def drain(stream: grpc.Future) -> None:
    """Reads a stream until it is cancelled."""
    try:
        for _ in stream:
            pass
    except grpc.RpcError:
        pass


def tailed_load(a: GatewayThread, b: GatewayThread, runs: int, watchers_per_run: int, seconds: float) -> None:
    statements = [0]

    def count(*_: object) -> None:
        statements[0] += 1

    assert b.gateway.store is not None
    engine = b.gateway.store.engine
    with grpc.insecure_channel(a.target) as on_a, grpc.insecure_channel(b.target) as on_b:
        stub_a, stub_b = pb_grpc.ExecutionServiceStub(on_a), pb_grpc.ExecutionServiceStub(on_b)
        prefix = uuid.uuid4().hex[:8]
        run_ids = [stub_a.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[pb.OrderSpec(
            client_order_id=f"{prefix}-{i}", symbol="REST", side=pb.ORDER_SIDE_BUY, quantity=1)]),
            timeout=10).run.run_id for i in range(runs)]
        streams = [stub_b.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=600)
                   for run_id in run_ids for _ in range(watchers_per_run)]
        readers = [threading.Thread(target=drain, args=(stream,), daemon=True) for stream in streams]
        for reader in readers:
            reader.start()
        tails = b.gateway.foreign_runs
        assert tails is not None
        deadline = time.monotonic() + 60
        while tails.tailed_runs < runs:
            assert time.monotonic() < deadline, "b did not start its tails"
            time.sleep(0.05)
        time.sleep(1.0)  # the orders' Submitted statuses arrive and are handed over
        event.listen(engine, "before_cursor_execute", count)
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        event.remove(engine, "before_cursor_execute", count)
        rate = statements[0] / elapsed
        print(f"  {runs:4d} tailed runs x {watchers_per_run} watcher(s): {rate:7.1f} statements/s from b "
              f"({rate / runs:.2f} per run per s), tails {tails.tailed_runs}")
        for stream in streams:
            stream.cancel()
        for run_id in run_ids:
            stub_a.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of MariaDB")
    parser.add_argument("--mysql-server", default="mysql+pymysql://root@127.0.0.1:3306/test")
    parser.add_argument("--poll-seconds", type=float, default=0.2, help="b's foreign_watch_poll_seconds")
    parser.add_argument("--fills", type=int, default=300)
    parser.add_argument("--fill-interval", type=float, default=0.02)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--watchers-per-run", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each load figure is counted")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the cancels at the end are warned about: expected
    scenario = Scenario.from_dict({"symbols": {
        "FLOOD": {"fills": args.fills, "fill_interval": args.fill_interval}, "REST": {"outcome": "rest"}}})
    with database(args) as url, SimulatorThread(scenario=scenario) as sim:
        common = dict(database_url=url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{sim.port}",
                      max_watch_streams_per_caller=1000, max_open_runs=None, heartbeat_seconds=5)
        a = GatewayThread(Settings(gateway_name="a", ib_client_id=1, **common), timings=TIMINGS).start()
        b = GatewayThread(Settings(gateway_name="b", ib_client_id=2, foreign_watch_poll_seconds=args.poll_seconds,
                                   **common), timings=TIMINGS).start()
        try:
            print(f"database {make_url(url).get_backend_name()}, b polls every {args.poll_seconds:g} s")
            print(f"tail latency, one run of {args.fills} fills ({args.fill_interval:g} s apart), stored_at -> watcher:")
            tail_latency(a, b, args.fills)
            print(f"database load on b, quiet runs, counted over {args.seconds:g} s:")
            for runs in args.runs:
                tailed_load(a, b, runs, 1, args.seconds)
            tailed_load(a, b, args.runs[-1], args.watchers_per_run, args.seconds)
        finally:
            b.stop()
            a.stop()


if __name__ == "__main__":
    main()
