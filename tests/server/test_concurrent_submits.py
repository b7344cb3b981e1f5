"""Concurrent SubmitRuns: IB wants each client id's order ids to arrive in increasing order (a
lower one than already seen is refused with 103 "Duplicate order id"). Many runs submitted at
once must still reach IB in id order, and every one of them must fill.

End to end: gRPC → gateway → ibapi → TCP → simulator, on SQLite and MariaDB."""

from __future__ import annotations

from execgw.v1 import execution_pb2 as pb

RUNS = 200


def test_parallel_submits_reach_ib_in_increasing_order_id_and_all_fill(start_gateway, eventually):
    live = start_gateway(max_orders_per_run=1)
    futures = [
        live.stub.SubmitRun.future(pb.SubmitRunRequest(
            mode=pb.TRADING_MODE_PAPER, orders=[live.order(f"par-{n}", quantity=1)],
        ), timeout=60)
        for n in range(RUNS)
    ]
    run_ids = [future.result().run.run_id for future in futures]
    assert len(set(run_ids)) == RUNS

    def all_finished() -> bool:
        runs = [live.stub.GetRun(pb.GetRunRequest(run_id=run_id)).run for run_id in run_ids]
        return all(run.status != pb.RUN_STATUS_RUNNING for run in runs)

    eventually(all_finished, timeout=90, what=f"{RUNS} parallel runs finished")
    arrived = [order.order_id for order in live.sim.orders() if order.order_ref.startswith(live.prefix)]
    assert len(arrived) == RUNS, f"IB created {len(arrived)} of {RUNS} orders; refused: {live.sim.refusals()}"
    out_of_order = [(a, b) for a, b in zip(arrived, arrived[1:], strict=False) if b <= a]
    assert out_of_order == [], f"order ids reached IB out of order: {out_of_order[:10]}"
    assert live.sim.refusals() == []
    statuses = {live.stub.GetRun(pb.GetRunRequest(run_id=run_id)).run.status for run_id in run_ids}
    assert statuses == {pb.RUN_STATUS_SUCCESS}
    for run_id in run_ids[:5] + run_ids[-5:]:
        assert [o.status for o in live.orders(run_id)] == ["FILLED"]

