"""ExecGwClient against a real gateway and its built-in TWS simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from execgw.client import ExecGwClient, InvalidRequest, NotFound, Order, new_client_order_id
from execgw.server.embedded import GatewayThread
from execgw.v1 import execution_pb2 as pb

pytestmark = pytest.mark.timeout(60)


def two_orders() -> list[Order]:
    return [Order(new_client_order_id("buy-"), "AAPL", "BUY", 100), Order(new_client_order_id("sell-"), "MSFT", "SELL", 50)]


def test_submit_watch_get_list(client: ExecGwClient) -> None:
    orders = two_orders()
    result = client.submit(orders, deadline=timedelta(seconds=30), submitted_by="e2e")
    assert result.existing is False
    assert [o.spec.client_order_id for o in result.run.orders] == [o.client_order_id for o in orders]
    assert all(o.ib_order_id > 0 for o in result.run.orders)

    events = list(client.watch(result.run_id))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert all(e.run_id == result.run_id for e in events)
    final = events[-1]
    assert final.WhichOneof("event") == "run_status"
    assert final.run_status.final and final.run_status.status == pb.RUN_STATUS_SUCCESS
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.count("fill") >= 2 and kinds.count("commission") >= 2

    run = client.get(result.run_id)
    assert run.status == pb.RUN_STATUS_SUCCESS
    # The gateway books the run to the caller (here the implicit local one); the note is kept.
    assert (run.submitted_by, run.submitted_note) == ("local", "e2e")
    assert run.last_sequence == final.sequence
    for order, spec in zip(run.orders, orders, strict=True):
        assert order.spec.client_order_id == spec.client_order_id
        assert order.status == pb.ORDER_STATUS_FILLED
        assert order.filled_quantity == spec.quantity
        assert order.fills and all(f.HasField("commission") for f in order.fills)
        assert sum(f.quantity for f in order.fills) == spec.quantity

    runs = list(client.list(limit=5))
    assert runs[0].run_id == result.run_id


def test_watch_resumes_from_a_sequence_and_ends_on_a_finished_run(client: ExecGwClient) -> None:
    result = client.submit(two_orders())
    events = list(client.watch(result.run_id))
    tail = list(client.watch(result.run_id, after_sequence=3))
    assert [e.sequence for e in tail] == [e.sequence for e in events[3:]]
    assert list(client.watch(result.run_id, after_sequence=events[-1].sequence)) == []


def test_watch_yields_the_same_events_whether_the_gateway_sends_them_one_or_several_a_message(client: ExecGwClient) -> None:
    result = client.submit(two_orders())
    batched = list(client.watch(result.run_id))  # the default: several a message when ready
    single = list(client.watch(result.run_id, max_events_per_message=1))
    tail = list(client.watch(result.run_id, after_sequence=2, max_events_per_message=3))
    assert len(single) > 3
    assert batched == single
    assert tail == single[2:]


def test_list_follows_pages_newest_first(client: ExecGwClient) -> None:
    run_ids = [client.submit([Order.new("BUY", "SPY", 1)]).run_id for _ in range(3)]
    listed = [r.run_id for r in client.list(page_size=2)]
    assert listed[:3] == run_ids[::-1]


def test_invalid_request_names_the_field(client: ExecGwClient) -> None:
    with pytest.raises(InvalidRequest) as caught:
        client.submit([Order.new("BUY", "AAPL", 0), Order.new("SELL", "MSFT", 5)])
    fields = [field for field, _ in caught.value.violations]
    assert fields == ["orders[0].quantity"]


def test_resubmit_with_the_same_ids_returns_the_existing_run(client: ExecGwClient) -> None:
    orders = two_orders()
    first = client.submit(orders)
    again = client.submit(orders)
    assert again.existing is True and again.run_id == first.run_id
    assert [o.ib_order_id for o in again.run.orders] == [o.ib_order_id for o in first.run.orders]


def test_unknown_run_is_not_found(client: ExecGwClient) -> None:
    with pytest.raises(NotFound):
        client.get("3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b")
    with pytest.raises(NotFound):
        list(client.watch("3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b"))


def test_cancel_reports_each_order(client: ExecGwClient) -> None:
    result = client.submit(two_orders())
    list(client.watch(result.run_id))
    response = client.cancel(result.run_id)
    assert [o.client_order_id for o in response.outcomes] == [o.spec.client_order_id for o in result.run.orders]
    assert all(o.status == pb.ORDER_STATUS_FILLED for o in response.outcomes)


def test_local_gateway_target_is_loopback(gateway: GatewayThread) -> None:
    assert gateway.target == f"127.0.0.1:{gateway.port}" and gateway.port > 0
