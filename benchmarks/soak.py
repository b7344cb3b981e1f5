"""Soak: many runs with random scenarios while the socket drops, the "IB Gateway" restarts (with a
rolled-back nextValidId), IB loses its connectivity and the execgw process is killed with SIGKILL
and started again on the same database. At the end the database is checked against what the
simulator received and executed, never against the gateway's own decisions.

    .venv/bin/python benchmarks/soak.py --runs 1000 [--seed 7] [--database-url URL]

The gateway is `execgw serve` in a process of its own; the simulator runs in this process, so its
records (every PLACE_ORDER received, every order created, every execution) outlive each crash.
What is counted, each from the simulator's records:

- lost: an execution IB made that is not in the database; unknown: a stored fill IB never made.
- sent_twice: PLACE_ORDER messages beyond the first for one client_order_id, as IB received them,
  refused ones included (a resend under the same IB order id is refused with 103, creates
  nothing and is still counted).
- executed_twice: client_order_ids IB created more than one order for, or executed beyond the
  ordered quantity.
- wrong_filled_qty: orders whose stored filled quantity is not what IB executed (corrections
  replace what they correct).
- wrong_run_status: runs whose stored status is not what IB's executions make it: every order's
  quantity executed SUCCESS, some execution PARTIAL, none FAILED (the soak never cancels).
- event_gaps: runs whose stored event sequences are not 1..n.
- watch_mismatches: watchers that followed a run from its submission (across the faults,
  resuming after UNAVAILABLE as a client does) or replayed it at the end, and did not receive
  exactly the stored sequence (a live watcher up to the first final status, where the server ends
  its stream).

Exits 0 only when every count is zero. The test suite runs a short one
(tests/benchmarks/test_soak.py), including builds broken on purpose that must make it fail.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from execgw.server.db.engine import make_engine
from execgw.server.db.models import TradeEvent, TradeFill, TradeOrder, TradeRun
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

EXECGW = Path(sys.executable).parent / "execgw"
GATEWAY_ENV = {
    "EXECGW_CANCEL_WAIT_SECONDS": "1", "EXECGW_RECONCILE_TIMEOUT_SECONDS": "5",
    "EXECGW_COMMISSION_GRACE_SECONDS": "0.5", "EXECGW_DEFAULT_DEADLINE_SECONDS": "2",
}
SYMBOLS = ["AAPL", "MSFT", "SPY", "NVDA", "IBM", "QQQ"]
FAULTS = ["socket drop", "IB Gateway restart (nextValidId rolled back)", "connectivity 1100 -> 1101/1102",
          "execgw SIGKILL"]
LIVE_WATCHERS_PER_WAVE = 2
RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GatewayProcess:
    """`execgw serve` in its own process, always on the same port and database; a crash is SIGKILL."""

    def __init__(self, database_url: str, sim_port: int, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.sim_port = sim_port
        self.log_path = log_path
        # EXECGW_* settings of the gateway; the soak's short timings unless a caller (the
        # benchmarks in benchmarks/__main__.py) brings its own.
        self.env = GATEWAY_ENV if env is None else env
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(EXECGW), "serve", "--listen", self.target, "--database-url", self.database_url,
                 "--ib-paper", f"127.0.0.1:{self.sim_port}"],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + timeout
        while not self._ib_connected():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start; its log ends:\n{self.log_tail()}")
            time.sleep(0.1)

    def _ib_connected(self) -> bool:
        try:
            with grpc.insecure_channel(self.target) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="execgw.ib.paper"), timeout=1)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def crash(self) -> None:
        """SIGKILL: no shutdown, no flush, no goodbye to IB; whatever was in flight is cut."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        if self.process.wait(20) != -signal.SIGKILL:
            raise RuntimeError(f"the gateway was not killed by SIGKILL:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stored:
    """The database, read once at the end."""

    orders: list[TradeOrder]
    fills: list[TradeFill]
    runs: dict[str, TradeRun]
    sequences: dict[str, list[int]]
    finals: dict[str, set[int]]  # per run: sequences of its final run_status events


@dataclass
class Soak:
    runs: int
    seed: int
    database_url: str
    folder: Path
    wave: int = 20
    rng: random.Random = field(init=False)
    planned: list[list[pb.OrderSpec]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    unavailable_retries: int = 0
    followed: dict[str, list[int]] = field(default_factory=dict)
    follow_errors: list[str] = field(default_factory=list)
    followers: list[threading.Thread] = field(default_factory=list)

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
        gateway = GatewayProcess(self.database_url, sim.port, self.folder / "gateway.log")
        channel = grpc.insecure_channel(gateway.target)
        stub = pb_grpc.ExecutionServiceStub(channel)
        try:
            gateway.start()
            for number, first in enumerate(range(0, self.runs, self.wave)):
                wave = [self.submit(stub, orders) for orders in self.planned[first:first + self.wave]]
                self.run_ids.extend(wave)
                for run_id in self.rng.sample(wave, min(LIVE_WATCHERS_PER_WAVE, len(wave))):
                    self.follow(stub, run_id)
                # Faults strike while the wave's orders are in flight; the next wave waits for this
                # one, as a backend that submits decided batches would. The first waves go through
                # every kind of fault once, so that even a short soak has each.
                self.fault(sim, gateway, FAULTS[number] if number < len(FAULTS) else None)
                self.wait_for_runs(wave, timeout=90)
            self.wait_for_runs(self.run_ids, timeout=120)
            self.wait_for_ib_to_settle(sim, timeout=30)
            for thread in self.followers:
                thread.join(60)
            sample = self.rng.sample(self.run_ids, min(20, len(self.run_ids)))
            replayed = {run_id: self.replay(stub, run_id) for run_id in sample}
            return self.verify(sim, replayed, time.monotonic() - started, gateway)
        finally:
            channel.close()
            gateway.stop()
            sim.stop()

    def submit(self, stub: pb_grpc.ExecutionServiceStub, orders: list[pb.OrderSpec]) -> str:
        """Retried while the gateway or IB is down: same client_order_ids, so never twice."""
        request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=orders)
        for _ in range(300):
            try:
                return stub.SubmitRun(request, timeout=10).run.run_id
            except grpc.RpcError as error:
                if error.code() not in RETRIED:
                    raise
                self.unavailable_retries += 1
                time.sleep(0.2)
        raise RuntimeError("the gateway stayed unavailable")

    def fault(self, sim: SimulatorThread, gateway: GatewayProcess, kind: str | None) -> None:
        if kind is None:
            roll = self.rng.random()
            kind = next((k for k, bound in zip(FAULTS, (0.15, 0.22, 0.29, 0.34), strict=True) if roll < bound), None)
            if kind is None:
                return
        self.faults[kind] += 1
        if kind == "socket drop":
            sim.drop_connections()
        elif kind.startswith("IB Gateway restart"):
            sim.refuse_connections(self.rng.uniform(0.3, 1.2), next_valid_id=1)
        elif kind.startswith("connectivity"):
            code = self.rng.choice([1101, 1102])
            sim.send_error(1100)
            time.sleep(self.rng.uniform(0.1, 0.6))
            sim.send_error(code)
        else:
            # Somewhere among writing orders, pacing them out, and storing their fills.
            time.sleep(self.rng.uniform(0.0, 0.8))
            gateway.crash()
            gateway.start()

    def follow(self, stub: pb_grpc.ExecutionServiceStub, run_id: str) -> None:
        """A watcher from the run's submission to its final status. It drops its own stream once,
        after a few events, as a client on a flaky network does, and resumes from its last
        sequence; after UNAVAILABLE (the gateway killed) it resumes the same way."""
        cut_after = self.rng.randint(1, 4)

        def watch() -> None:
            seen: list[int] = []
            cut = False
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                try:
                    call = stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=seen[-1] if seen else 0),
                                         timeout=60)
                    for message in call:
                        if message.HasField("event"):
                            seen.append(message.event.sequence)
                            if not cut and len(seen) == cut_after:
                                cut = True
                                call.cancel()
                                break
                    else:
                        break  # the server ended the stream: the run's final status was sent
                except grpc.RpcError as error:
                    if error.code() not in RETRIED:
                        self.follow_errors.append(f"{run_id}: {error.code().name} {error.details()}")
                        break
                    time.sleep(0.2)
            self.followed[run_id] = seen

        thread = threading.Thread(target=watch, name=f"watch-{run_id}", daemon=True)
        thread.start()
        self.followers.append(thread)

    def replay(self, stub: pb_grpc.ExecutionServiceStub, run_id: str) -> list[int]:
        return [m.event.sequence for m in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30)
                if m.HasField("event")]

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

    def wait_for_ib_to_settle(self, sim: SimulatorThread, timeout: float) -> None:
        """Late fills may still be on their way: wait until IB has no working order of ours left."""
        refs = {o.client_order_id for orders in self.planned for o in orders}
        deadline = time.monotonic() + timeout
        while any(o.status not in ("Filled", "Cancelled", "ApiCancelled", "Inactive")
                  for o in sim.orders() if o.order_ref in refs):
            if time.monotonic() > deadline:
                print("IB still works orders of the soak; counting anyway")
                return
            time.sleep(0.5)

    def read_database(self) -> Stored:
        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                orders = list(session.scalars(select(TradeOrder).where(TradeOrder.run_id.in_(self.run_ids))))
                fills = list(session.scalars(
                    select(TradeFill).where(TradeFill.order_id.in_([o.id for o in orders]))))
                runs = {r.id: r for r in session.scalars(select(TradeRun).where(TradeRun.id.in_(self.run_ids)))}
                sequences: dict[str, list[int]] = {}
                finals: dict[str, set[int]] = {}
                for run_id, sequence, kind, payload in session.execute(
                    select(TradeEvent.run_id, TradeEvent.sequence, TradeEvent.kind, TradeEvent.payload)
                    .where(TradeEvent.run_id.in_(self.run_ids)).order_by(TradeEvent.run_id, TradeEvent.sequence)
                ):
                    sequences.setdefault(run_id, []).append(sequence)
                    if kind == "run_status" and (payload or {}).get("final"):
                        finals.setdefault(run_id, set()).add(sequence)
        finally:
            engine.dispose()
        return Stored(orders, fills, runs, sequences, finals)

    def count(self, sim: SimulatorThread, replayed: dict[str, list[int]]) -> dict[str, list[str]]:
        """Each problem, named by run, order or execution; every list empty when all is well."""
        db = self.read_database()
        planned = {o.client_order_id: o for orders in self.planned for o in orders}
        truth = [e for e in sim.executions() if e.order_ref in planned]
        superseded = {e.corrects for e in truth if e.corrects}
        executed: Counter[str] = Counter()
        for execution in truth:
            if execution.exec_id not in superseded:
                executed[execution.order_ref] += execution.shares
        created = Counter(o.order_ref for o in sim.orders() if o.order_ref in planned)
        received = Counter(o.order_ref for o in sim.received_orders() if o.order_ref in planned)

        stored_ids = {f.exec_id for f in db.fills}
        truth_ids = {e.exec_id for e in truth}
        problems: dict[str, list[str]] = {
            "lost": sorted(truth_ids - stored_ids),
            "unknown": sorted(stored_ids - truth_ids),
            "sent_twice": [f"{ref} x{n}" for ref, n in received.items() if n > 1],
            "executed_twice": [ref for ref, spec in planned.items()
                               if created[ref] > 1 or executed[ref] > spec.quantity + 1e-9],
            "wrong_filled_qty": [f"{o.client_order_id} {o.filled_qty:g}!={executed[o.client_order_id]:g}"
                                 for o in db.orders if abs(o.filled_qty - executed[o.client_order_id]) > 1e-9],
        }
        wrong_status = []
        for run_id, orders in zip(self.run_ids, self.planned, strict=True):
            done = [executed[o.client_order_id] >= o.quantity - 1e-9 for o in orders]
            expected = "SUCCESS" if all(done) else "PARTIAL" if any(
                executed[o.client_order_id] > 0 for o in orders) else "FAILED"
            run = db.runs.get(run_id)
            actual = run.status if run is not None else "missing"
            if actual != expected:
                wrong_status.append(f"{run_id} {actual}!={expected}")
        problems["wrong_run_status"] = wrong_status
        problems["event_gaps"] = [run_id for run_id in self.run_ids
                                  if db.sequences.get(run_id, []) != list(range(1, len(db.sequences.get(run_id, [])) + 1))]
        mismatches = [f"replayed {run_id}" for run_id, seqs in replayed.items() if seqs != db.sequences.get(run_id)]
        for run_id, seqs in self.followed.items():
            stored = db.sequences.get(run_id, [])
            if not seqs or seqs != stored[:len(seqs)] or seqs[-1] not in db.finals.get(run_id, set()):
                mismatches.append(f"followed {run_id}: got {len(seqs)} events, stored {len(stored)}")
        missing_followers = len(self.followers) - len(self.followed)
        mismatches += [f"a watcher still running or failed: {e}" for e in self.follow_errors]
        mismatches += [f"{missing_followers} watchers did not finish"] if missing_followers else []
        problems["watch_mismatches"] = mismatches
        return problems

    def verify(self, sim: SimulatorThread, replayed: dict[str, list[int]], elapsed: float,
               gateway: GatewayProcess) -> int:
        # The gateway may still be storing what IB said last: counts get a bounded time to settle.
        deadline = time.monotonic() + 15
        problems = self.count(sim, replayed)
        while any(problems.values()) and time.monotonic() < deadline:
            time.sleep(1)
            problems = self.count(sim, replayed)
        db = self.read_database()
        statuses = Counter(run.status for run in db.runs.values())
        truth = [e for e in sim.executions() if e.order_ref in {o.client_order_id for o in db.orders}]
        print(f"runs={len(self.run_ids)} orders={len(db.orders)} sim_executions={len(truth)} "
              f"fills_stored={len(db.fills)} placeOrders_received={len(sim.received_orders())} "
              f"watched_live={len(self.followed)} elapsed={elapsed:.1f}s")
        print(f"run statuses: {dict(sorted(statuses.items()))}")
        print(f"faults injected: {dict(sorted(self.faults.items()))}; SubmitRun retries after UNAVAILABLE: "
              f"{self.unavailable_retries}")
        print(" ".join(f"{name}={len(found)}" for name, found in problems.items()))
        if any(problems.values()):
            for name, found in problems.items():
                if found:
                    print(f"FAILED {name}: {found[:5]}")
            print(f"gateway log ends:\n{gateway.log_tail(15)}")
            return 1
        print("OK: nothing lost, sent twice or executed twice; every status and stream agrees with IB")
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
        return Soak(args.runs, args.seed, url, Path(folder), wave=args.wave).run()


if __name__ == "__main__":
    sys.exit(main())
