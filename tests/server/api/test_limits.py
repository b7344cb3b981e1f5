"""Pre-trade limits (server/engine/limits.py): a run that breaks one is refused whole, naming the
limit and the order, with nothing written and nothing sent to IB. End to end on both databases."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from execgw.v1 import execution_pb2 as pb


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """(limit, subject) of each violation in the PreconditionFailure of `error`."""
    status = rpc_status.from_call(error)
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert any(detail.Unpack(failure) for detail in status.details)
    return [(v.type, v.subject) for v in failure.violations]


def _refused(live, *orders: pb.OrderSpec, code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION,
             **extra) -> list[tuple[str, str]]:
    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(*orders, **extra)
    assert refused.value.code() == code, refused.value.details()
    assert live.counts() == before, "a refused run writes nothing"
    sent = [o.client_order_id for o in orders]
    assert not [o for o in live.sim.received_orders() if o.order_ref in sent], "a refused run reached IB"
    return _violations(refused.value)


def test_an_order_above_the_modes_largest_quantity_refuses_the_run(start_gateway):
    live = start_gateway(paper_max_order_quantity=50, live_max_order_quantity=10)
    violations = _refused(live, live.order("a", quantity=50), live.order("b", quantity=50.5))
    assert violations == [("paper_max_order_quantity", "orders[1].quantity")]
    # The live limit does not apply to paper: 50 passes.
    assert live.submit(live.order("c", quantity=50)).run.run_id


def test_a_run_above_the_modes_most_orders_is_refused(start_gateway):
    live = start_gateway(paper_max_orders_per_run=2)
    violations = _refused(live, live.order("a"), live.order("b"), live.order("c"))
    assert violations == [("paper_max_orders_per_run", "orders")]


def test_a_denied_symbol_refuses_the_run_naming_the_order(start_gateway):
    live = start_gateway(symbol_denylist=["gme"])
    violations = _refused(live, live.order("a", "AAPL"), live.order("b", "MSFT"), live.order("c", "GME"))
    assert violations == [("symbol_denylist", "orders[2].symbol")]


def test_a_symbol_outside_the_allowlist_refuses_the_run(start_gateway):
    live = start_gateway(symbol_allowlist=["AAPL", "MSFT"])
    violations = _refused(live, live.order("a", "AAPL"), live.order("b", "TSLA"))
    assert violations == [("symbol_allowlist", "orders[1].symbol")]
    run, _ = live.run_to_end(live.order("c", "MSFT"))
    assert run.status == pb.RUN_STATUS_SUCCESS


def test_every_breach_is_named_at_once(start_gateway):
    live = start_gateway(paper_max_order_quantity=5, symbol_denylist=["GME"])
    violations = _refused(live, live.order("a", "GME", quantity=6), live.order("b", "AAPL", quantity=1))
    assert violations == [("paper_max_order_quantity", "orders[0].quantity"), ("symbol_denylist", "orders[0].symbol")]


def test_a_caller_beyond_its_runs_per_minute_is_refused(start_gateway):
    live = start_gateway(max_runs_per_minute_per_caller=2)
    live.run_to_end(live.order("a"))
    # A retry of an existing run starts nothing and does not count.
    assert live.submit(live.order("a")).existing
    live.run_to_end(live.order("b"))
    violations = _refused(live, live.order("c"), code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert violations == [("max_runs_per_minute_per_caller", "max_runs_per_minute_per_caller")]


def test_runs_beyond_the_most_open_runs_are_refused_until_one_ends(start_gateway, eventually):
    live = start_gateway({"orders": {"*-resting": {"outcome": "rest"}}}, max_open_runs=1)
    resting = live.submit(live.order("resting"), deadline=60)
    eventually(lambda: live.orders(resting.run.run_id)[0].status == "SUBMITTED", what="the resting order working")
    violations = _refused(live, live.order("next"), code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert violations == [("max_open_runs", "max_open_runs")]

    live.stub.CancelRun(pb.CancelRunRequest(run_id=resting.run.run_id), timeout=30)
    run, _ = live.run_to_end(live.order("next"))
    assert run.status == pb.RUN_STATUS_SUCCESS
