"""The gateway against today's TWS / IB Gateway (10.x) toward a v157 client, as the simulator's
default profile reproduces it (sources in sim/README.md): refusals with and without a status,
warnings, outside-hours orders, the Read-Only API setting, execution time forms, 64-bit permIds,
and other clients' orders that carry our orderRef.

End to end: gRPC → gateway → ibapi → TCP → simulator, database checked after, on SQLite and
MariaDB (the `database_url` fixture)."""

from __future__ import annotations

import logging
import time
from datetime import UTC

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from execgw.server.db.models import OrderStatus
from execgw.sim.scenario import Scenario
from execgw.v1 import execution_pb2 as pb


def test_the_simulator_plays_todays_tws_unless_told_otherwise():
    assert Scenario().profile == "current"


def test_a_plain_market_run_fills_on_todays_tws(live):
    run, _ = live.run_to_end(live.order("a", "AAPL", "BUY", 100), live.order("b", "MSFT", "SELL", 20))
    assert run.status == pb.RUN_STATUS_SUCCESS
    assert [o.status for o in run.orders] == [pb.ORDER_STATUS_FILLED] * 2
    refused = [o for o in live.sim.orders() if o.order_ref.startswith(live.prefix) and o.status != "Filled"]
    assert refused == []
    assert sorted(f.exec_id for f in live.fills(run.run_id)) == sorted(e.exec_id for e in live.sim_executions())


# (code, IB's message, what follows the error at IB) — each a refusal IB documents.
REFUSALS = [
    pytest.param(201, "Order rejected - reason:No trading permissions for this exchange", "Inactive", id="201+Inactive"),
    pytest.param(203, "The security AAPL is not available or allowed for this account", None, id="203-no-status"),
    pytest.param(10285, "Your API version does not support fractional size rules. Please upgrade to a minimum "
                        "version 163.", None, id="10285-fractional"),
    pytest.param(10268, "The 'EtradeOnly' order attribute is not supported.", None, id="10268"),
    pytest.param(13579, "A refusal no gateway has seen before", None, id="unknown-code"),
]


@pytest.mark.parametrize(("code", "message", "then"), REFUSALS)
def test_a_refusal_ends_its_order_rejected_at_once(start_gateway, code, message, then, caplog):
    caplog.set_level(logging.WARNING, logger="execgw")
    live = start_gateway({"orders": {"*-refused": {
        "outcome": "error", "error_code": code, "error_message": message, "error_status": then}}})
    refused = live.order("refused")
    started = time.monotonic()
    run, _ = live.run_to_end(refused, live.order("fine"), deadline=120)
    took = time.monotonic() - started

    assert took < 30, f"the run waited {took:.0f}s: the refusal was not taken at once"
    assert run.status == pb.RUN_STATUS_PARTIAL
    rows = {o.client_order_id: o for o in live.orders(run.run_id)}
    assert rows[refused.client_order_id].status == OrderStatus.REJECTED.value
    assert rows[refused.client_order_id].status_reason == f"IB {code}: {message}"
    assert f"IB {code}: {message}" in run.status_reason
    assert rows[live.prefix + "-fine"].status == OrderStatus.FILLED.value
    if code == 13579:
        assert any("13579" in r.getMessage() and "classif" in r.getMessage() for r in caplog.records)


def test_a_fill_after_an_unknown_refusal_corrects_the_order_and_the_run(start_gateway, eventually):
    live = start_gateway({"orders": {"*-revived": {
        "warning_code": 24680, "warning_message": "Something IB has not documented", "fill_delay": 0.5}}})
    order = live.order("revived")
    run_id = live.submit(order).run.run_id
    # The run may end (FAILED: its one order refused) before the fill comes; the fill corrects it.
    eventually(lambda: live.run_row(run_id).status == "SUCCESS", timeout=20, what="the run corrected to SUCCESS")
    events = live.watch(run_id)
    statuses = [e.order_status.status for e in events if e.HasField("order_status")]
    assert pb.ORDER_STATUS_REJECTED in statuses, "an unknown code is taken for a refusal at first"
    assert live.orders(run_id)[0].status == OrderStatus.FILLED.value
    assert live.stub.GetRun(pb.GetRunRequest(run_id=run_id)).run.status == pb.RUN_STATUS_SUCCESS


@pytest.mark.parametrize("code", [399, 2109, 10349, 404])
def test_a_warning_does_not_reject_the_order(start_gateway, code):
    live = start_gateway({"orders": {"*-warned": {"warning_code": code, "warning_message": f"Simulated warning {code}"}}})
    order = live.order("warned")
    run, events = live.run_to_end(order)
    assert run.status == pb.RUN_STATUS_SUCCESS
    statuses = [e.order_status.status for e in events if e.HasField("order_status")]
    assert pb.ORDER_STATUS_REJECTED not in statuses and statuses[-1] == pb.ORDER_STATUS_FILLED


def test_an_order_outside_regular_hours_waits_and_fills_at_the_open(start_gateway, eventually):
    live = start_gateway({"market_open": False})
    response = live.submit(live.order("early"), deadline=120)
    run_id = response.run.run_id
    live.sim.wait_for_order(f"{live.prefix}-early", timeout=10, status="PreSubmitted")
    time.sleep(1.0)  # the 399 warning has arrived by now
    (row,) = live.orders(run_id)
    assert row.status == OrderStatus.SUBMITTED.value, "a 399 warning does not reject"
    assert live.run_row(run_id).status == "RUNNING"

    live.sim.open_market()
    events = live.watch(run_id)
    assert events[-1].run_status.status == pb.RUN_STATUS_SUCCESS
    assert live.orders(run_id)[0].status == OrderStatus.FILLED.value


def test_read_only_api_is_reported_and_nothing_spins(start_gateway, eventually, caplog):
    caplog.set_level(logging.WARNING, logger="execgw")
    live = start_gateway({"read_only": True})
    health = health_pb2_grpc.HealthStub(live.channel)

    # TWS may let the first order through to its 321 before the gateway knows: it ends at once.
    try:
        first = live.submit(live.order("ro-1"), deadline=120)
    except grpc.RpcError as refused:
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    else:
        events = live.watch(first.run.run_id)
        assert events[-1].run_status.status == pb.RUN_STATUS_FAILED
        assert "IB 321" in events[-1].run_status.reason

    def not_serving() -> bool:
        reply = health.Check(health_pb2.HealthCheckRequest(service="execgw.ib.paper"), timeout=2)
        return reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

    eventually(not_serving, what="execgw.ib.paper NOT_SERVING")
    _, call = health.Check.with_call(health_pb2.HealthCheckRequest(service="execgw.ib.paper"), timeout=2)
    reason = dict(call.trailing_metadata()).get("execgw-reason", "")
    assert "Read-Only API" in reason

    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("ro-2"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Read-Only API" in refused.value.details()
    assert live.counts() == before, "a refused run writes nothing"
    assert not [o for o in live.sim.orders() if o.order_ref == f"{live.prefix}-ro-2"]

    # Reconciliation keeps being refused; it backs off instead of asking in a loop.
    attempts_before = _failed_reconciliations(caplog)
    time.sleep(6.0)
    attempts = _failed_reconciliations(caplog) - attempts_before
    assert attempts <= 6, f"{attempts} reconciliations in 6 s: the gateway spins against a read-only TWS"


@pytest.mark.parametrize("form", ["local", "utc", "zone"])
def test_execution_times_in_every_form_are_stored_in_utc(start_gateway, form):
    live = start_gateway({"execution_time_format": form, "time_zone": "US/Eastern"},
                         ib_time_zone="America/New_York")
    run, _ = live.run_to_end(live.order("t"))
    (fill,) = live.fills(run.run_id)
    (truth,) = live.sim_executions()
    assert fill.trade_time is not None
    expected = truth.time.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    assert fill.trade_time.replace(microsecond=0) == expected


def test_perm_ids_above_2_31_are_stored(start_gateway):
    live = start_gateway({"first_perm_id": 2**31 + 1_000})
    run, _ = live.run_to_end(live.order("big"))
    (row,) = live.orders(run.run_id)
    (truth,) = live.sim_executions()
    assert truth.perm_id > 2**31
    assert row.ib_perm_id == truth.perm_id
    assert [f.ib_perm_id for f in live.fills(run.run_id)] == [truth.perm_id]
    assert run.orders[0].ib_perm_id == truth.perm_id


def test_another_clients_order_with_our_order_ref_changes_nothing(start_gateway, eventually):
    # The gateway is the master client id: IB shows it every client's orders and executions.
    live = start_gateway({"master_client_id": 1, "orders": {"*-shared-ref": {"outcome": "rest"}}}, ib_client_id=1)
    ours = live.order("shared-ref")
    run_id = live.submit(ours, deadline=120).run.run_id
    mine = live.sim.wait_for_order(ours.client_order_id, timeout=10, status="Submitted")

    # Another API client places an order with the same orderRef, even the same order id, and it fills.
    foreign = live.sim.add_foreign_order(ours.client_order_id, quantity=10, client_id=7,
                                         order_id=mine.order_id, fill=True)
    assert foreign.perm_id != mine.perm_id
    eventually(lambda: any(e.perm_id == foreign.perm_id for e in live.sim.executions()), what="foreign fill")
    time.sleep(1.0)
    assert live.fills(run_id) == []
    assert live.orders(run_id)[0].status == OrderStatus.SUBMITTED.value

    # A full reconciliation (reqCompletedOrders shows the foreign order) changes nothing either.
    live.sim.drop_connections()
    time.sleep(3.0)
    cancelled = live.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30)
    assert cancelled.run.status == pb.RUN_STATUS_CANCELLED
    assert live.fills(run_id) == []
    (row,) = live.orders(run_id)
    assert row.status == OrderStatus.CANCELLED.value and row.ib_perm_id == mine.perm_id


def _failed_reconciliations(caplog: pytest.LogCaptureFixture) -> int:
    return sum("reconciling with IB" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
