"""Errors fit what a default gRPC client accepts: however many violations and however long the
caller's values, the answer is INVALID_ARGUMENT with a BadRequest the client can read, never
RESOURCE_EXHAUSTED ("received metadata size exceeds soft limit", 8 KiB of trailers by default)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

DEFAULT_SOFT_LIMIT = 8 * 1024  # grpc core's default for received metadata
LONG = 100_000


def call_with_a_default_aio_client(target: str, method: str, request: object) -> grpc.aio.AioRpcError:
    """Calls `method` on a grpc.aio channel with no options at all; returns the error it raises."""

    async def call() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.ExecutionServiceStub(channel)
            if method == "WatchRun":
                async for _ in stub.WatchRun(request, timeout=10):
                    pass
            else:
                await getattr(stub, method)(request, timeout=10)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        asyncio.run(call())
    return caught.value


def bad_request_of(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details()[:300])
    trailers = list(error.trailing_metadata() or ())
    size = sum(len(key) + len(value) + 32 for key, value in trailers)  # as HPACK counts them
    assert size < DEFAULT_SOFT_LIMIT * 3 // 4, f"{size} bytes of trailers"
    (status_bytes,) = [value for key, value in trailers if key == "grpc-status-details-bin"]
    status = status_pb2.Status.FromString(status_bytes)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return [(v.field, v.description) for v in bad_request.field_violations]


def submit_request(live, *orders: pb.OrderSpec, **extra: object) -> pb.SubmitRunRequest:
    return pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=list(orders), **extra)


def test_a_hundred_invalid_orders_are_listed_in_part_and_counted(live):
    before = live.counts()
    request = submit_request(live, *[live.order(str(i), quantity=0) for i in range(100)])
    violations = bad_request_of(call_with_a_default_aio_client(live.gateway.target, "SubmitRun", request))
    assert violations[0][0] == "orders[0].quantity"
    assert "from 0.0001 to 100000" in violations[0][1]
    *listed, (more_field, more) = violations
    assert [field for field, _ in listed] == [f"orders[{i}].quantity" for i in range(len(listed))]
    assert 1 <= len(listed) <= 20
    assert more_field == "request" and more.startswith(f"{100 - len(listed)} more violation(s) not listed")
    assert live.counts() == before
    assert live.sim.orders() == []


# These two send megabytes on purpose: past gRPC's own bound (max_request_bytes) they would never
# reach the code whose error details they test.
ROOMY = 8 * 1024 * 1024


def test_every_field_of_every_order_wrong_and_long_is_still_readable(start_gateway):
    live = start_gateway(max_request_bytes=ROOMY)
    value = "x" * 5_000
    orders = [
        pb.OrderSpec(client_order_id=value, symbol=value, sec_type=value, exchange=value, primary_exchange=value,
                     currency=value, order_type=value, quantity=-1)
        for _ in range(100)
    ]
    request = submit_request(live, *orders, account=value, submitted_by=value)
    violations = bad_request_of(call_with_a_default_aio_client(live.gateway.target, "SubmitRun", request))
    assert violations[0][0] == "account"
    assert violations[-1][0] == "request" and "more violation(s) not listed" in violations[-1][1]
    assert all(len(description) <= 400 for _, description in violations)


def test_a_megabyte_value_is_not_echoed_back(start_gateway):
    live = start_gateway(max_request_bytes=ROOMY)
    request = submit_request(live, live.order("big", order_type="L" * 1_000_000))
    error = call_with_a_default_aio_client(live.gateway.target, "SubmitRun", request)
    ((field, description),) = bad_request_of(error)
    assert field == "orders[0].order_type"
    assert "(1000000 characters)" in description and len(description) < 200
    assert len(error.details()) < 600


@pytest.mark.parametrize("method", ["GetRun", "CancelRun", "WatchRun"])
def test_a_100_kb_run_id_is_invalid_argument(live, method):
    request = getattr(pb, f"{method}Request")(run_id="r" * LONG)
    violations = bad_request_of(call_with_a_default_aio_client(live.gateway.target, method, request))
    assert [field for field, _ in violations] == ["run_id"]


@pytest.mark.parametrize(
    "field", ["client_order_id", "symbol", "sec_type", "exchange", "primary_exchange", "currency", "order_type"]
)
def test_a_100_kb_order_field_is_invalid_argument_naming_it(live, field):
    spec = live.order("long")
    setattr(spec, field, "Z" * LONG)
    before = live.counts()
    violations = bad_request_of(call_with_a_default_aio_client(live.gateway.target, "SubmitRun", submit_request(live, spec)))
    assert [name for name, _ in violations] == [f"orders[0].{field}"]
    assert live.counts() == before


def test_a_duplicated_100_kb_client_order_id_is_invalid_argument(live):
    twice = [pb.OrderSpec(client_order_id="d" * LONG, symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=1)] * 2
    violations = bad_request_of(call_with_a_default_aio_client(live.gateway.target, "SubmitRun", submit_request(live, *twice)))
    assert [name for name, _ in violations] == [
        "orders[0].client_order_id", "orders[1].client_order_id", "orders[1].client_order_id"]


@pytest.mark.parametrize("field", ["account", "submitted_by"])
def test_a_100_kb_run_field_is_invalid_argument_naming_it(live, field):
    request = submit_request(live, live.order("run-field"), **{field: "A" * LONG})
    violations = bad_request_of(call_with_a_default_aio_client(live.gateway.target, "SubmitRun", request))
    assert [name for name, _ in violations] == [field]
