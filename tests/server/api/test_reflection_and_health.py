"""People test by hand with grpcurl and `buf curl`: both must work through server reflection,
and the standard health service must tell the gateway's and each IB endpoint's state."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent


def buf_curl(live, method: str, body: dict) -> dict:
    result = subprocess.run(
        [str(BIN / "buf"), "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data", json.dumps(body),
         f"http://{live.gateway.target}/execgw.v1.ExecutionService/{method}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_buf_curl_drives_every_rpc_through_reflection(live):
    submitted = buf_curl(live, "SubmitRun", {
        "mode": "TRADING_MODE_PAPER",
        "orders": [{"clientOrderId": f"{live.prefix}-curl", "symbol": "AAPL", "side": "ORDER_SIDE_BUY", "quantity": 2}],
    })
    run_id = submitted["run"]["runId"]
    assert submitted["run"]["orders"][0]["ibOrderId"]
    live.watch(run_id)
    got = buf_curl(live, "GetRun", {"runId": run_id})
    assert got["run"]["status"] == "RUN_STATUS_SUCCESS"
    assert got["run"]["orders"][0]["fills"][0]["quantity"] == 2
    listed = buf_curl(live, "ListRuns", {"pageSize": 1})
    assert listed["runs"][0]["runId"] == run_id
    cancelled = buf_curl(live, "CancelRun", {"runId": run_id})
    assert cancelled["run"]["status"] == "RUN_STATUS_SUCCESS"
    result = subprocess.run(
        [str(BIN / "buf"), "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data",
         json.dumps({"runId": run_id}), f"http://{live.gateway.target}/execgw.v1.ExecutionService/WatchRun"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"final": true' in result.stdout
    batched = subprocess.run(
        [str(BIN / "buf"), "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data",
         json.dumps({"runId": run_id, "maxEventsPerMessage": 1000}),
         f"http://{live.gateway.target}/execgw.v1.ExecutionService/WatchRun"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert batched.returncode == 0, batched.stderr
    messages = [json.loads(m) for m in batched.stdout.replace("}\n{", "}\x00{").split("\x00")]
    assert len(messages) == 1  # the finished run's events, all in one message
    events = messages[0]["events"]["events"]
    assert [int(e["sequence"]) for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["runStatus"]["final"] is True


def test_grpcurl_lists_the_services_and_reports_bad_input_clearly(live):
    listed = subprocess.run(
        [str(BIN / "grpcurl"), "-plaintext", live.gateway.target, "list"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert {"execgw.v1.ExecutionService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    bad = subprocess.run(
        [str(BIN / "grpcurl"), "-plaintext", "-d",
         json.dumps({"mode": "TRADING_MODE_PAPER", "orders": [{"symbol": "AAPL", "quantity": 1, "side": "ORDER_SIDE_BUY",
                                                              "clientOrderId": "x", "orderType": "LMT"}]}),
         live.gateway.target, "execgw.v1.ExecutionService/SubmitRun"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert bad.returncode != 0
    assert "InvalidArgument" in bad.stderr and "orders[0].order_type" in bad.stderr


def health(live, service: str) -> int:
    with grpc.insecure_channel(live.gateway.target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        ).status


def test_health_reports_the_gateway_and_each_ib_endpoint(live):
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health(live, "") == serving
    assert health(live, "execgw.v1.ExecutionService") == serving
    assert health(live, "execgw.ib.paper") == serving
    live.sim.refuse_connections(30)
    deadline = time.monotonic() + 10
    while health(live, "execgw.ib.paper") == serving:
        assert time.monotonic() < deadline, "health did not notice IB going away"
    assert health(live, "execgw.ib.paper") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health(live, "") == serving
