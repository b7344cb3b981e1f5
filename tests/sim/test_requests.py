"""Client messages as the real clients write them: PLACE_ORDER from ibapi and from ib_async, and
the REQ_EXECUTIONS filter."""

from __future__ import annotations

import datetime as dt

import ib_async
from ibapi.client import EClient
from ibapi.execution import ExecutionFilter as IbApiExecutionFilter
from ibapi.wrapper import EWrapper

from execgw.sim.records import Contract, Execution
from execgw.sim.requests import ExecutionFilter, parse_execution_filter, parse_place_order
from execgw.sim.wire import FrameReader

from .clients import market_order, stock


class CapturingConnection:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def isConnected(self) -> bool:
        return True

    def sendMsg(self, message: bytes) -> None:
        self.sent.append(message)


def ibapi_messages(call) -> list[list[str]]:
    client = EClient(EWrapper())
    client.conn = CapturingConnection()
    client.serverVersion_ = 157
    client.connState = EClient.CONNECTED
    call(client)
    return [m for data in client.conn.sent for m in FrameReader().feed(data)]


def test_place_order_from_ibapi():
    order = market_order("BUY", 100, "run-1-0001", account="DU7654321")
    [fields] = ibapi_messages(lambda c: c.placeOrder(41, stock("AAPL"), order))
    assert len(fields) > 100  # the tail the simulator ignores
    request = parse_place_order(fields)
    assert (request.order_id, request.action, request.quantity, request.order_type) == (41, "BUY", 100.0, "MKT")
    assert request.contract == Contract("AAPL", "STK", "SMART", "USD")
    assert (request.order_ref, request.account, request.transmit) == ("run-1-0001", "DU7654321", True)
    assert request.lmt_price is None and request.aux_price is None


def test_place_order_from_ib_async():
    client = ib_async.client.Client(ib_async.wrapper.Wrapper(ib_async.IB()))
    client.conn = CapturingConnection()
    client._serverVersion = 157
    client.connState = client.CONNECTED
    client.placeOrder(8, ib_async.Stock("MSFT", "SMART", "USD"),
                      ib_async.MarketOrder("SELL", 12, orderRef="ia-7"))
    [fields] = [m for data in client.conn.sent for m in FrameReader().feed(data)]
    request = parse_place_order(fields)
    assert (request.order_id, request.contract.symbol, request.action, request.quantity) == (8, "MSFT", "SELL", 12)
    assert request.order_ref == "ia-7"


def test_execution_filter_from_ibapi():
    wanted = IbApiExecutionFilter()
    wanted.clientId, wanted.acctCode, wanted.time = 3, "DU1", "20250314-10:00:00"
    wanted.symbol, wanted.secType, wanted.exchange, wanted.side = "AAPL", "STK", "SMART", "BUY"
    [fields] = ibapi_messages(lambda c: c.reqExecutions(9, wanted))
    req_id, parsed = parse_execution_filter(fields)
    assert req_id == 9
    assert parsed == ExecutionFilter(3, "DU1", dt.datetime(2025, 3, 14, 10, tzinfo=dt.UTC), "AAPL", "STK",
                                     "SMART", "BUY")


def execution(**changes) -> Execution:
    values = dict(exec_id="e.1.01.01", order_ref="r", order_id=1, perm_id=2, client_id=3, account="DU1",
                  contract=Contract("AAPL"), side="BOT", shares=1.0, price=1.0, cum_qty=1.0, avg_price=1.0,
                  time=dt.datetime(2025, 3, 14, 12, tzinfo=dt.UTC), commission=1.0, venue="ISLAND")
    values.update(changes)
    return Execution(**values)


def test_empty_filter_matches_everything():
    assert ExecutionFilter().matches(execution())


def test_each_filter_field():
    e = execution()
    assert ExecutionFilter(client_id=3).matches(e) and not ExecutionFilter(client_id=4).matches(e)
    assert ExecutionFilter(account="DU1").matches(e) and not ExecutionFilter(account="DU2").matches(e)
    assert ExecutionFilter(symbol="aapl").matches(e) and not ExecutionFilter(symbol="MSFT").matches(e)
    assert ExecutionFilter(sec_type="STK").matches(e) and not ExecutionFilter(sec_type="OPT").matches(e)
    assert ExecutionFilter(exchange="SMART").matches(e) and ExecutionFilter(exchange="ISLAND").matches(e)
    assert not ExecutionFilter(exchange="ARCA").matches(e)
    assert ExecutionFilter(side="BUY").matches(e) and not ExecutionFilter(side="SELL").matches(e)
    noon = dt.datetime(2025, 3, 14, 12, tzinfo=dt.UTC)
    assert ExecutionFilter(since=noon).matches(e)
    assert not ExecutionFilter(since=noon + dt.timedelta(seconds=1)).matches(e)


def test_unreadable_time_does_not_filter():
    assert parse_execution_filter(["7", "3", "1", "0", "", "yesterday", "", "", "", ""])[1].since is None


def _flags(order_ref: str, e_trade_only: bool, firm_quote_only: bool, contract=None):
    order = market_order("BUY", 1, order_ref)
    order.eTradeOnly, order.firmQuoteOnly = e_trade_only, firm_quote_only
    [fields] = ibapi_messages(lambda c: c.placeOrder(5, contract or stock(), order))
    request = parse_place_order(fields)
    return request.e_trade_only, request.firm_quote_only


def test_e_trade_only_and_firm_quote_only_are_read_from_the_tail():
    # Each flag on its own, so a shifted position cannot pass by reading the other one.
    assert _flags("t", True, True) == (True, True)
    assert _flags("t", True, False) == (True, False)
    assert _flags("t", False, True) == (False, True)
    assert _flags("t", False, False) == (False, False)


def test_ibapi_981_order_defaults_send_both_flags_true():
    from ibapi.order import Order

    [fields] = ibapi_messages(lambda c: c.placeOrder(5, stock(), Order()))
    request = parse_place_order(fields)
    assert (request.e_trade_only, request.firm_quote_only) == (True, True)


def test_the_flags_of_a_combo_order_are_found_after_its_legs():
    from ibapi.contract import ComboLeg

    combo = stock("SPY")
    combo.secType = "BAG"
    legs = []
    for con_id in (1, 2):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = con_id, 1, "BUY", "SMART"
        legs.append(leg)
    combo.comboLegs = legs
    # Order combo legs and smart routing params would shift the flags further; none here, but the
    # counts are still sent for a BAG and must be skipped.
    assert _flags("t", False, True, combo) == (False, True)
    assert _flags("t", True, False, combo) == (True, False)


def test_ib_async_sends_both_flags_false():
    client = ib_async.client.Client(ib_async.wrapper.Wrapper(ib_async.IB()))
    client.conn = CapturingConnection()
    client._serverVersion = 157
    client.connState = client.CONNECTED
    client.placeOrder(8, ib_async.Stock("MSFT", "SMART", "USD"), ib_async.MarketOrder("SELL", 12))
    [fields] = [m for data in client.conn.sent for m in FrameReader().feed(data)]
    request = parse_place_order(fields)
    assert (request.e_trade_only, request.firm_quote_only) == (False, False)


def test_a_bare_head_without_tail_has_both_flags_false():
    head = ["3", "7", "0", "SPY", "STK", "", "0", "", "", "SMART", "", "USD", "", "", "", "", "BUY", "5",
            "MKT", "", "", "DAY", "", "", "", "0", "flood", "1", "0", "0", "0", "0", "0", "0", "0"]
    request = parse_place_order(head)
    assert (request.e_trade_only, request.firm_quote_only) == (False, False)
