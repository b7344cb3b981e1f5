"""Runs end to end: gRPC → gateway → ibapi → TCP → simulator → back, database checked after.

Every test runs on SQLite and on MariaDB (the `database_url` fixture)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from execgw.server.db.models import OrderStatus, RunStatus
from execgw.v1 import execution_pb2 as pb


def assert_db_matches_sim(live, run_id: str) -> None:
    """The database holds every execution the simulator made for the run, once, with commissions."""
    fills = {f.exec_id: f for f in live.fills(run_id)}
    orders = {o.id: o.client_order_id for o in live.orders(run_id)}
    refs = set(orders.values())
    truth = [e for e in live.sim.executions() if e.order_ref in refs]
    assert sorted(fills) == sorted(e.exec_id for e in truth)
    for execution in truth:
        fill = fills[execution.exec_id]
        assert orders[fill.order_id] == execution.order_ref
        assert fill.filled_qty == execution.shares
        assert fill.price == pytest.approx(execution.price)
        assert fill.commission == pytest.approx(execution.commission)


def test_a_run_of_several_orders_fills_and_every_execution_is_stored_once(live):
    run, events = live.run_to_end(
        live.order("a", "AAPL", "BUY", 100), live.order("b", "MSFT", "SELL", 50), live.order("c", "SPY", "BUY", 7)
    )
    assert run.status == pb.RUN_STATUS_SUCCESS
    assert [o.status for o in run.orders] == [pb.ORDER_STATUS_FILLED] * 3
    assert [o.filled_quantity for o in run.orders] == [100, 50, 7]
    for order in run.orders:
        assert len(order.fills) == 1 and order.fills[0].HasField("commission")
        assert order.avg_fill_price == pytest.approx(order.fills[0].price)
        assert order.ib_perm_id > 0
    assert_db_matches_sim(live, run.run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].run_status.status == pb.RUN_STATUS_SUCCESS and events[-1].run_status.final
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.count("fill") == 3 and kinds.count("commission") == 3


def test_partial_fills_are_each_stored_and_summed(start_gateway):
    live = start_gateway({"default": {"fills": 4, "fill_interval": 0.05}})
    run, events = live.run_to_end(live.order("p", "AAPL", "BUY", 100))
    assert run.status == pb.RUN_STATUS_SUCCESS
    (order,) = run.orders
    assert [f.quantity for f in order.fills] == [25, 25, 25, 25]
    assert order.filled_quantity == 100
    statuses = [e.order_status.status for e in events if e.HasField("order_status")]
    assert pb.ORDER_STATUS_PARTIALLY_FILLED in statuses and statuses[-1] == pb.ORDER_STATUS_FILLED
    assert_db_matches_sim(live, run.run_id)


def test_a_rejection_fails_the_run_and_keeps_ibs_reason(start_gateway):
    live = start_gateway({"symbols": {"TSLA": {"outcome": "reject", "reject_reason": "No trading permissions"}}})
    run, _ = live.run_to_end(live.order("r", "TSLA", "BUY", 5))
    assert run.status == pb.RUN_STATUS_FAILED
    (order,) = run.orders
    assert order.status == pb.ORDER_STATUS_REJECTED
    assert "No trading permissions" in order.status_reason
    assert f"{live.prefix}-r" in run.status_reason and "No trading permissions" in run.status_reason
    (row,) = live.orders(run.run_id)
    assert "201" in row.status_reason and row.status == OrderStatus.REJECTED


def test_mixed_outcomes_make_a_partial_run(start_gateway):
    live = start_gateway({"symbols": {"TSLA": {"outcome": "reject"}}})
    run, _ = live.run_to_end(live.order("ok", "AAPL"), live.order("no", "TSLA"))
    assert run.status == pb.RUN_STATUS_PARTIAL
    assert f"{live.prefix}-no" in run.status_reason and f"{live.prefix}-ok" not in run.status_reason
    assert live.run_row(run.run_id).status == RunStatus.PARTIAL


def test_a_resting_order_is_cancelled_at_the_deadline(start_gateway):
    live = start_gateway({"symbols": {"IBM": {"outcome": "rest"}}})
    run, events = live.run_to_end(live.order("fills", "AAPL"), live.order("rests", "IBM"), deadline=1.0)
    assert run.status == pb.RUN_STATUS_PARTIAL
    resting = next(o for o in run.orders if o.spec.symbol == "IBM")
    assert resting.status == pb.ORDER_STATUS_CANCELLED and resting.filled_quantity == 0
    (snapshot,) = [o for o in live.sim.orders() if o.order_ref == f"{live.prefix}-rests"]
    assert snapshot.cancel_requested and snapshot.status == "Cancelled"
    assert events[-1].run_status.final


def test_a_resting_order_alone_fails_the_run_at_the_deadline(start_gateway):
    live = start_gateway({"default": {"outcome": "rest"}})
    run, _ = live.run_to_end(live.order("r"), deadline=0.5)
    assert run.status == pb.RUN_STATUS_FAILED
    assert "CANCELLED" in run.status_reason


def test_a_correction_replaces_the_execution_it_corrects(start_gateway):
    live = start_gateway({"default": {"fills": 2, "correction": 0.25}})
    run, events = live.run_to_end(live.order("c", "AAPL", "BUY", 10))
    (order,) = run.orders
    assert len(order.fills) == 3
    corrected = [f for f in order.fills if f.superseded_by]
    assert len(corrected) == 1
    replacement = next(f for f in order.fills if f.exec_id == corrected[0].superseded_by)
    assert replacement.price == pytest.approx(corrected[0].price + 0.25)
    assert order.filled_quantity == 10  # not 15: the correction is not a second fill
    current = [f for f in order.fills if not f.superseded_by]
    assert order.avg_fill_price == pytest.approx(sum(f.quantity * f.price for f in current) / 10)
    fill_events = [e.fill for e in events if e.HasField("fill")]
    assert fill_events[-1].corrects_exec_id == corrected[0].exec_id
    assert run.status == pb.RUN_STATUS_SUCCESS
    assert_db_matches_sim(live, run.run_id)


def test_duplicate_callbacks_are_stored_and_emitted_once(start_gateway):
    live = start_gateway({"default": {"fills": 2, "duplicate_exec_details": True, "duplicate_order_status": True}})
    run, events = live.run_to_end(live.order("d", "AAPL", "BUY", 10))
    (order,) = run.orders
    assert len(order.fills) == 2 and order.filled_quantity == 10
    fill_ids = [e.fill.fill.exec_id for e in events if e.HasField("fill")]
    assert len(fill_ids) == len(set(fill_ids)) == 2
    transitions = [(e.order_status.previous_status, e.order_status.status) for e in events if e.HasField("order_status")]
    assert len(transitions) == len(set(transitions))
    assert_db_matches_sim(live, run.run_id)
    # Recognised as repeats, not refused by the database's unique exec_id (which would have
    # failed their batch and sent its reports through one transaction each).
    assert live.gateway.gateway.engine.poison_reports == 0


def test_a_reconnect_replays_the_days_executions_and_changes_nothing(start_gateway, eventually, caplog):
    """After a reconnect the gateway reconciles: IB replays every execution of the day with its
    commission, and every order. All of it is already stored: nothing is written twice, no event
    is emitted again, and no batch fails on it."""
    live = start_gateway({"default": {"fills": 40, "duplicate_exec_details": True}})
    run, events = live.run_to_end(live.order("a", quantity=40), live.order("b", "MSFT", quantity=40))
    assert run.status == pb.RUN_STATUS_SUCCESS
    stored = [(e.sequence, e.kind) for e in live.event_rows(run.run_id)]
    reconciler = live.gateway.gateway.engine.reconciler
    reconcile, reconciled = reconciler.reconcile, []

    async def noting_when_reconciled(session: Any, symbols: frozenset[str] | None = None) -> bool:
        done = await reconcile(session, symbols)  # True once IB's answers are all stored
        reconciled.append(symbols is None and done)
        return done

    reconciler.reconcile = noting_when_reconciled  # type: ignore[method-assign]
    assert live.sim.drop_connections() == 1
    eventually(lambda: any(reconciled), timeout=30, what="a full reconciliation after the reconnect")
    assert sum(r.name == "REQ_EXECUTIONS" for r in live.sim.received_requests()) >= 2

    assert [(e.sequence, e.kind) for e in live.event_rows(run.run_id)] == stored
    assert len(live.fills(run.run_id)) == 80
    assert_db_matches_sim(live, run.run_id)
    assert live.gateway.gateway.engine.poison_reports == 0
    assert not [r for r in caplog.records if "failed to apply a batch" in r.getMessage()]


def test_a_fill_after_the_deadline_is_recorded_and_changes_the_runs_status(start_gateway, eventually):
    live = start_gateway({"default": {"late_fill": True, "fill_delay": 4.0}})
    response = live.submit(live.order("late"), deadline=0.5)
    first = live.watch(response.run.run_id)
    assert first[-1].run_status.status == pb.RUN_STATUS_FAILED
    live.sim.wait_for_order(f"{live.prefix}-late", timeout=10, status="Filled")
    eventually(lambda: live.run_row(response.run.run_id).status == RunStatus.SUCCESS)
    later = live.watch(response.run.run_id, after=first[-1].sequence, timeout=15)
    assert any(e.HasField("fill") for e in later)
    (status_change,) = [e.run_status for e in later if e.HasField("run_status")]
    assert status_change.status == pb.RUN_STATUS_SUCCESS and status_change.final
    assert status_change.previous_status == pb.RUN_STATUS_FAILED
    assert live.run_row(response.run.run_id).status == RunStatus.SUCCESS
    assert_db_matches_sim(live, response.run.run_id)


def test_commission_before_its_execution_is_merged(start_gateway):
    live = start_gateway({"default": {"commission": "before"}})
    run, _ = live.run_to_end(live.order("early"))
    assert run.orders[0].fills[0].HasField("commission")
    assert_db_matches_sim(live, run.run_id)


def test_a_late_commission_is_merged_into_its_fill(start_gateway):
    live = start_gateway({"default": {"commission": "delayed", "commission_delay": 0.4}})
    run, events = live.run_to_end(live.order("slow"))
    assert run.orders[0].fills[0].HasField("commission")
    assert any(e.HasField("commission") for e in events)
    assert_db_matches_sim(live, run.run_id)


def test_orders_still_waiting_for_pacing_at_the_deadline_are_withdrawn_not_sent_late(start_gateway, eventually):
    live = start_gateway(pacing_per_second=1)
    # The connect-time reconciliation's requests take the first slots; the run comes after them.
    eventually(lambda: "REQ_EXECUTIONS" in {r.name for r in live.sim.received_requests()}, 15,
               "the connect-time reconciliation")
    run, _ = live.run_to_end(*[live.order(f"o{i}", "AAPL") for i in range(4)], deadline=1.6)
    withdrawn = {o.spec.client_order_id for o in run.orders
                 if o.status == pb.ORDER_STATUS_CANCELLED and "withdrawn" in o.status_reason}
    assert withdrawn, "the test needs orders that were still waiting at the deadline"
    assert run.status == pb.RUN_STATUS_PARTIAL  # and some that were sent in time

    # The pacer is first come, first served: had the withdrawn orders stayed in its queue, they
    # would reach IB before an order submitted after them.
    later = live.order("later")
    live.submit(later)
    eventually(lambda: later.client_order_id in {o.order_ref for o in live.sim.received_orders()}, 15,
               "the later order at IB")
    received = {o.order_ref for o in live.sim.received_orders()}
    assert withdrawn & received == set(), "an order withdrawn at the deadline reached IB after all"
    assert {o.spec.client_order_id for o in run.orders} - received == withdrawn
    assert_db_matches_sim(live, run.run_id)


def test_live_runs_go_to_the_live_endpoint_only_when_enabled(start_gateway, tmp_path):
    from execgw.server.api.callers import Permission, add_caller
    from execgw.sim.thread import SimulatorThread

    live_tws = SimulatorThread(accounts=["U7654321"])
    live_tws.start()
    try:
        # Live always needs a configured caller allowed to trade it (the local caller never is).
        callers = tmp_path / "callers.toml"
        token = add_caller(callers, "desk", [Permission.READ, Permission.PAPER, Permission.LIVE])
        live = start_gateway(ib_live=f"127.0.0.1:{live_tws.port}", live_enabled=True, callers_file=callers)
        as_desk = (("authorization", f"Bearer {token}"),)
        request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_LIVE, orders=[live.order("real-money", "AAPL", "BUY", 1)])
        if "confirm_live" in pb.SubmitRunRequest.DESCRIPTOR.fields_by_name:
            request.confirm_live = "LIVE"
        run_id = live.stub.SubmitRun(request, timeout=10, metadata=as_desk).run.run_id
        list(live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30, metadata=as_desk))
        run = live.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10, metadata=as_desk).run
        assert run.mode == pb.TRADING_MODE_LIVE and run.status == pb.RUN_STATUS_SUCCESS
        assert [o.order_ref for o in live_tws.orders()] == [f"{live.prefix}-real-money"]
        assert live.sim.orders() == []  # nothing went to the paper account
        assert run.orders[0].fills[0].account == "U7654321"
    finally:
        live_tws.stop()


def test_a_cancel_refused_while_ib_is_away_leaves_the_run_to_its_deadline(start_gateway, eventually):
    """CancelRun answered UNAVAILABLE changed nothing: the run is not the caller's cancellation."""
    live = start_gateway({"default": {"outcome": "rest"}})
    run_id = live.submit(live.order("r"), deadline=6).run.run_id
    live.sim.wait_for_order(f"{live.prefix}-r", timeout=10, status="Submitted")
    live.sim.refuse_connections(2.0)
    health = health_pb2_grpc.HealthStub(live.channel)
    eventually(lambda: health.Check(health_pb2.HealthCheckRequest(service="execgw.ib.paper"), timeout=2).status
               == health_pb2.HealthCheckResponse.NOT_SERVING, what="IB paper down")
    with pytest.raises(grpc.RpcError) as refused:
        live.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    events = live.watch(run_id)
    assert events[-1].run_status.final
    assert events[-1].run_status.status == pb.RUN_STATUS_FAILED
    assert "cancelled by the caller" not in events[-1].run_status.reason


def test_an_unexpected_failure_while_sending_leaves_no_order_pending(start_gateway, monkeypatch):
    """The sender meets an error it does not know: that order is UNKNOWN (it may have gone out),
    the rest are withdrawn unsent, and the run still ends."""
    from execgw.server.ib.session import IBSession

    live = start_gateway()
    real_place = IBSession.place_market_order

    async def place_or_break(self: IBSession, order: Any, still_wanted: Any = None) -> None:
        if order.order_ref.endswith("-b"):
            raise RuntimeError("a bug in the sending path")
        await real_place(self, order, still_wanted)

    monkeypatch.setattr(IBSession, "place_market_order", place_or_break)
    run, _ = live.run_to_end(live.order("a"), live.order("b"), live.order("c"), deadline=3)
    orders = {o.client_order_id.rsplit("-", 1)[1]: o for o in live.orders(run.run_id)}
    assert {name: o.status for name, o in orders.items() if name != "b"} == {"a": "FILLED", "c": "CANCELLED"}
    # b stays UNKNOWN, unless the connect-time reconciliation (which may still be under way
    # when the run arrives) settled it: IB has no record of it, so it never reached IB.
    b = orders["b"]
    assert b.status == "UNKNOWN" or (b.status == "CANCELLED" and "never reached IB" in (b.status_reason or "")), \
        (b.status, b.status_reason)
    assert run.status == pb.RUN_STATUS_PARTIAL
    assert not [o for o in live.sim.orders() if o.order_ref == f"{live.prefix}-c"], "withdrawn orders are never sent"
