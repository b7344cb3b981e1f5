"""ExecGwClient against grpc_testing's fake channel: this test plays the server side of each RPC."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import grpc
import grpc_testing
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from execgw.client import (
    Conflict,
    ExecGwClient,
    ExecGwError,
    InvalidRequest,
    NotFound,
    Order,
    PreconditionFailed,
    RetryPolicy,
    Unavailable,
)
from execgw.v1 import execution_pb2 as pb

pytestmark = pytest.mark.timeout(20)

SERVICE = pb.DESCRIPTOR.services_by_name["ExecutionService"]
SUBMIT = SERVICE.methods_by_name["SubmitRun"]
WATCH = SERVICE.methods_by_name["WatchRun"]
LIST = SERVICE.methods_by_name["ListRuns"]
GET = SERVICE.methods_by_name["GetRun"]
OK = grpc.StatusCode.OK


class Fake:
    """The fake channel, a client on it, and a thread to make the (blocking) client calls from."""

    def __init__(self, retry: RetryPolicy) -> None:
        self.channel = grpc_testing.channel([SERVICE], grpc_testing.strict_real_time())
        self.sleeps: list[float] = []
        self.client = ExecGwClient(channel=self.channel, timeout=5, retry=retry, sleep=self.sleeps.append)
        self._pool = ThreadPoolExecutor(max_workers=1)

    def start(self, fn: Callable[[], Any]) -> Future[Any]:
        return self._pool.submit(fn)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def fake() -> Iterator[Fake]:
    fake = Fake(RetryPolicy(attempts=3, watch_failures=2, initial_backoff=0.01))
    yield fake
    fake.close()


def rich_status(code: grpc.StatusCode, message: str, detail: Any) -> tuple[tuple[tuple[str, bytes], ...], str]:
    """Trailing metadata and details as grpc_status.rpc_status.to_status would send them."""
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=code.value[0], message=message, details=[packed])
    return (("grpc-status-details-bin", status.SerializeToString()),), message


def event(sequence: int, **kind: Any) -> pb.WatchRunResponse:
    if not kind:
        kind = {"order_status": pb.OrderStatusChanged(client_order_id="a", status=pb.ORDER_STATUS_SUBMITTED)}
    return pb.WatchRunResponse(event=pb.RunEvent(run_id="r1", sequence=sequence, **kind))


# -- submit -----------------------------------------------------------------------------------------


def test_submit_maps_orders_mode_account_deadline(fake: Fake) -> None:
    orders = [
        Order("a-1", "AAPL", "BUY", 10),
        Order("b-2", "SAP", "sell", 2.5, exchange="IBIS", primary_exchange="IBIS", currency="EUR"),
        pb.OrderSpec(client_order_id="c-3", symbol="SPY", side=pb.ORDER_SIDE_BUY, quantity=1),
    ]
    future = fake.start(lambda: fake.client.submit(
        orders, mode="paper", account="DU1", deadline=timedelta(seconds=90, milliseconds=500), submitted_by="svc"))
    metadata, request, rpc = fake.channel.take_unary_unary(SUBMIT)
    run = pb.Run(run_id="run-1", orders=[pb.Order(spec=s, ib_order_id=i + 7) for i, s in enumerate(request.orders)])
    rpc.terminate(pb.SubmitRunResponse(run=run, existing=False), (), OK, "")

    assert request.mode == pb.TRADING_MODE_PAPER
    assert request.account == "DU1"
    assert request.submitted_by == "svc"
    assert request.deadline.ToTimedelta() == timedelta(seconds=90, milliseconds=500)
    assert [(o.client_order_id, o.symbol, o.side, o.quantity) for o in request.orders] == [
        ("a-1", "AAPL", pb.ORDER_SIDE_BUY, 10), ("b-2", "SAP", pb.ORDER_SIDE_SELL, 2.5),
        ("c-3", "SPY", pb.ORDER_SIDE_BUY, 1),
    ]
    assert request.orders[0].sec_type == "STK" and request.orders[0].exchange == "SMART"
    assert request.orders[0].currency == "USD" and request.orders[0].order_type == "MKT"
    assert (request.orders[1].exchange, request.orders[1].primary_exchange, request.orders[1].currency) == (
        "IBIS", "IBIS", "EUR")
    result = future.result(timeout=5)
    assert result.run_id == "run-1" and result.existing is False
    assert [o.ib_order_id for o in result.run.orders] == [7, 8, 9]


def test_submit_without_deadline_leaves_it_unset_and_live_mode_maps(fake: Fake) -> None:
    future = fake.start(lambda: fake.client.submit([Order("a", "AAPL", "BUY", 1)], mode="live"))
    _, request, rpc = fake.channel.take_unary_unary(SUBMIT)
    rpc.terminate(pb.SubmitRunResponse(run=pb.Run(run_id="r"), existing=True), (), OK, "")
    assert not request.HasField("deadline")
    assert request.mode == pb.TRADING_MODE_LIVE
    assert future.result(timeout=5).existing is True


def test_a_live_submit_carries_its_confirmation(fake: Fake) -> None:
    future = fake.start(lambda: fake.client.submit([Order("a", "AAPL", "BUY", 1)], mode="live", confirm_live="LIVE"))
    _, request, rpc = fake.channel.take_unary_unary(SUBMIT)
    rpc.terminate(pb.SubmitRunResponse(run=pb.Run(run_id="r")), (), OK, "")
    assert request.mode == pb.TRADING_MODE_LIVE and request.confirm_live == "LIVE"
    future.result(timeout=5)


def test_submit_rejects_unknown_mode_and_side_before_sending() -> None:
    client = ExecGwClient(channel=grpc_testing.channel([SERVICE], grpc_testing.strict_real_time()))
    with pytest.raises(ValueError, match="mode"):
        client.submit([Order("a", "AAPL", "BUY", 1)], mode="demo")
    with pytest.raises(ValueError, match="side"):
        client.submit([Order("a", "AAPL", "HOLD", 1)])


def test_submit_retries_unavailable_with_the_same_request(fake: Fake) -> None:
    future = fake.start(lambda: fake.client.submit([Order("a-1", "AAPL", "BUY", 1)]))
    _, first, rpc = fake.channel.take_unary_unary(SUBMIT)
    rpc.terminate(None, (), grpc.StatusCode.UNAVAILABLE, "connection reset")
    _, second, rpc = fake.channel.take_unary_unary(SUBMIT)
    rpc.terminate(pb.SubmitRunResponse(run=pb.Run(run_id="r"), existing=True), (), OK, "")
    assert second == first
    assert future.result(timeout=5).existing is True
    assert len(fake.sleeps) == 1


def test_submit_gives_up_after_the_attempts(fake: Fake) -> None:
    future = fake.start(lambda: fake.client.submit([Order("a-1", "AAPL", "BUY", 1)]))
    for _ in range(3):
        _, _, rpc = fake.channel.take_unary_unary(SUBMIT)
        rpc.terminate(None, (), grpc.StatusCode.DEADLINE_EXCEEDED, "slow")
    with pytest.raises(ExecGwError) as caught:
        future.result(timeout=5)
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert type(caught.value) is ExecGwError
    assert len(fake.sleeps) == 2


# -- error translation --------------------------------------------------------------------------------


def test_invalid_argument_becomes_invalid_request_with_violations(fake: Fake) -> None:
    future = fake.start(lambda: fake.client.submit([Order("a", "AAPL", "BUY", 0), Order("b", "", "SELL", 1)]))
    _, _, rpc = fake.channel.take_unary_unary(SUBMIT)
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="orders[0].quantity", description="must be positive"),
        error_details_pb2.BadRequest.FieldViolation(field="orders[1].symbol", description="required"),
    ])
    trailing, message = rich_status(grpc.StatusCode.INVALID_ARGUMENT, "invalid request: 2 problems", bad)
    rpc.terminate(None, trailing, grpc.StatusCode.INVALID_ARGUMENT, message)
    with pytest.raises(InvalidRequest) as caught:
        future.result(timeout=5)
    assert caught.value.violations == [("orders[0].quantity", "must be positive"), ("orders[1].symbol", "required")]
    assert caught.value.message == "invalid request: 2 problems"
    assert fake.sleeps == []  # a refused request is not retried


def test_already_exists_becomes_conflict_naming_the_order(fake: Fake) -> None:
    future = fake.start(lambda: fake.client.submit([Order("a", "AAPL", "BUY", 1)]))
    _, _, rpc = fake.channel.take_unary_unary(SUBMIT)
    failure = error_details_pb2.PreconditionFailure(violations=[error_details_pb2.PreconditionFailure.Violation(
        type="ALREADY_EXISTS", subject="client_order_id:a", description="used by run r0 for MSFT")])
    trailing, message = rich_status(grpc.StatusCode.ALREADY_EXISTS, "orders: conflict", failure)
    rpc.terminate(None, trailing, grpc.StatusCode.ALREADY_EXISTS, message)
    with pytest.raises(Conflict) as caught:
        future.result(timeout=5)
    assert caught.value.violations == [("client_order_id:a", "used by run r0 for MSFT")]


@pytest.mark.parametrize(("code", "exception"), [
    (grpc.StatusCode.NOT_FOUND, NotFound),
    (grpc.StatusCode.FAILED_PRECONDITION, PreconditionFailed),
    (grpc.StatusCode.INTERNAL, ExecGwError),
])
def test_other_statuses_translate(fake: Fake, code: grpc.StatusCode, exception: type[ExecGwError]) -> None:
    future = fake.start(lambda: fake.client.get("r9"))
    _, request, rpc = fake.channel.take_unary_unary(GET)
    rpc.terminate(None, (), code, "nope")
    with pytest.raises(exception) as caught:
        future.result(timeout=5)
    assert request.run_id == "r9"
    assert type(caught.value) is exception
    assert (caught.value.code, caught.value.message, caught.value.violations) == (code, "nope", [])


def test_details_that_contradict_the_call_are_ignored(fake: Fake) -> None:
    future = fake.start(lambda: fake.client.get("r9"))
    _, _, rpc = fake.channel.take_unary_unary(GET)
    trailing, _ = rich_status(grpc.StatusCode.INVALID_ARGUMENT, "other text", error_details_pb2.BadRequest())
    rpc.terminate(None, trailing, grpc.StatusCode.INVALID_ARGUMENT, "the call's own text")
    with pytest.raises(InvalidRequest) as caught:
        future.result(timeout=5)
    assert caught.value.message == "the call's own text" and caught.value.violations == []


# -- watch --------------------------------------------------------------------------------------------
# grpc_testing drops queued responses once an RPC is terminated with an error (a real server sends
# them first), so the tests wait for the client to have taken them before failing the stream.


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the client"
        time.sleep(0.005)


def collect(iterator: Iterator[pb.RunEvent], into: list[int]) -> list[int]:
    for item in iterator:
        into.append(item.sequence)
    return into


def test_watch_resumes_after_unavailable_from_the_last_sequence(fake: Fake) -> None:
    heartbeats: list[pb.Heartbeat] = []
    seen: list[int] = []
    future = fake.start(lambda: collect(fake.client.watch("r1", 2, on_heartbeat=heartbeats.append), seen))

    _, first, rpc = fake.channel.take_unary_stream(WATCH)
    assert (first.run_id, first.after_sequence) == ("r1", 2)
    rpc.send_response(event(3))
    rpc.send_response(pb.WatchRunResponse(heartbeat=pb.Heartbeat(last_sequence=3)))
    rpc.send_response(event(4))
    wait_until(lambda: len(seen) == 2)
    rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "gateway shutting down; resume with after_sequence=4")

    _, second, rpc = fake.channel.take_unary_stream(WATCH)
    assert (second.run_id, second.after_sequence) == ("r1", 4)
    rpc.send_response(event(4))  # a replay overlapping what was yielded is dropped
    rpc.send_response(event(5, run_status=pb.RunStatusChanged(status=pb.RUN_STATUS_SUCCESS, final=True)))
    rpc.terminate((), OK, "")

    assert future.result(timeout=5) == [3, 4, 5]
    assert [h.last_sequence for h in heartbeats] == [3]
    assert len(fake.sleeps) == 1


def test_watch_gives_up_after_consecutive_failures(fake: Fake) -> None:
    future = fake.start(lambda: [e.sequence for e in fake.client.watch("r1")])
    for _ in range(3):  # watch_failures=2: the third consecutive failure is raised
        _, request, rpc = fake.channel.take_unary_stream(WATCH)
        assert request.after_sequence == 0
        rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "down")
    with pytest.raises(Unavailable, match="down"):
        future.result(timeout=5)


def test_watch_counts_only_consecutive_failures(fake: Fake) -> None:
    seen: list[int] = []
    future = fake.start(lambda: collect(fake.client.watch("r1"), seen))
    for sequence in (1, 2, 3, 4):  # each stream delivers one event then fails: progress resets the count
        _, request, rpc = fake.channel.take_unary_stream(WATCH)
        assert request.after_sequence == sequence - 1
        rpc.send_response(event(sequence))
        wait_until(lambda sequence=sequence: len(seen) == sequence)
        rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "flaky")
    _, request, rpc = fake.channel.take_unary_stream(WATCH)
    rpc.terminate((), OK, "")
    assert future.result(timeout=5) == [1, 2, 3, 4]


def test_watch_raises_other_errors_without_retrying(fake: Fake) -> None:
    future = fake.start(lambda: list(fake.client.watch("nope")))
    _, _, rpc = fake.channel.take_unary_stream(WATCH)
    rpc.terminate((), grpc.StatusCode.NOT_FOUND, "run_id: no run 'nope'")
    with pytest.raises(NotFound):
        future.result(timeout=5)
    assert fake.sleeps == []


# -- list ---------------------------------------------------------------------------------------------


def test_list_follows_page_tokens(fake: Fake) -> None:
    future = fake.start(lambda: [r.run_id for r in fake.client.list(page_size=2)])
    requests = []
    for runs, token in ((["r5", "r4"], "t1"), (["r3", "r2"], "t2"), (["r1"], "")):
        _, request, rpc = fake.channel.take_unary_unary(LIST)
        requests.append((request.page_size, request.page_token))
        rpc.terminate(pb.ListRunsResponse(runs=[pb.Run(run_id=r) for r in runs], next_page_token=token),
                      (), OK, "")
    assert future.result(timeout=5) == ["r5", "r4", "r3", "r2", "r1"]
    assert requests == [(2, ""), (2, "t1"), (2, "t2")]


def test_list_stops_at_the_limit(fake: Fake) -> None:
    future = fake.start(lambda: [r.run_id for r in fake.client.list(page_size=2, limit=3)])
    _, request, rpc = fake.channel.take_unary_unary(LIST)
    assert request.page_size == 2
    rpc.terminate(pb.ListRunsResponse(runs=[pb.Run(run_id="r5"), pb.Run(run_id="r4")], next_page_token="t1"),
                  (), OK, "")
    _, request, rpc = fake.channel.take_unary_unary(LIST)
    assert (request.page_size, request.page_token) == (1, "t1")
    rpc.terminate(pb.ListRunsResponse(runs=[pb.Run(run_id="r3")], next_page_token="t2"), (), OK, "")
    assert future.result(timeout=5) == ["r5", "r4", "r3"]


def test_rich_status_helper_matches_server_encoding() -> None:
    # Guards the helper above: the server packs details exactly like this (server/api/errors.py).
    trailing, _ = rich_status(grpc.StatusCode.INVALID_ARGUMENT, "m", error_details_pb2.BadRequest())
    status = status_pb2.Status.FromString(trailing[0][1])
    assert status.code == code_pb2.INVALID_ARGUMENT
