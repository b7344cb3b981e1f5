"""Faults a test provokes through the in-process API or the scenario, seen by an ibapi EClient:
drops, executions kept for reqExecutions, Gateway restarts with a lower nextValidId,
connectivity loss 1100/1101/1102."""

from __future__ import annotations

import time

import pytest
from ibapi.execution import ExecutionFilter

from execgw.sim import Simulator

from .clients import IbApiApp, market_order, stock


def test_executions_made_while_disconnected_are_returned_by_req_executions(make_sim, ibapi_client):
    sim = make_sim({"orders": {"slow-*": {"fill_delay": 0.3, "fills": 2}}})
    app = ibapi_client(sim.port, client_id=1)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock("AAPL"), market_order("BUY", 10, "fast-1"))
    app.placeOrder(order_id + 1, stock("MSFT"), market_order("SELL", 4, "slow-1"))
    app.wait_named("commissionReport")
    sim.wait_for_order("slow-1", status="Submitted")

    assert sim.drop_connections() == 1
    app.wait_named("connectionClosed")
    sim.wait_for_order("slow-1", status="Filled")  # filled while nobody was connected

    again = ibapi_client(sim.port, client_id=1)
    again.next_order_id()
    again.reqExecutions(5, ExecutionFilter())
    again.wait_named("execDetailsEnd")

    replay = [e[3] for e in again.named("execDetails")]
    assert {e[1] for e in again.named("execDetails")} == {5}
    assert [(e.orderRef, e.shares) for e in replay] == [("fast-1", 10), ("slow-1", 2), ("slow-1", 2)]
    assert {c[1].execId for c in again.named("commissionReport")} == {e.execId for e in replay}
    kinds = [e[0] for e in again.events if e[0] in ("execDetails", "commissionReport", "execDetailsEnd")]
    assert kinds[-1] == "execDetailsEnd"
    assert [e.exec_id for e in sim.executions()] == [e.execId for e in replay]

    again.events.clear()
    wanted = ExecutionFilter()
    wanted.symbol, wanted.side = "MSFT", "SELL"
    again.reqExecutions(6, wanted)
    again.wait_named("execDetailsEnd")
    assert [e[3].orderRef for e in again.named("execDetails")] == ["slow-1", "slow-1"]


def test_req_executions_shows_other_clients_fills_to_the_master_client_only(make_sim, ibapi_client):
    sim = make_sim({"master_client_id": 0})
    trader = ibapi_client(sim.port, client_id=1)
    trader.placeOrder(trader.next_order_id(), stock(), market_order("BUY", 1, "t-1"))
    trader.wait_named("commissionReport")
    master = ibapi_client(sim.port, client_id=0)
    other = ibapi_client(sim.port, client_id=2)
    for app in (master, other):
        app.next_order_id()
        app.reqExecutions(1, ExecutionFilter())
        app.wait_named("execDetailsEnd")
    assert [e[3].orderRef for e in master.named("execDetails")] == ["t-1"]
    assert other.named("execDetails") == []


def test_drop_after_k_messages_from_the_scenario(make_sim, ibapi_client):
    # startup is 5 messages (accounts, next id, 3 farm notices); then openOrder, orderStatus,
    # execDetails: the socket closes before the commission report.
    sim = make_sim({"drops": [{"after_messages": 8, "client_id": 1}]})
    app = ibapi_client(sim.port, client_id=1)
    app.placeOrder(app.next_order_id(), stock(), market_order("BUY", 1, "k-1"))

    app.wait_named("connectionClosed")
    assert len(app.named("execDetails")) == 1
    assert app.named("commissionReport") == []
    assert sim.wait_for_order("k-1", status="Filled").filled == 1
    assert sim.executions()[0].commission == 1.0

    again = ibapi_client(sim.port, client_id=1)  # the drop happens once
    again.reqExecutions(3, ExecutionFilter())
    assert again.wait_named("commissionReport")[0][1].execId == sim.executions()[0].exec_id


def test_drop_at_a_time_from_the_scenario(make_sim, ibapi_client):
    sim = make_sim({"drops": [{"at": 0.3}]})
    app = ibapi_client(sim.port)
    app.next_order_id()
    app.wait_named("connectionClosed", timeout=3)
    assert sim.connected_clients() == []


def test_drop_one_client_id_only(sim, ibapi_client):
    one = ibapi_client(sim.port, client_id=1)
    two = ibapi_client(sim.port, client_id=2)
    one.next_order_id()
    two.next_order_id()

    assert sim.drop_connections(client_id=2) == 1

    two.wait_named("connectionClosed")
    assert one.isConnected() and sim.connected_clients() == [1]


def test_tws_going_away_with_a_placeorder_unread_leaves_no_order(sim, ibapi_client):
    app = ibapi_client(sim.port, client_id=1)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), market_order("BUY", 1, "before"))
    sim.wait_for_order("before", status="Filled")
    sim.drop_before_order("unread")

    app.placeOrder(order_id + 1, stock(), market_order("BUY", 1, "unread"))
    app.wait_named("connectionClosed")

    assert [o.order_ref for o in sim.orders()] == ["before"]
    assert [r.order_ref for r in sim.received_orders()] == ["before"]  # not even read
    again = ibapi_client(sim.port, client_id=1)  # it happens once
    again.placeOrder(again.next_order_id(), stock(), market_order("BUY", 1, "unread"))
    assert sim.wait_for_order("unread", status="Filled").filled == 1


def test_gateway_restart_refuses_connections_then_comes_back_with_a_lower_next_valid_id(sim, ibapi_client):
    app = ibapi_client(sim.port, client_id=1)
    order_id = app.next_order_id()
    app.placeOrder(order_id + 20, stock(), market_order("BUY", 1, "before-restart"))
    app.wait_named("commissionReport")

    sim.refuse_connections(0.5, next_valid_id=order_id)

    app.wait_named("connectionClosed")
    refused = IbApiApp()
    refused.connect("127.0.0.1", sim.port, 1)  # connect() reports a refused socket as error 502
    assert (-1, 502) in [e[1:3] for e in refused.named("error")] and not refused.isConnected()
    sim.wait_accepting()
    again = ibapi_client(sim.port, client_id=1)
    assert again.next_order_id() == order_id  # rolled back below ids already used
    again.placeOrder(order_id, stock(), market_order("BUY", 1, "after-restart"))
    again.wait_named("commissionReport")
    assert [(o.order_id, o.order_ref) for o in sim.orders()] == [
        (order_id + 20, "before-restart"), (order_id, "after-restart")]
    assert len({e.perm_id for e in sim.executions()}) == 2


def test_outage_from_the_scenario(make_sim):
    sim = make_sim({"outages": [{"at": 0.0, "duration": 0.4}]})
    started = time.monotonic()
    sim.wait_accepting()
    assert time.monotonic() - started >= 0.3


def test_set_next_valid_id_for_one_client(sim, ibapi_client):
    sim.set_next_valid_id(500, client_id=3)
    assert ibapi_client(sim.port, client_id=3).next_order_id() == 500
    assert ibapi_client(sim.port, client_id=4).next_order_id() == 1


@pytest.mark.parametrize(("restored", "delivered"), [(1102, True), (1101, False)])
def test_connectivity_loss_holds_order_events_until_restored(make_sim, ibapi_client, restored, delivered):
    sim = make_sim({"orders": {"hold-1": {"fill_delay": 0.2}}})
    app = ibapi_client(sim.port)
    app.placeOrder(app.next_order_id(), stock(), market_order("BUY", 1, "hold-1"))
    sim.wait_for_order("hold-1", status="Submitted")

    sim.send_error(1100)
    app.wait_for(lambda _: (-1, 1100) in [e[1:3] for e in app.named("error")])
    sim.wait_for_order("hold-1", status="Filled")
    sim.send_error(restored)

    app.wait_for(lambda _: (-1, restored) in [e[1:3] for e in app.named("error")])
    if delivered:
        app.wait_named("commissionReport")
    else:
        app.reqExecutions(2, ExecutionFilter())  # what a client must do after 1101
        app.wait_named("execDetailsEnd")
        assert [e[1] for e in app.named("execDetails")] == [2]
    codes = [e[2] for e in app.named("error") if e[2] in (1100, 1101, 1102)]
    assert codes == [1100, restored]


def test_connectivity_loss_from_the_scenario(make_sim, ibapi_client):
    sim = make_sim({"connectivity": [{"at": 0.2, "duration": 0.2, "restored_code": 1101}]})
    app = ibapi_client(sim.port)
    app.wait_for(lambda _: [e[2] for e in app.named("error") if e[2] in (1100, 1101)] == [1100, 1101])
    assert sim.connected_clients() == [1]


def test_any_error_code_can_be_sent(sim, ibapi_client):
    app = ibapi_client(sim.port)
    app.next_order_id()
    sim.send_error(2110, "Connectivity between Trader Workstation and server is broken.")
    assert app.wait_for(lambda _: [e for e in app.named("error") if e[2] == 2110])


def test_accounts_must_look_like_ib_accounts():
    with pytest.raises(ValueError, match="does not look like"):
        Simulator(accounts=["12345"])


def test_the_same_seed_gives_the_same_prices(make_sim, ibapi_client):
    prices = []
    for _ in range(2):
        sim = make_sim(seed=42)
        app = ibapi_client(sim.port)
        app.placeOrder(app.next_order_id(), stock("NVDA"), market_order("BUY", 1, "seed"))
        sim.wait_for_order("seed", status="Filled")
        prices.append(sim.executions()[0].price)
    assert prices[0] == prices[1]


def test_timeout_waiting_for_an_order_that_never_comes(sim):
    with pytest.raises(TimeoutError):
        sim.wait_for_order("never", timeout=0.1)
