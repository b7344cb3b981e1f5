"""Soak: many runs with random scenarios while the socket drops, the "IB Gateway" restarts (with a
rolled-back nextValidId), IB loses its connectivity and the execgw gateway itself restarts; at the
end, every fill the simulator made must be in the database exactly once.

    .venv/bin/python benchmarks/soak.py --runs 1000 [--seed 7] [--database-url URL]

Prints its counts and exits 0 only when nothing was lost, duplicated or sent twice and every run's
status agrees with its fills. The test suite runs a short one (tests/benchmarks/test_soak.py).
"""

from __future__ import annotations

import argparse
import logging
import random
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from execgw.server.config import Settings
from execgw.server.db.engine import make_engine
from execgw.server.db.models import OrderStatus, TradeEvent, TradeFill, TradeOrder, TradeRun
from execgw.server.embedded import GatewayThread
from execgw.server.engine.runs import EngineTimings
from execgw.server.engine.state import OrderOutcome, run_status
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

TIMINGS = EngineTimings(cancel_wait=1.0, reconcile_timeout=5.0, commission_grace=0.5, retry_interval=0.3)
SYMBOLS = ["AAPL", "MSFT", "SPY", "NVDA", "IBM", "QQQ"]


def random_behaviour(rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(
        ["fill", "partial", "reject", "rest", "correction", "duplicates", "commission", "late"],
        weights=[6, 4, 1, 1, 1, 1, 1, 1],
    )[0]
    if kind == "partial":
        return {"fills": rng.randint(2, 5), "fill_interval": rng.uniform(0.02, 0.2)}
    if kind == "reject":
        return {"outcome": "reject", "reject_reason": "Simulated: no trading permissions"}
    if kind == "rest":
        return {"outcome": "rest"}
    if kind == "correction":
        return {"fills": 2, "correction": round(rng.uniform(-0.5, 0.5), 2) or 0.1}
    if kind == "duplicates":
        return {"fills": 2, "duplicate_exec_details": True, "duplicate_order_status": True}
    if kind == "commission":
        return {"commission": rng.choice(["before", "delayed"]), "commission_delay": 0.3}
    if kind == "late":
        return {"late_fill": True, "fill_delay": 2.5}
    return {}


@dataclass
class Soak:
    runs: int
    seed: int
    database_url: str
    wave: int = 20
    rng: random.Random = field(init=False)
    planned: list[list[pb.OrderSpec]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    unavailable_retries: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def plan(self) -> Scenario:
        behaviours = {}
        prefix = f"soak{self.seed}-{int(time.time())}"
        for number in range(self.runs):
            orders = []
            for index in range(self.rng.randint(1, 3)):
                ref = f"{prefix}-{number}-{index}"
                behaviours[ref] = random_behaviour(self.rng)
                orders.append(pb.OrderSpec(
                    client_order_id=ref, symbol=self.rng.choice(SYMBOLS), quantity=self.rng.randint(1, 40) * 5,
                    side=self.rng.choice([pb.ORDER_SIDE_BUY, pb.ORDER_SIDE_SELL]),
                ))
            self.planned.append(orders)
        return Scenario.from_dict({"orders": behaviours})

    def run(self) -> int:
        started = time.monotonic()
        sim = SimulatorThread(scenario=self.plan(), seed=self.seed)
        sim.start()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = Settings(database_url=self.database_url, listen=f"127.0.0.1:{port}",
                            ib_paper=f"127.0.0.1:{sim.port}", default_deadline_seconds=2.0)
        gateway = GatewayThread(settings, timings=TIMINGS).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.ExecutionServiceStub(channel)
        try:
            for first in range(0, self.runs, self.wave):
                wave = [self.submit(stub, orders) for orders in self.planned[first:first + self.wave]]
                self.run_ids.extend(wave)
                # Faults strike while the wave's orders are in flight; the next wave waits for this
                # one, as a backend that submits decided batches would.
                gateway = self.maybe_fault(sim, gateway, settings)
                self.wait_for_runs(wave, timeout=60)
            self.wait_for_runs(self.run_ids, timeout=120)
            sample = self.rng.sample(self.run_ids, min(20, len(self.run_ids)))
            watched = {run_id: self.watch(stub, run_id) for run_id in sample}
            return self.verify(sim, watched, time.monotonic() - started)
        finally:
            channel.close()
            gateway.stop()
            sim.stop()

    def submit(self, stub: pb_grpc.ExecutionServiceStub, orders: list[pb.OrderSpec]) -> str:
        """Retried while the gateway or IB is down: same client_order_ids, so never twice."""
        request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=orders)
        for _ in range(200):
            try:
                return stub.SubmitRun(request, timeout=10).run.run_id
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                self.unavailable_retries += 1
                time.sleep(0.2)
        raise RuntimeError("the gateway stayed unavailable")

    def maybe_fault(self, sim: SimulatorThread, gateway: GatewayThread, settings: Settings) -> GatewayThread:
        roll = self.rng.random()
        if roll < 0.15:
            self.count("socket drop")
            sim.drop_connections()
        elif roll < 0.22:
            self.count("IB Gateway restart (nextValidId rolled back)")
            sim.refuse_connections(self.rng.uniform(0.3, 1.2), next_valid_id=1)
        elif roll < 0.29:
            code = self.rng.choice([1101, 1102])
            self.count(f"connectivity 1100 -> {code}")
            sim.send_error(1100)
            time.sleep(self.rng.uniform(0.1, 0.6))
            sim.send_error(code)
        elif roll < 0.34:
            self.count("execgw restart")
            gateway.stop()
            gateway = GatewayThread(settings, timings=TIMINGS).start()
        return gateway

    def count(self, fault: str) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1

    def wait_for_runs(self, run_ids: list[str], timeout: float) -> None:
        engine = make_engine(self.database_url)
        deadline = time.monotonic() + timeout
        try:
            while True:
                with Session(engine) as session:
                    open_runs = session.scalar(
                        select(TradeRun.id).where(TradeRun.id.in_(run_ids), TradeRun.finished_at.is_(None))
                        .limit(1))
                if open_runs is None:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run {open_runs} did not finish")
                time.sleep(0.5)
        finally:
            engine.dispose()

    def watch(self, stub: pb_grpc.ExecutionServiceStub, run_id: str) -> list[int]:
        return [m.event.sequence for m in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30)
                if m.HasField("event")]

    def verify(self, sim: SimulatorThread, watched: dict[str, list[int]], elapsed: float) -> int:
        engine = make_engine(self.database_url)
        with Session(engine) as session:
            orders = list(session.scalars(select(TradeOrder).where(TradeOrder.run_id.in_(self.run_ids))))
            by_id = {o.id: o for o in orders}
            refs = {o.client_order_id for o in orders}
            fills = list(session.scalars(select(TradeFill).where(TradeFill.order_id.in_(list(by_id)))))
            runs = list(session.scalars(select(TradeRun).where(TradeRun.id.in_(self.run_ids))))
            sequences: dict[str, list[int]] = {}
            for run_id, sequence in session.execute(
                select(TradeEvent.run_id, TradeEvent.sequence).where(TradeEvent.run_id.in_(self.run_ids))
                .order_by(TradeEvent.run_id, TradeEvent.sequence)
            ):
                sequences.setdefault(run_id, []).append(sequence)
        engine.dispose()

        truth = [e for e in sim.executions() if e.order_ref in refs]
        truth_ids = [e.exec_id for e in truth]
        stored_ids = [f.exec_id for f in fills]
        lost = sorted(set(truth_ids) - set(stored_ids))
        duplicated = len(stored_ids) - len(set(stored_ids))
        unknown = sorted(set(stored_ids) - set(truth_ids))
        received = [o.order_ref for o in sim.orders() if o.order_ref in refs]
        sent_twice = len(received) - len(set(received))
        superseded = {e.corrects for e in truth if e.corrects}
        wrong_qty = [o.client_order_id for o in orders
                     if abs(o.filled_qty - sum(e.shares for e in truth
                                               if e.order_ref == o.client_order_id and e.exec_id not in superseded)) > 1e-9]
        wrong_status = []
        for run in runs:
            run_orders = [o for o in orders if o.run_id == run.id]
            outcomes = [OrderOutcome(o.client_order_id, OrderStatus(o.status), o.quantity, o.filled_qty, None)
                        for o in run_orders]
            expected, _ = run_status(outcomes, cancelled_by_caller=False)
            if run.status != expected.value:
                wrong_status.append(run.id)
        gaps = [run_id for run_id, seqs in sequences.items() if seqs != list(range(1, len(seqs) + 1))]
        bad_watch = [run_id for run_id, seqs in watched.items() if seqs != sequences.get(run_id)]
        statuses: dict[str, int] = {}
        for run in runs:
            statuses[run.status] = statuses.get(run.status, 0) + 1

        print(f"runs={len(self.run_ids)} orders={len(orders)} sim_executions={len(truth)} fills_stored={len(fills)} "
              f"elapsed={elapsed:.1f}s")
        print(f"run statuses: {dict(sorted(statuses.items()))}")
        print(f"faults injected: {dict(sorted(self.faults.items()))}; SubmitRun retries after UNAVAILABLE: "
              f"{self.unavailable_retries}")
        print(f"lost={len(lost)} duplicated={duplicated} unknown={len(unknown)} sent_twice={sent_twice} "
              f"wrong_filled_qty={len(wrong_qty)} wrong_run_status={len(wrong_status)} event_gaps={len(gaps)} "
              f"watch_mismatches={len(bad_watch)}")
        problems = lost or duplicated or unknown or sent_twice or wrong_qty or wrong_status or gaps or bad_watch
        if problems:
            print(f"FAILED: lost {lost[:5]} unknown {unknown[:5]} wrong qty {wrong_qty[:5]} "
                  f"wrong status {wrong_status[:5]} gaps {gaps[:5]} watch {bad_watch[:5]}")
            return 1
        print("OK: no fill lost or duplicated, no order sent twice")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--wave", type=int, default=20, help="runs submitted between two chances of a fault")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/soak.sqlite3"
        return Soak(args.runs, args.seed, url, wave=args.wave).run()


if __name__ == "__main__":
    sys.exit(main())
