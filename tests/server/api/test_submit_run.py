"""SubmitRun's contract: validation that names the field and writes nothing, idempotent retries,
conflicting client_order_ids, modes that are not configured, and IB being down."""

from __future__ import annotations

import math

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from execgw.server.api.callers import Permission, add_caller
from execgw.v1 import execution_pb2 as pb


def violations_of(error: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)
    assert status is not None
    found = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


def rejected(live, request: pb.SubmitRunRequest) -> grpc.RpcError:
    before = live.counts()
    with pytest.raises(grpc.RpcError) as caught:
        live.stub.SubmitRun(request, timeout=10)
    assert live.counts() == before, "a refused request must write nothing"
    return caught.value


INVALID_ORDERS = [
    ({"order_type": "LMT"}, "orders[0].order_type"),
    ({"quantity": -5}, "orders[0].quantity"),
    ({"quantity": 0}, "orders[0].quantity"),
    ({"quantity": math.nan}, "orders[0].quantity"),
    ({"quantity": math.inf}, "orders[0].quantity"),
    ({"side": pb.ORDER_SIDE_UNSPECIFIED}, "orders[0].side"),
    ({"symbol": ""}, "orders[0].symbol"),
    ({"symbol": "AAPL;DROP TABLE"}, "orders[0].symbol"),
    ({"client_order_id": ""}, "orders[0].client_order_id"),
    ({"client_order_id": "has space"}, "orders[0].client_order_id"),
    ({"currency": "dollars"}, "orders[0].currency"),
    # Quantities IB cannot hold, or no order at all: whole shares or up to 4 decimals, 0.0001..max.
    ({"quantity": 1e-9}, "orders[0].quantity"),
    ({"quantity": 5e-324}, "orders[0].quantity"),
    ({"quantity": 1 / 3}, "orders[0].quantity"),
    ({"quantity": 1e300}, "orders[0].quantity"),
    ({"quantity": 100_000.5}, "orders[0].quantity"),
    # Only stocks, in the currencies and on the exchanges the gateway is set up for.
    ({"sec_type": "OPT"}, "orders[0].sec_type"),
    ({"exchange": "ZZZZZZZ"}, "orders[0].exchange"),
    ({"primary_exchange": "SMART"}, "orders[0].primary_exchange"),
    ({"currency": "ZZZ"}, "orders[0].currency"),
]


@pytest.mark.parametrize(("change", "field"), INVALID_ORDERS, ids=[f for _, f in INVALID_ORDERS])
def test_an_invalid_order_is_refused_naming_its_field_and_nothing_is_sent(live, change, field):
    spec = pb.OrderSpec(client_order_id=f"{live.prefix}-x", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=1)
    for key, value in change.items():
        setattr(spec, key, value)
    error = rejected(live, pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[spec]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in violations_of(error)]
    assert field in error.details()
    assert live.sim.orders() == []


def test_every_violation_of_a_request_is_reported_at_once(live):
    request = pb.SubmitRunRequest(
        orders=[live.order("a", quantity=-1), live.order("a"), live.order("b", order_type="STP")],
    )
    error = rejected(live, request)
    fields = [f for f, _ in violations_of(error)]
    assert fields == ["mode", "orders[0].quantity", "orders[1].client_order_id", "orders[2].order_type"]


def test_an_empty_run_and_an_oversized_run_are_refused(start_gateway):
    live = start_gateway(max_orders_per_run=3)
    error = rejected(live, pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER))
    assert [f for f, _ in violations_of(error)] == ["orders"]
    error = rejected(live, pb.SubmitRunRequest(
        mode=pb.TRADING_MODE_PAPER, orders=[live.order(str(i)) for i in range(4)]))
    assert violations_of(error) == [("orders", "at most 3 orders per run, got 4")]


def test_a_deadline_beyond_the_maximum_is_refused(start_gateway):
    live = start_gateway(max_deadline_seconds=30)
    with pytest.raises(grpc.RpcError) as caught:
        live.submit(live.order("d"), deadline=31)
    assert [f for f, _ in violations_of(caught.value)] == ["deadline"]


@pytest.mark.parametrize("seconds", [10**15, 2**63 - 1, -(2**63), 315_576_000_000, -1], ids=str)
def test_a_deadline_no_timedelta_holds_is_refused_naming_it(live, seconds):
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[live.order("far")])
    request.deadline.seconds = seconds
    error = rejected(live, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations_of(error) == [("deadline", "must be positive and at most 3600s")]
    assert live.sim.orders() == []


@pytest.mark.parametrize(("seconds", "nanos"), [(30, 1_000_000_000), (30, -2**31), (-1, 1_999_999_999), (30, -1), (-5, 5)],
                         ids=str)
def test_a_deadline_that_is_no_duration_is_refused_naming_it(live, seconds, nanos):
    """Out of protobuf's own range (nanos beyond ±999,999,999, or of the other sign than seconds):
    once read as some nearby duration and accepted."""
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[live.order("odd")])
    request.deadline.seconds, request.deadline.nanos = seconds, nanos
    error = rejected(live, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = violations_of(error)
    assert field == "deadline" and description.startswith("not a valid Duration"), description
    assert live.sim.orders() == [] and live.counts()[0] == 0


def test_the_largest_order_quantity_is_a_setting_and_the_error_says_what_is_accepted(start_gateway):
    live = start_gateway(max_order_quantity=50)
    error = rejected(live, pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[live.order("big", quantity=50.5)]))
    [(field, description)] = violations_of(error)
    assert field == "orders[0].quantity"
    assert description == "shares from 0.0001 to 50 in steps of 0.0001 (at most 4 decimals); got 50.5"
    run, _ = live.run_to_end(live.order("most", quantity=50))
    assert run.status == pb.RUN_STATUS_SUCCESS


def test_the_currencies_and_exchanges_are_settings(start_gateway):
    live = start_gateway(stock_currencies=["usd"], stock_exchanges=["SMART", "NYSE"])
    order = live.order("eu", currency="EUR", exchange="ARCA", primary_exchange="NASDAQ")
    error = rejected(live, pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order]))
    assert violations_of(error) == [
        ("orders[0].exchange", "one of SMART, NYSE (IB's codes); got 'ARCA'"),
        ("orders[0].primary_exchange", "empty or one of NYSE (IB's codes); got 'NASDAQ'"),
        ("orders[0].currency", "one of USD; got 'EUR'"),
    ]


def test_a_fractional_quantity_of_4_decimals_is_sent_as_written_and_fills(live):
    run, _ = live.run_to_end(live.order("frac", quantity=2.5), live.order("tiny", quantity=0.0001))
    assert run.status == pb.RUN_STATUS_SUCCESS
    assert [o.filled_quantity for o in run.orders] == [2.5, 0.0001]
    assert sorted(o.quantity for o in live.sim.orders()) == [0.0001, 2.5]


def test_live_mode_that_is_not_configured_is_a_failed_precondition(start_gateway, tmp_path):
    # Asked by a caller allowed to trade live (the implicit local caller never is: test_auth.py).
    callers = tmp_path / "callers.toml"
    token = add_caller(callers, "desk", [Permission.READ, Permission.PAPER, Permission.LIVE])
    live = start_gateway(callers_file=callers)
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_LIVE, orders=[live.order("l")])
    before = live.counts()
    with pytest.raises(grpc.RpcError) as caught:
        live.stub.SubmitRun(request, timeout=10, metadata=(("authorization", f"Bearer {token}"),))
    assert live.counts() == before, "a refused request must write nothing"
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "live" in caught.value.details()


def test_a_retry_with_the_same_client_order_ids_returns_the_same_run_and_sends_nothing_again(live):
    orders = [live.order("a"), live.order("b", "MSFT", "SELL", 3)]
    first = live.submit(*orders)
    live.watch(first.run.run_id)
    counts = live.counts()
    again = live.submit(*orders)
    assert again.existing and not first.existing
    assert again.run.run_id == first.run.run_id
    assert [o.ib_order_id for o in again.run.orders] == [o.ib_order_id for o in first.run.orders]
    assert len(live.sim.orders()) == 2
    assert live.counts() == counts


@pytest.mark.parametrize("change", ["quantity", "side", "symbol", "extra_order", "fewer_orders"])
def test_reusing_a_client_order_id_with_different_contents_is_refused(live, change):
    first = live.submit(live.order("a"), live.order("b"))
    live.watch(first.run.run_id)
    orders = [live.order("a"), live.order("b")]
    if change == "quantity":
        orders[1].quantity = 11
    elif change == "side":
        orders[1].side = pb.ORDER_SIDE_SELL
    elif change == "symbol":
        orders[1].symbol = "MSFT"
    elif change == "extra_order":
        orders.append(live.order("c"))
    else:
        orders.pop()
    error = rejected(live, pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=orders))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "client_order_id" in error.details()
    assert len(live.sim.orders()) == 2


def test_while_ib_is_down_submit_is_unavailable_and_writes_nothing(live):
    live.sim.refuse_connections(30)
    live.gateway.call(_until_disconnected(live))
    error = rejected(live, pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[live.order("down")]))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def _until_disconnected(live) -> None:
    import asyncio

    session = live.gateway.gateway.engine.sessions["paper"]
    for _ in range(200):
        if not session.ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not notice the dropped connection")


def test_ib_order_ids_continue_above_the_highest_id_in_the_database(start_gateway):
    first = start_gateway()
    run = first.submit(first.order("one"), first.order("two"))
    first.watch(run.run.run_id)
    highest = max(o.ib_order_id for o in run.run.orders)
    # The gateway restarts, and so does TWS, which rolled nextValidId back to 1: the ids the
    # database holds for this endpoint and client id must not be handed out again.
    first.gateway.stop()
    first.sim.set_next_valid_id(1)
    second = start_gateway(sim=first.sim)
    run2 = second.submit(second.order("three"))
    assert run2.run.orders[0].ib_order_id == highest + 1
    (final,) = [e for e in second.watch(run2.run.run_id) if e.HasField("run_status") and e.run_status.final]
    assert final.run_status.status == pb.RUN_STATUS_SUCCESS
