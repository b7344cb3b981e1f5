"""Today's TWS / IB Gateway (10.x) toward a version-157 client, through real clients over TCP:
attribute refusals, Read-Only API, a silent handshake, execution time forms, 64-bit permIds,
refusals and warnings for an order id, orders held until the open, IB's day, other clients'
orders. Sources for each behaviour: sim/README.md."""

from __future__ import annotations

import socket
import time

import pytest
from ibapi.execution import ExecutionFilter

from execgw.sim.todays_tws import ATTRIBUTE_REFUSALS
from execgw.sim.wire import UNSET_INTEGER

from .clients import WAIT, IbApiApp, RawClient, ibapi_default_order, market_order, stock

QUIET = 0.5
"""Seconds a test waits to be sure something did not arrive."""


def order_events(app: IbApiApp, order_id: int) -> list[tuple]:
    return [e for e in app.events if e[0] in ("openOrder", "orderStatus") and e[1] == order_id]


def errors_for(app: IbApiApp, order_id: int) -> list[tuple[int, str]]:
    return [(e[2], e[3]) for e in app.named("error") if e[1] == order_id]


def statuses(app: IbApiApp, order_id: int) -> list[str]:
    return [e[2] for e in app.named("orderStatus") if e[1] == order_id]


def wait_status(app: IbApiApp, order_id: int, status: str, timeout: float = WAIT) -> None:
    app.wait_for(lambda events: status in statuses(app, order_id), timeout)


# ---- eTradeOnly / firmQuoteOnly -------------------------------------------------------------


def test_ibapi_981_default_order_is_refused_with_10268_and_no_order(sim, ibapi_client):
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), ibapi_default_order("BUY", 10, "old-1"))
    app.wait_for(lambda events: errors_for(app, order_id))
    time.sleep(QUIET)
    assert errors_for(app, order_id) == [(10268, "The 'EtradeOnly' order attribute is not supported.")]
    assert order_events(app, order_id) == []
    assert sim.orders() == [] and sim.executions() == []
    assert [(r.order_id, r.code) for r in sim.refusals()] == [(order_id, 10268)]
    assert [(r.order_ref, r.refused_with) for r in sim.received_orders()] == [("old-1", 10268)]


def test_firm_quote_only_alone_is_refused_with_10269(sim, ibapi_client):
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    order = market_order("BUY", 10, "old-2")
    order.firmQuoteOnly = True
    app.placeOrder(order_id, stock(), order)
    app.wait_for(lambda events: errors_for(app, order_id))
    time.sleep(QUIET)
    assert errors_for(app, order_id) == [(10269, ATTRIBUTE_REFUSALS[10269])]
    assert order_events(app, order_id) == [] and sim.orders() == []


def test_both_flags_cleared_the_order_fills(sim, ibapi_client):
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), market_order("BUY", 10, "new-1"))
    wait_status(app, order_id, "Filled")
    assert errors_for(app, order_id) == []


def test_the_permissive_profile_accepts_the_981_defaults(make_sim, ibapi_client):
    sim = make_sim({"profile": "permissive"})
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), ibapi_default_order("BUY", 10, "old-ok"))
    wait_status(app, order_id, "Filled")
    assert errors_for(app, order_id) == [] and sim.refusals() == []


# ---- Read-Only API ----------------------------------------------------------------------------


def test_read_only_api_refuses_orders_cancels_and_order_lists_but_answers_executions(make_sim, ibapi_client):
    sim = make_sim({"read_only": True})
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), market_order("BUY", 10, "ro-1"))
    app.cancelOrder(order_id)
    app.wait_for(lambda events: len(errors_for(app, order_id)) == 2)
    for code, text in errors_for(app, order_id):
        assert code == 321 and text.endswith("The API interface is currently in Read-Only mode.")
    assert order_events(app, order_id) == [] and sim.orders() == []

    app.reqOpenOrders()
    app.reqAllOpenOrders()
    app.reqAutoOpenOrders(True)
    app.reqCompletedOrders(False)
    app.reqExecutions(7, ExecutionFilter())
    app.wait_named("execDetailsEnd")
    app.wait_for(lambda events: len(errors_for(app, UNSET_INTEGER)) == 4)
    assert {code for code, _ in errors_for(app, UNSET_INTEGER)} == {321}
    assert app.named("openOrderEnd") == [] and app.named("completedOrdersEnd") == []


def test_read_only_is_off_by_default(sim, ibapi_client):
    app = ibapi_client(sim.port)
    app.reqOpenOrders()
    app.wait_named("openOrderEnd")
    assert app.errors() == []


# ---- handshake ------------------------------------------------------------------------------


def test_a_silent_handshake_reads_the_client_and_never_answers(make_sim):
    sim = make_sim({"handshake": "silent"})
    client = RawClient(sim.port)
    client.socket.settimeout(1.0)
    with pytest.raises(socket.timeout):
        client.handshake()
    client.send([71, 2, 1, ""])  # a START_API anyway: still nothing, and the socket stays open
    with pytest.raises(socket.timeout):
        client.receive()
    assert sim.connected_clients() == []
    client.close()


# ---- execution times --------------------------------------------------------------------------


@pytest.mark.parametrize(("form", "pattern"), [
    ("utc", r"^\d{8}-\d\d:\d\d:\d\d$"),
    ("local", r"^\d{8}  \d\d:\d\d:\d\d$"),
    ("zone", r"^\d{8} \d\d:\d\d:\d\d US/Eastern$"),
])
def test_execution_times_come_in_the_scenarios_form(make_sim, ibapi_client, form, pattern):
    import datetime as dt
    import re
    from zoneinfo import ZoneInfo

    sim = make_sim({"execution_time_format": form, "time_zone": "US/Eastern"})
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), market_order("BUY", 1, f"t-{form}"))
    app.wait_named("execDetails")
    app.reqExecutions(3, ExecutionFilter())
    live, requested = app.wait_named("execDetails", 2)[:2]
    assert live[1] == -1 and requested[1] == 3
    (truth,) = sim.executions()
    for event in (live, requested):
        written = event[3].time
        assert re.match(pattern, written), written
        clock = written.removesuffix(" US/Eastern").replace("-", " ").replace("  ", " ")
        naive = dt.datetime.strptime(clock, "%Y%m%d %H:%M:%S")
        zone = dt.UTC if form == "utc" else ZoneInfo("US/Eastern")
        assert naive.replace(tzinfo=zone) == truth.time.replace(microsecond=0)


def test_utc_is_the_default_form(sim):
    from execgw.sim import Scenario

    assert Scenario().execution_time_format == "utc" and Scenario().time_zone == "US/Eastern"


# ---- permIds ----------------------------------------------------------------------------------


def test_perm_ids_start_at_first_perm_id_and_never_repeat_across_restarts(make_sim, ibapi_client):
    first = 2**31 + 5
    seen: list[int] = []
    for run in range(2):  # a restart: the second simulator continues above the first
        sim = make_sim({"first_perm_id": first})
        app = ibapi_client(sim.port, client_id=1 + run)
        order_id = app.next_order_id()
        app.placeOrder(order_id, stock(), market_order("BUY", 1, f"perm-{run}"))
        wait_status(app, order_id, "Filled")
        perm_ids = {e[6] for e in app.named("orderStatus") if e[1] == order_id}
        assert len(perm_ids) == 1
        seen += perm_ids
        assert app.named("execDetails")[0][3].permId == seen[-1]
    # Other simulators of this test process may have issued permIds above `first` already; the
    # first is never below what was asked, and the restarted one continues above it.
    assert seen[0] >= first and seen[1] > seen[0]


# ---- refusals and warnings for an order id ------------------------------------------------


def test_an_error_without_status_leaves_no_order(make_sim, ibapi_client):
    sim = make_sim({"orders": {"e-*": {"outcome": "error", "error_code": 203,
                                       "error_message": "The security AAPL is not available or allowed for this account"}}})
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), market_order("BUY", 10, "e-1"))
    app.wait_for(lambda events: errors_for(app, order_id))
    time.sleep(QUIET)
    assert errors_for(app, order_id) == [(203, "The security AAPL is not available or allowed for this account")]
    assert order_events(app, order_id) == [] and sim.orders() == []
    assert [r.code for r in sim.refusals()] == [203]


@pytest.mark.parametrize("then", ["Inactive", "Cancelled"])
def test_an_error_with_a_status_is_followed_by_that_status(make_sim, ibapi_client, then):
    sim = make_sim({"orders": {"e-*": {"outcome": "error", "error_code": 201,
                                       "error_message": "Order rejected - reason:No trading permissions",
                                       "error_status": then}}})
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), market_order("BUY", 10, "e-2"))
    wait_status(app, order_id, then)
    names = [e[0] for e in app.events if e[0] in ("error", "openOrder", "orderStatus") and e[1] == order_id]
    assert names == ["error", "openOrder", "orderStatus"]
    assert errors_for(app, order_id) == [(201, "Order rejected - reason:No trading permissions")]
    assert [o.status for o in sim.orders()] == [then]


def test_a_warning_follows_the_acknowledgement_and_the_order_fills(make_sim, ibapi_client):
    sim = make_sim({"orders": {"w-*": {"warning_code": 2109, "warning_message": "Outside RTH ignored"}}})
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), market_order("BUY", 10, "w-1"))
    wait_status(app, order_id, "Filled")
    events = [e for e in app.events if e[0] in ("error", "openOrder", "orderStatus") and e[1] == order_id]
    assert [e[0] for e in events[:3]] == ["openOrder", "orderStatus", "error"]
    assert (events[1][2], events[2][2:]) == ("PreSubmitted", (2109, "Outside RTH ignored"))
    assert sim.orders()[0].status == "Filled"


# ---- outside regular hours ------------------------------------------------------------------


def test_a_market_order_outside_hours_gets_399_and_waits_for_the_open(make_sim, ibapi_client):
    sim = make_sim({"market_open": False})
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock("AAPL"), market_order("BUY", 33, "pre-1"))
    app.wait_for(lambda events: errors_for(app, order_id))
    time.sleep(QUIET)
    [(code, text)] = errors_for(app, order_id)
    assert code == 399
    lines = text.split("\n")
    assert lines[:2] == ["Order Message:", "BUY 33 AAPL NASDAQ.NMS"]
    assert lines[2].startswith("Warning: Your order will not be placed at the exchange until ")
    assert lines[2].endswith(" 09:30:00 US/Eastern.")
    assert statuses(app, order_id) == ["PreSubmitted"] and sim.executions() == []

    sim.open_market()
    wait_status(app, order_id, "Filled")
    assert statuses(app, order_id)[:2] == ["PreSubmitted", "Submitted"]

    later = order_id + 1  # once open, orders are not held
    app.placeOrder(later, stock("AAPL"), market_order("BUY", 1, "pre-2"))
    wait_status(app, later, "Filled")
    assert errors_for(app, later) == []


def test_an_order_held_for_the_open_can_be_cancelled(make_sim, ibapi_client):
    sim = make_sim({"market_open": False})
    app = ibapi_client(sim.port)
    order_id = app.next_order_id()
    app.placeOrder(order_id, stock(), market_order("BUY", 5, "pre-c"))
    app.wait_for(lambda events: errors_for(app, order_id))
    app.cancelOrder(order_id)
    wait_status(app, order_id, "Cancelled")
    sim.open_market()
    time.sleep(QUIET)
    assert sim.executions() == [] and sim.orders()[0].status == "Cancelled"


# ---- IB's day ---------------------------------------------------------------------------------


def test_a_new_day_expires_day_orders_and_forgets_old_executions(make_sim, ibapi_client):
    sim = make_sim({"orders": {"rest-*": {"outcome": "rest"}}})
    app = ibapi_client(sim.port)
    first = app.next_order_id()
    app.placeOrder(first, stock(), market_order("BUY", 10, "old-fill"))
    app.placeOrder(first + 1, stock(), market_order("BUY", 10, "rest-1"))
    wait_status(app, first, "Filled")
    wait_status(app, first + 1, "Submitted")

    sim.new_day()
    wait_status(app, first + 1, "Cancelled")
    app.placeOrder(first + 2, stock(), market_order("SELL", 3, "new-fill"))
    wait_status(app, first + 2, "Filled")

    app.reqExecutions(9, ExecutionFilter())
    app.reqCompletedOrders(False)
    app.wait_for(lambda events: any(e[0] == "execDetailsEnd" for e in events)
                 and any(e[0] == "completedOrdersEnd" for e in events))
    assert [e[3].orderRef for e in app.named("execDetails") if e[1] == 9] == ["new-fill"]
    assert [e[2].orderRef for e in app.named("completedOrder")] == ["new-fill"]
    assert [(e.order_ref, e.day) for e in sim.executions()] == [("old-fill", 0), ("new-fill", 1)]
    assert errors_for(app, first + 1) == [], "an expiry is no cancel: no 202"


# ---- other clients' orders --------------------------------------------------------------------


def test_another_clients_order_reaches_the_master_and_nobody_else(make_sim, ibapi_client):
    sim = make_sim({"master_client_id": 1, "orders": {"shared": {"outcome": "rest"}}})
    master = ibapi_client(sim.port, client_id=1)
    other = ibapi_client(sim.port, client_id=2)
    ours = master.next_order_id()
    other.next_order_id()
    master.placeOrder(ours, stock(), market_order("BUY", 10, "shared"))
    wait_status(master, ours, "Submitted")
    mine = sim.orders()[0]

    foreign = sim.add_foreign_order("shared", quantity=4, client_id=7, order_id=ours, fill=True)
    assert foreign.perm_id != mine.perm_id and foreign.order_id == ours
    master.wait_for(lambda events: any(e[0] == "orderStatus" and e[6] == foreign.perm_id and e[2] == "Filled"
                                       for e in events))
    master.wait_for(lambda events: any(e[0] == "commissionReport" for e in events))
    (execution,) = [e for e in master.named("execDetails") if e[3].permId == foreign.perm_id]
    assert (execution[1], execution[3].clientId, execution[3].orderRef) == (-1, 7, "shared")
    time.sleep(QUIET)
    assert [e for e in other.events if e[0] in ("openOrder", "orderStatus", "execDetails")] == []

    tws_user = sim.add_foreign_order("by-hand", client_id=0, fill=True)
    assert tws_user.order_id == 0 and tws_user.placed_in_tws
    master.wait_for(lambda events: any(e[0] == "orderStatus" and e[6] == tws_user.perm_id and e[2] == "Filled"
                                       for e in events))

    other.reqCompletedOrders(True)
    other.wait_named("completedOrdersEnd")
    assert [e[2].permId for e in other.named("completedOrder")] == [foreign.perm_id]
    other.reqCompletedOrders(False)
    other.wait_named("completedOrdersEnd", 2)
    assert [e[2].permId for e in other.named("completedOrder")][1:] == [foreign.perm_id, tws_user.perm_id]

    def executions_for(filter_client: int, req_id: int) -> list[int]:
        wanted = ExecutionFilter()
        wanted.clientId = filter_client
        master.reqExecutions(req_id, wanted)
        master.wait_for(lambda events: any(e[0] == "execDetailsEnd" and e[1] == req_id for e in events))
        return [e[3].permId for e in master.named("execDetails") if e[1] == req_id]

    assert executions_for(7, 21) == [foreign.perm_id]
    assert executions_for(0, 22) == [foreign.perm_id, tws_user.perm_id]
    assert executions_for(1, 23) == []
    other.reqExecutions(24, ExecutionFilter())
    other.wait_for(lambda events: any(e[0] == "execDetailsEnd" for e in events))
    assert other.named("execDetails") == [], "only the master sees other clients' executions"


def test_a_resting_foreign_order_is_in_everyones_all_open_orders_only(make_sim, ibapi_client):
    sim = make_sim()
    app = ibapi_client(sim.port, client_id=3)
    app.next_order_id()
    foreign = sim.add_foreign_order("theirs", client_id=7, fill=False)
    app.reqOpenOrders()
    app.wait_named("openOrderEnd")
    assert app.named("openOrder") == []
    app.reqAllOpenOrders()
    app.wait_named("openOrderEnd", 2)
    assert [e[3].permId for e in app.named("openOrder")] == [foreign.perm_id]
