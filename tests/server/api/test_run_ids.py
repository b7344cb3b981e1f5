"""A run is named by exactly the id SubmitRun returned (a lower-case UUID). Any other spelling is
INVALID_ARGUMENT naming run_id, on GetRun, CancelRun and WatchRun alike, and touches nothing: on
MySQL an upper-cased id used to find the run in the database but not in the engine, so CancelRun
answered OK while the orders went on, and WatchRun replayed and never ended."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from execgw.server.db.models import OrderStatus, RunStatus
from execgw.v1 import execution_pb2 as pb

SPELLINGS = {
    "upper-case": str.upper,
    "trailing-space": lambda run_id: run_id + " ",
    "leading-space": lambda run_id: " " + run_id,
    "trailing-newline": lambda run_id: run_id + "\n",
    "no-hyphens": lambda run_id: run_id.replace("-", ""),
    "braces": lambda run_id: "{" + run_id + "}",
    "urn": lambda run_id: "urn:uuid:" + run_id,
}


def run_id_violation(error: grpc.RpcError) -> str:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    (violation,) = bad_request.field_violations
    assert violation.field == "run_id"
    return violation.description


def refused(call) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return run_id_violation(caught.value)


def get(live, run_id: str) -> pb.GetRunResponse:
    return live.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10)


def cancel(live, run_id: str) -> pb.CancelRunResponse:
    return live.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30)


def watch(live, run_id: str) -> list[pb.WatchRunResponse]:
    # Bounded: the old answer to an upper-cased id was a replay that never ended.
    return list(live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=10))


@pytest.mark.parametrize("spelling", list(SPELLINGS), ids=list(SPELLINGS))
def test_another_spelling_of_a_run_id_is_refused_and_the_run_goes_on(start_gateway, eventually, spelling):
    live = start_gateway({"default": {"outcome": "rest"}})
    run_id = live.submit(live.order("a"), live.order("b")).run.run_id
    eventually(lambda: [o.status for o in live.orders(run_id)] == [OrderStatus.SUBMITTED] * 2,
               what="both orders working at IB")
    counts = live.counts()
    other = SPELLINGS[spelling](run_id)

    assert "lower case with hyphens" in refused(lambda: cancel(live, other))
    refused(lambda: get(live, other))
    refused(lambda: watch(live, other))

    assert live.counts() == counts, "a refused run id must write nothing"
    assert not any(o.cancel_requested for o in live.sim.orders()), "nothing may be sent to IB"
    assert [o.status for o in live.orders(run_id)] == [OrderStatus.SUBMITTED] * 2
    assert live.run_row(run_id).status == RunStatus.RUNNING
    # The run is still the caller's to cancel, by its own id.
    response = cancel(live, run_id)
    assert response.run.status == pb.RUN_STATUS_CANCELLED
    assert all(o.cancel_requested for o in live.sim.orders())


def test_a_finished_run_is_found_only_by_its_own_id(live):
    run, _ = live.run_to_end(live.order("done"))
    assert get(live, run.run_id).run.status == pb.RUN_STATUS_SUCCESS
    for other in (run.run_id.upper(), run.run_id + " "):
        refused(lambda other=other: get(live, other))
        refused(lambda other=other: watch(live, other))
        refused(lambda other=other: cancel(live, other))


def test_a_well_formed_run_id_of_no_run_is_not_found(live):
    unknown = "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b"
    for call in (get, cancel, watch):
        with pytest.raises(grpc.RpcError) as caught:
            call(live, unknown)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
