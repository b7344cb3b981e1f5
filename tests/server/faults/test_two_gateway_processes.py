"""Two `execgw serve` processes on one MariaDB database and one simulator (issue 11): "a" with IB
client id 1, "b" with client id 2. A second process given a live gateway's name refuses to start,
naming it. After SIGKILL each gateway resumes only its own runs: "b" restarted while "a" is dead
leaves a's run alone, and "a" restarted finishes it, while a watcher on "b" follows it throughout.

MariaDB only: several gateways share one MySQL in production; on SQLite two processes on one
file are not the point (tests/server/test_two_gateways.py runs the in-process pair on both)."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from gateway_process import GatewayProcess
from sqlalchemy import select
from sqlalchemy.orm import Session

from execgw.server.db.engine import make_engine
from execgw.server.db.migrations import upgrade
from execgw.server.db.models import TradeEvent, TradeOrder, TradeRun
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(180)]



def named(name: str, client_id: int) -> dict[str, str]:
    """A gateway's name and IB client id; heartbeats every 0.5 s for the watcher while its run's owner is down."""
    return {"EXECGW_GATEWAY_NAME": name, "EXECGW_IB_CLIENT_ID": str(client_id), "EXECGW_HEARTBEAT_SECONDS": "0.5"}


@pytest.fixture
def database(fresh_mysql_url: str) -> str:
    upgrade(fresh_mysql_url)
    return fresh_mysql_url


@pytest.fixture
def desk(database: str, tmp_path: Path, free_port) -> Iterator[tuple[SimulatorThread, GatewayProcess, GatewayProcess]]:
    sim = SimulatorThread(scenario=Scenario.from_dict({"symbols": {"REST": {"outcome": "rest"}}}))
    sim.start()
    a = GatewayProcess(database, sim.port, tmp_path / "a.log", free_port, **named("a", 1))
    b = GatewayProcess(database, sim.port, tmp_path / "b.log", free_port, **named("b", 2))
    try:
        yield sim, a.start(), b.start()
    finally:
        a.stop()
        b.stop()
        sim.stop()


def resting_run(gateway: GatewayProcess, prefix: str) -> str:
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
        pb.OrderSpec(client_order_id=f"{prefix}-{gateway.name}", symbol="REST", side=pb.ORDER_SIDE_BUY, quantity=10)])
    request.deadline.FromTimedelta(timedelta(seconds=150))  # never reached: cancelled by the test
    with gateway.channel() as channel:
        return pb_grpc.ExecutionServiceStub(channel).SubmitRun(request, timeout=10).run.run_id


def stored(database: str, run_id: str) -> tuple[TradeRun, list[TradeOrder], list[int]]:
    engine = make_engine(database)
    try:
        with Session(engine) as s:
            run = s.get(TradeRun, run_id)
            assert run is not None
            orders = list(s.scalars(select(TradeOrder).where(TradeOrder.run_id == run_id)))
            sequences = list(s.scalars(select(TradeEvent.sequence).where(TradeEvent.run_id == run_id)
                                       .order_by(TradeEvent.sequence)))
            return run, orders, sequences
    finally:
        engine.dispose()


def until(condition: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.1)


def test_a_second_process_with_a_live_gateways_name_is_refused_at_start(desk, tmp_path, free_port, database):
    sim, a, _ = desk
    twin = GatewayProcess(database, sim.port, tmp_path / "twin.log", free_port, **named("a", 3))
    process = twin.spawn()
    try:
        assert process.wait(30) == 2
    finally:
        twin.stop()
    output = twin.log_path.read_text()
    assert a.process is not None
    assert f"gateway name 'a' is held by a live gateway: pid {a.process.pid} on host" in output, output
    assert f"127.0.0.1:{a.port}" in output
    assert 3 not in sim.connected_clients()  # refused before it reached IB
    # And the live one still serves.
    with a.channel() as channel:
        pb_grpc.ExecutionServiceStub(channel).ListRuns(pb.ListRunsRequest(), timeout=10)


def test_after_a_sigkill_each_gateway_resumes_only_its_own_runs(desk, database):
    sim, a, b = desk
    prefix = uuid.uuid4().hex[:8]
    run_a, run_b = resting_run(a, prefix), resting_run(b, prefix)
    for run_id in (run_a, run_b):
        until(lambda r=run_id: stored(database, r)[1][0].status == "SUBMITTED", f"run {run_id} working at IB")
    (order_a,) = stored(database, run_a)[1]

    assert a.kill(signal.SIGKILL) == -signal.SIGKILL
    # b restarts while a is dead: it resumes its own run, and leaves a's as it was.
    assert b.kill(signal.SIGTERM) == 0
    mark = b.log_size()
    b.start()
    restarted = b.log_since(mark)
    assert f"resuming open run {run_b}" in restarted, restarted
    assert run_a not in restarted, restarted
    run, (order,), _ = stored(database, run_a)
    assert run.status == "RUNNING" and run.gateway == "a"
    assert (order.status, order.status_reason) == ("SUBMITTED", order_a.status_reason)
    assert not [r for r in sim.received_requests() if r.name == "CANCEL_ORDER" and r.order_id == order_a.ib_order_id]

    # A watcher on b follows a's run while a is down (heartbeats) and after it comes back.
    messages: list[pb.WatchRunResponse] = []

    def watch() -> None:
        with b.channel() as channel:
            for message in pb_grpc.ExecutionServiceStub(channel).WatchRun(
                    pb.WatchRunRequest(run_id=run_a), timeout=90):
                messages.append(message)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    until(lambda: any(m.HasField("heartbeat") for m in messages), "a heartbeat on b while a is down")

    # a restarts: it resumes its own run (and only it), and its cancel ends it.
    mark = a.log_size()
    a.start()
    restarted = a.log_since(mark)
    assert f"resuming open run {run_a}" in restarted, restarted
    assert run_b not in restarted, restarted
    with a.channel() as channel:
        pb_grpc.ExecutionServiceStub(channel).CancelRun(pb.CancelRunRequest(run_id=run_a), timeout=30)
    watcher.join(30)
    assert not watcher.is_alive(), "b's watcher did not end with a's run"
    events = [m.event for m in messages if m.HasField("event")]
    run, (order,), sequences = stored(database, run_a)
    assert run.status == "CANCELLED" and order.status == "CANCELLED"
    assert [e.sequence for e in events] == sequences == list(range(1, len(sequences) + 1))
    assert events[-1].run_status.final and events[-1].run_status.status == pb.RUN_STATUS_CANCELLED
    # b's run is still b's, working, until b cancels it.
    assert stored(database, run_b)[0].status == "RUNNING"
    with b.channel() as channel:
        pb_grpc.ExecutionServiceStub(channel).CancelRun(pb.CancelRunRequest(run_id=run_b), timeout=30)
    assert stored(database, run_b)[0].status == "CANCELLED"
