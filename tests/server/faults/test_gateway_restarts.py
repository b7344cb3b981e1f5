"""The gateway as a real process that dies: SIGKILL with an order written but not yet sent,
SIGKILL in the middle of a run's fills, SIGTERM during a run. After a restart on the same
database it reconciles with IB and finishes the runs; nothing is lost, nothing is sent twice."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import timedelta

import grpc
import pytest
from gateway_process import GatewayProcess
from sqlalchemy import select
from sqlalchemy.orm import Session

from execgw.server.db.engine import make_engine
from execgw.server.db.models import TradeEvent, TradeFill, TradeOrder, TradeRun
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb


@pytest.fixture
def world(database_url, tmp_path, free_port):
    """A simulator that outlives gateway processes, and a factory for those processes."""
    started: list[GatewayProcess] = []
    sims: list[SimulatorThread] = []

    def make(scenario: dict, **env: str) -> tuple[SimulatorThread, GatewayProcess]:
        sim = SimulatorThread(scenario=Scenario.from_dict(scenario))
        sim.start()
        sims.append(sim)
        gateway = GatewayProcess(database_url, sim.port, tmp_path / "gateway.log", free_port, **env)
        started.append(gateway)
        return sim, gateway

    yield make
    for gateway in started:
        gateway.stop()
    for sim in sims:
        sim.stop()


def db_state(database_url: str, run_id: str) -> tuple[TradeRun, list[TradeOrder], list[TradeFill], list[int]]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            run = s.get(TradeRun, run_id)
            orders = list(s.scalars(select(TradeOrder).where(TradeOrder.run_id == run_id).order_by(TradeOrder.id)))
            fills = list(s.scalars(select(TradeFill).where(TradeFill.order_id.in_([o.id for o in orders]))))
            sequences = list(s.scalars(select(TradeEvent.sequence).where(TradeEvent.run_id == run_id)
                                       .order_by(TradeEvent.sequence)))
            return run, orders, fills, sequences
    finally:
        engine.dispose()


def wait_for_run_end(database_url: str, run_id: str, timeout: float = 40) -> TradeRun:
    deadline = time.monotonic() + timeout
    while True:
        run, *_ = db_state(database_url, run_id)
        if run.finished_at is not None:
            return run
        assert time.monotonic() < deadline, f"run still {run.status}"
        time.sleep(0.2)


def assert_matches_simulator(database_url: str, sim: SimulatorThread, run_id: str) -> None:
    _, orders, fills, sequences = db_state(database_url, run_id)
    refs = {o.client_order_id for o in orders}
    truth = [e for e in sim.executions() if e.order_ref in refs]
    assert sorted(f.exec_id for f in fills) == sorted(e.exec_id for e in truth)
    for order in orders:
        assert order.filled_qty == sum(e.shares for e in truth if e.order_ref == order.client_order_id)
    assert sequences == list(range(1, len(sequences) + 1))
    # Every PLACE_ORDER IB received, a resend under the same id (refused with 103) included.
    received = [o.order_ref for o in sim.received_orders() if o.order_ref in refs]
    assert len(received) == len(set(received)), "an order was sent to IB twice"


def orders(prefix: str, count: int) -> list[pb.OrderSpec]:
    return [pb.OrderSpec(client_order_id=f"{prefix}-{i}", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=10)
            for i in range(count)]


def test_sigkill_between_writing_orders_and_sending_them(world, database_url, midday_ib_time_zone):
    sim, gateway = world({}, EXECGW_PACING_PER_SECOND="1", EXECGW_IB_TIME_ZONE=midday_ib_time_zone)
    gateway.start()
    # The start-up reconciliation's three requests go out first, at one a second.
    deadline = time.monotonic() + 10
    while "REQ_EXECUTIONS" not in [r.name for r in sim.received_requests()]:
        assert time.monotonic() < deadline, "the start-up reconciliation never asked for executions"
        time.sleep(0.1)
    channel, stub = gateway.stub()
    prefix = uuid.uuid4().hex[:8]
    run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=orders(prefix, 3)),
                            timeout=10).run.run_id
    sim.wait_for_order(f"{prefix}-0", timeout=10)
    gateway.kill()  # orders 1 and 2 are written with their IB ids but still wait for the pacer
    channel.close()
    assert [o.order_ref for o in sim.received_orders() if o.order_ref.startswith(prefix)] == [f"{prefix}-0"], (
        "the kill came before the pacer let order 1 out"
    )
    gateway.start(EXECGW_PACING_PER_SECOND="45")
    run = wait_for_run_end(database_url, run_id)
    _, rows, _, _ = db_state(database_url, run_id)
    assert [o.order_ref for o in sim.received_orders() if o.order_ref.startswith(prefix)] == [f"{prefix}-0"], (
        "an order written before the crash was sent after it"
    )
    statuses = {row.client_order_id: (row.status, row.status_reason or "") for row in rows}
    assert statuses[f"{prefix}-0"][0] == "FILLED"
    for late in (f"{prefix}-1", f"{prefix}-2"):
        assert statuses[late][0] == "CANCELLED" and "never reached IB" in statuses[late][1]
    # IB said nothing of them, yet one might have been on the wire: cancelled at IB as well,
    # never only in our books.
    late_ids = {row.ib_order_id for row in rows if row.client_order_id != f"{prefix}-0"}
    cancels = {r.order_id for r in sim.received_requests() if r.name == "CANCEL_ORDER"}
    assert late_ids <= cancels, f"cancelled in our books only: {late_ids - cancels}"
    assert run.status == "PARTIAL"
    assert_matches_simulator(database_url, sim, run_id)


def test_sigkill_in_the_middle_of_a_runs_fills(world, database_url):
    sim, gateway = world({"default": {"fills": 8, "fill_interval": 0.25}})
    gateway.start()
    channel, stub = gateway.stub()
    prefix = uuid.uuid4().hex[:8]
    run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=orders(prefix, 2)),
                            timeout=10).run.run_id
    deadline = time.monotonic() + 15
    while len(db_state(database_url, run_id)[2]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    gateway.kill()
    channel.close()
    time.sleep(1.0)  # the simulator keeps filling while no gateway runs
    gateway.start()
    run = wait_for_run_end(database_url, run_id)
    assert run.status == "SUCCESS"
    assert len(db_state(database_url, run_id)[2]) == 16
    assert_matches_simulator(database_url, sim, run_id)


def test_sigterm_during_a_run_then_restart_completes_it_and_a_watcher_resumes(world, database_url):
    sim, gateway = world({"default": {"fills": 6, "fill_interval": 0.3}})
    gateway.start()
    channel, stub = gateway.stub()
    prefix = uuid.uuid4().hex[:8]
    run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=orders(prefix, 2)),
                            timeout=10).run.run_id
    seen: list[pb.RunEvent] = []
    stream = stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30)
    with pytest.raises(grpc.RpcError) as ended:
        for message in stream:
            if message.HasField("event"):
                seen.append(message.event)
                if sum(e.HasField("fill") for e in seen) == 2:
                    assert gateway.process is not None
                    gateway.process.send_signal(signal.SIGTERM)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "resume with after_sequence=" in ended.value.details()
    assert gateway.process is not None and gateway.process.wait(20) == 0
    channel.close()
    assert "execgw stopped" in gateway.log_path.read_text()

    gateway.start()
    channel, stub = gateway.stub()
    for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=seen[-1].sequence), timeout=60):
        if message.HasField("event"):
            seen.append(message.event)
    channel.close()
    assert seen[-1].run_status.final and seen[-1].run_status.status == pb.RUN_STATUS_SUCCESS
    _, _, _, sequences = db_state(database_url, run_id)
    assert [e.sequence for e in seen] == sequences
    assert_matches_simulator(database_url, sim, run_id)


def test_an_order_from_before_ibs_day_stays_unknown_after_a_restart(world, database_url, midday_ib_time_zone):
    """reqExecutions and reqCompletedOrders answer for IB's current day only: IB's silence about
    an order placed before that day began proves nothing, so it is never concluded "never
    reached IB"; an order of today that IB does not know is."""
    sim, gateway = world({"default": {"outcome": "rest"}}, EXECGW_IB_TIME_ZONE=midday_ib_time_zone)
    gateway.start()
    channel, stub = gateway.stub()
    prefix = uuid.uuid4().hex[:8]
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=orders(prefix, 2))
    request.deadline.FromTimedelta(timedelta(seconds=8))
    run_id = stub.SubmitRun(request, timeout=10).run.run_id
    for i in range(2):
        sim.wait_for_order(f"{prefix}-{i}", timeout=10, status="Submitted")
    gateway.kill()
    channel.close()

    # Order 0 was placed yesterday as far as our books go; then IB's day rolls over, and with it
    # the day's orders expire and drop out of what IB reports.
    engine = make_engine(database_url)
    try:
        with Session(engine) as s, s.begin():
            row = s.scalars(select(TradeOrder).where(TradeOrder.client_order_id == f"{prefix}-0")).one()
            row.created_at = row.created_at - timedelta(days=1)
    finally:
        engine.dispose()
    sim.new_day()

    gateway.start()
    run = wait_for_run_end(database_url, run_id)
    _, rows, fills, _ = db_state(database_url, run_id)
    by_ref = {r.client_order_id: r for r in rows}
    yesterday, today = by_ref[f"{prefix}-0"], by_ref[f"{prefix}-1"]
    assert yesterday.status == "UNKNOWN"
    assert "before IB's current day" in (yesterday.status_reason or "")
    assert today.status == "CANCELLED" and "never reached IB" in (today.status_reason or "")
    assert f"{prefix}-0 UNKNOWN" in (run.status_reason or "")
    assert fills == []
