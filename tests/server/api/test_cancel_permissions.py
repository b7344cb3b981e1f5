"""CancelRun decides what the caller may do before it tells anything about the run.

CancelRun looked the run up first and asked for the run's mode permission after: a caller with
`paper` alone (no `read`) was told PERMISSION_DENIED "lacks 'live'" for a live run and NOT_FOUND
for a missing one, so it learnt that the run exists and is live; and a caller that may cancel
nothing had its run ids looked up. End to end, on SQLite and MariaDB."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from execgw.server.api.callers import Permission, add_caller
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb

pytestmark = [
    pytest.mark.timeout(90),
]

UNKNOWN_RUN = "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def refused(gw, run_id: str, token: str) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        gw.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30, metadata=bearer(token))
    return caught.value


def test_a_caller_that_may_neither_read_nor_cancel_a_run_is_told_it_does_not_exist(
    start_gateway, tmp_path: Path,
) -> None:
    path = tmp_path / "callers.toml"
    desk = add_caller(path, "desk", [Permission.READ, Permission.PAPER, Permission.LIVE])
    blind = add_caller(path, "blind", [Permission.PAPER])
    live_tws = SimulatorThread(accounts=["U7654321"], scenario=None)
    live_tws.start()
    try:
        gw = start_gateway({"default": {"outcome": "rest"}}, ib_live=f"127.0.0.1:{live_tws.port}", live_enabled=True,
                           callers_file=path)
        request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_LIVE, confirm_live="LIVE", orders=[gw.order("live")])
        live_run = gw.stub.SubmitRun(request, timeout=10, metadata=bearer(desk)).run.run_id

        missing = refused(gw, UNKNOWN_RUN, blind)
        error = refused(gw, live_run, blind)
        assert (error.code(), error.details()) == (missing.code(), missing.details().replace(UNKNOWN_RUN, live_run))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert gw.run_row(live_run).cancelled_by is None
    finally:
        live_tws.stop()


def test_a_caller_that_may_cancel_nothing_is_refused_before_the_run_is_looked_up(
    start_gateway, tmp_path: Path,
) -> None:
    path = tmp_path / "callers.toml"
    reader = add_caller(path, "reader", [Permission.READ])
    gw = start_gateway(callers_file=path)
    error = refused(gw, UNKNOWN_RUN, reader)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'reader'" in error.details() and "'paper' permission" in error.details()
