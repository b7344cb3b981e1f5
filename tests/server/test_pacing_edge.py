"""IB's message rate at its edge: the simulator allows IB's 50 messages per second and answers
error 100 to any one over, dropping it (an order so dropped never exists at IB). The gateway,
at its default 45 per second, must never cross it, whatever delays its messages on the way to
the socket: here the fills of the run's own orders keep the database writer busy meanwhile."""

from __future__ import annotations

import pytest

from execgw.v1 import execution_pb2 as pb

ORDERS = 200  # about 4.5 s at 45 per second: several of IB's one-second windows


@pytest.mark.parametrize("attempt", range(2))
def test_a_large_run_at_the_default_pace_gets_no_error_100(start_gateway, eventually, attempt):
    live = start_gateway({"pacing_violations_before_disconnect": 1000}, max_orders_per_run=ORDERS)
    eventually(lambda: "REQ_EXECUTIONS" in {r.name for r in live.sim.received_requests()}, 15,
               "the connect-time reconciliation")
    run_id = live.submit(*[live.order(f"o{i}", "AAPL", quantity=1) for i in range(ORDERS)], deadline=30).run.run_id
    live.watch(run_id, timeout=60)
    refused = [o for o in live.sim.received_orders() if o.refused_with == 100]
    assert refused == [], f"{len(refused)} orders answered with error 100 (pacing) never reached IB"
    run = live.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run
    assert run.status == pb.RUN_STATUS_SUCCESS
    assert len(live.sim.orders()) == ORDERS
