"""GetRun, ListRuns and CancelRun through the real server."""

from __future__ import annotations

import base64

import grpc
import pytest
from grpc_status import rpc_status

from execgw.server.db.models import OrderStatus, RunStatus
from execgw.v1 import execution_pb2 as pb


def test_cancel_run_cancels_open_orders_at_ib_and_reports_its_answers(start_gateway):
    live = start_gateway({"default": {"outcome": "rest"}})
    run_id = live.submit(live.order("a"), live.order("b")).run.run_id
    for name in ("a", "b"):
        live.sim.wait_for_order(f"{live.prefix}-{name}", timeout=5)
    response = live.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30)
    assert response.run.status == pb.RUN_STATUS_CANCELLED
    assert [o.status for o in response.outcomes] == [pb.ORDER_STATUS_CANCELLED] * 2
    assert [o.ib_code for o in response.outcomes] == [202, 202]
    assert all(o.status == "Cancelled" for o in live.sim.orders())
    assert [o.status for o in live.orders(run_id)] == [OrderStatus.CANCELLED] * 2
    assert live.run_row(run_id).status == RunStatus.CANCELLED
    events = live.watch(run_id)
    assert events[-1].run_status.status == pb.RUN_STATUS_CANCELLED and events[-1].run_status.final


def test_cancelling_a_finished_run_sends_nothing(live):
    run, _ = live.run_to_end(live.order("done"))
    response = live.stub.CancelRun(pb.CancelRunRequest(run_id=run.run_id), timeout=10)
    assert response.run.status == pb.RUN_STATUS_SUCCESS
    assert response.outcomes[0].status == pb.ORDER_STATUS_FILLED
    assert "nothing sent" in response.outcomes[0].message
    assert not any(o.cancel_requested for o in live.sim.orders())


def test_cancel_of_an_unknown_run_is_not_found(live):
    with pytest.raises(grpc.RpcError) as caught:
        live.stub.CancelRun(pb.CancelRunRequest(run_id="3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_get_run_nests_each_orders_fills(live):
    run, _ = live.run_to_end(live.order("a", quantity=3), live.order("b", "MSFT", "SELL", 4))
    fetched = live.stub.GetRun(pb.GetRunRequest(run_id=run.run_id)).run
    assert [o.spec.client_order_id for o in fetched.orders] == [f"{live.prefix}-a", f"{live.prefix}-b"]
    assert [[f.quantity for f in o.fills] for o in fetched.orders] == [[3], [4]]
    assert fetched.mode == pb.TRADING_MODE_PAPER and fetched.finished_at.seconds > 0


def test_list_runs_pages_newest_first(live):
    run_ids = [live.submit(live.order(f"r{i}")).run.run_id for i in range(5)]
    seen = []
    token = ""
    while True:
        page = live.stub.ListRuns(pb.ListRunsRequest(page_size=2, page_token=token))
        assert len(page.runs) <= 2
        seen.extend(r.run_id for r in page.runs)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(run_ids))
    # Only tokens the gateway issued: not garbage, nor a token forged with a time zone, a run id
    # that is no run id, or an equivalent spelling of a real position.
    real = base64.urlsafe_b64decode(page_token_of(live)).decode()
    created, run_id = real.split("|", 1)
    forged = [f"{created}+14:00|{run_id}", f"{created}|{'x' * 5000}", f"{created}|", f"{created} |{run_id}"]
    for token in ["garbage!", *(base64.urlsafe_b64encode(f.encode()).decode() for f in forged)]:
        with pytest.raises(grpc.RpcError) as caught:
            live.stub.ListRuns(pb.ListRunsRequest(page_token=token))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, token
        assert "page_token" in str(rpc_status.from_call(caught.value)), token


def page_token_of(live) -> str:
    return live.stub.ListRuns(pb.ListRunsRequest(page_size=1)).next_page_token


def test_submit_run_answers_the_run_as_stored(start_gateway):
    """SubmitRun answers from what it committed, without reading it back: what it says must be
    what GetRun reads from the database, timestamps to the microsecond included."""
    live = start_gateway({"default": {"outcome": "rest"}})
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, submitted_by="desk note",
                                  orders=[live.order("a", quantity=3), live.order("b", "MSFT", "SELL", 4)])
    answered = live.stub.SubmitRun(request, timeout=10).run
    stored = live.stub.GetRun(pb.GetRunRequest(run_id=answered.run_id), timeout=10).run
    for run in (answered, stored):
        # What IB's answers change after the commit; the rest was fixed when the run was recorded.
        run.ClearField("updated_at")
        run.ClearField("last_sequence")
        for order in run.orders:
            for field in ("status", "ib_perm_id", "status_reason", "last_status_time"):
                order.ClearField(field)
    assert answered.created_at.nanos % 1000 == 0 and answered.created_at.seconds > 0
    assert answered == stored
