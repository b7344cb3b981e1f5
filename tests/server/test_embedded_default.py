"""The embedded default across restarts: the SQLite file outlives the built-in simulator, which
comes back on a new port. Fills of the new session must never be taken for the old one's."""

from __future__ import annotations

import grpc

from execgw.server.embedded import GatewayThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc


def run_once(database_url: str, client_order_id: str) -> pb.Run:
    with GatewayThread(database_url=database_url, commission_grace_seconds=0.5) as gateway:
        with grpc.insecure_channel(gateway.target) as channel:
            stub = pb_grpc.ExecutionServiceStub(channel)
            run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
                pb.OrderSpec(client_order_id=client_order_id, symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=10),
            ]), timeout=10).run.run_id
            for _ in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30):
                pass
            return stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run


def test_a_restarted_gateway_with_its_built_in_simulator_records_every_new_fill(tmp_path):
    url = f"sqlite:///{tmp_path}/execgw.sqlite3"
    first = run_once(url, "first-session")
    second = run_once(url, "second-session")
    for run in (first, second):
        assert run.status == pb.RUN_STATUS_SUCCESS
        assert run.orders[0].filled_quantity == 10 and len(run.orders[0].fills) == 1
    assert first.orders[0].fills[0].exec_id != second.orders[0].fills[0].exec_id
    assert first.orders[0].ib_perm_id != second.orders[0].ib_perm_id
