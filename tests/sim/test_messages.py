"""Every message the simulator sends, decoded by ibapi 9.81's own Decoder (every field consumed,
values as sent) and by ib_async 2.1's Decoder."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from ib_async.decoder import Decoder as IbAsyncDecoder
from ibapi.common import UNSET_DOUBLE
from ibapi.decoder import Decoder
from ibapi.wrapper import EWrapper

from execgw.sim import messages
from execgw.sim.records import Contract, Execution, Order
from execgw.sim.todays_tws import ExecutionTimes
from execgw.sim.wire import FrameReader

NOW = dt.datetime(2025, 3, 14, 15, 30, 5, tzinfo=dt.UTC)
AAPL = Contract("AAPL")


def an_order(**changes: Any) -> Order:
    values: dict[str, Any] = dict(
        order_id=12, client_id=3, perm_id=1_234_567_890, contract=AAPL, action="BUY", quantity=100.0,
        order_type="MKT", account="DU1234567", order_ref="run-1-0001", status="Filled", filled=100.0,
        avg_fill_price=190.25, last_fill_price=190.25,
    )
    values.update(changes)
    return Order(**values)


AN_EXECUTION = Execution(
    exec_id="0000e0d5.6553a1b2.01.01", order_ref="run-1-0001", order_id=12, perm_id=1_234_567_890,
    client_id=3, account="DU1234567", contract=AAPL, side="BOT", shares=100.0, price=190.25,
    cum_qty=100.0, avg_price=190.25, time=NOW, commission=1.0, venue="ISLAND",
)


class Recorder(EWrapper):
    """Records the ibapi callbacks by name."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattribute__(self, name: str) -> Any:
        if name[0].islower() and name not in ("calls",) and hasattr(EWrapper, name):
            return lambda *args: object.__getattribute__(self, "calls").append((name, args))
        return object.__getattribute__(self, name)


def fields_of(message: bytes) -> list[str]:
    [fields] = FrameReader().feed(message)
    return fields


def ibapi_decode(message: bytes) -> tuple[str, tuple[Any, ...]]:
    """Decode with ibapi and check that a processing method consumed exactly every field."""
    fields = tuple(f.encode() for f in fields_of(message))
    recorder = Recorder()
    decoder = Decoder(recorder, 157)
    handler = decoder.msgId2handleInfo[int(fields[0])]
    if handler.processMeth is not None:
        remaining = iter(fields)
        handler.processMeth(decoder, remaining)
        assert list(remaining) == [], "ibapi left fields unread: the layout is misaligned"
    else:
        decoder.interpret(fields)  # checks the field count itself and drops the message if wrong
    [call] = recorder.calls
    return call


def ib_async_decode(message: bytes) -> tuple[str, tuple[Any, ...]]:
    calls: list[tuple[str, tuple[Any, ...]]] = []

    class Wrapper:
        ib = SimpleNamespace(TimezoneTWS=None)
        defaultTimezone = dt.UTC

        def __getattr__(self, name: str) -> Any:
            return lambda *args: calls.append((name, args))

    decoder = IbAsyncDecoder(Wrapper(), 157)
    fields = fields_of(message)
    decoder.handlers[int(fields[0])](fields)  # not interpret(): it would log and swallow errors
    [call] = calls
    return call


def test_order_status():
    order = an_order(status="Submitted", filled=40.0, avg_fill_price=190.1, last_fill_price=190.2)
    name, args = ibapi_decode(messages.order_status(order))
    assert name == "orderStatus"
    assert args == (12, "Submitted", 40.0, 60.0, 190.1, 1_234_567_890, 0, 190.2, 3, "", 0.0)
    assert ib_async_decode(messages.order_status(order))[1][:6] == (12, "Submitted", 40.0, 60.0, 190.1,
                                                                     1_234_567_890)


@pytest.mark.parametrize("commission", [None, 1.25])
def test_open_order(commission):
    order = an_order(status="PreSubmitted", filled=0.0)
    message = messages.open_order(order, commission=commission)
    assert len(fields_of(message)) == 120
    name, (order_id, contract, decoded, state) = ibapi_decode(message)
    assert (name, order_id) == ("openOrder", 12)
    assert (contract.symbol, contract.secType, contract.exchange, contract.currency) == ("AAPL", "STK", "SMART",
                                                                                         "USD")
    assert (decoded.action, decoded.totalQuantity, decoded.orderType) == ("BUY", 100.0, "MKT")
    assert (decoded.orderRef, decoded.clientId, decoded.permId, decoded.account) == (
        "run-1-0001", 3, 1_234_567_890, "DU1234567")
    assert decoded.lmtPrice == UNSET_DOUBLE and decoded.auxPrice == UNSET_DOUBLE
    assert state.status == "PreSubmitted"
    assert state.commission == (UNSET_DOUBLE if commission is None else commission)

    _, (order_id, contract, decoded, state) = ib_async_decode(message)
    assert (order_id, contract.symbol, decoded.orderRef, decoded.permId, decoded.clientId) == (
        12, "AAPL", "run-1-0001", 1_234_567_890, 3)
    assert state.status == "PreSubmitted"


def test_open_order_with_a_limit_price():
    message = messages.open_order(an_order(order_type="LMT", lmt_price=101.5, status="Inactive"))
    _, (_, _, decoded, state) = ibapi_decode(message)
    assert decoded.lmtPrice == 101.5 and state.status == "Inactive"


def test_completed_order():
    name, (contract, decoded, state) = ibapi_decode(messages.completed_order(an_order(), NOW))
    assert name == "completedOrder"
    assert contract.symbol == "AAPL" and decoded.orderRef == "run-1-0001" and decoded.permId == 1_234_567_890
    assert decoded.filledQuantity == 100.0
    assert (state.status, state.completedStatus) == ("Filled", "Filled")
    assert state.completedTime == "20250314 15:30:05 UTC"
    _, (contract, decoded, state) = ib_async_decode(messages.completed_order(an_order(), NOW))
    assert (decoded.orderRef, decoded.permId, state.status) == ("run-1-0001", 1_234_567_890, "Filled")


@pytest.mark.parametrize("req_id", [-1, 42])
def test_execution_data(req_id):
    name, (decoded_req, contract, execution) = ibapi_decode(messages.execution_data(req_id, AN_EXECUTION))
    assert (name, decoded_req) == ("execDetails", req_id)
    assert (contract.symbol, contract.exchange, contract.currency) == ("AAPL", "ISLAND", "USD")
    assert (execution.execId, execution.orderId, execution.permId, execution.clientId) == (
        "0000e0d5.6553a1b2.01.01", 12, 1_234_567_890, 3)
    assert (execution.acctNumber, execution.side, execution.shares, execution.price) == (
        "DU1234567", "BOT", 100.0, 190.25)
    assert (execution.cumQty, execution.avgPrice, execution.orderRef) == (100.0, 190.25, "run-1-0001")
    assert execution.time == "20250314-15:30:05"  # today's TWS default: UTC with a dash
    assert execution.lastLiquidity == 2

    _, (decoded_req, contract, execution) = ib_async_decode(messages.execution_data(req_id, AN_EXECUTION))
    assert (decoded_req, execution.execId, execution.orderRef, execution.permId) == (
        req_id, "0000e0d5.6553a1b2.01.01", "run-1-0001", 1_234_567_890)
    assert execution.time == NOW


def test_commission_report():
    name, (report,) = ibapi_decode(messages.commission_report(AN_EXECUTION))
    assert name == "commissionReport"
    assert (report.execId, report.commission, report.currency) == ("0000e0d5.6553a1b2.01.01", 1.0, "USD")
    assert report.realizedPNL == UNSET_DOUBLE
    _, (report,) = ib_async_decode(messages.commission_report(AN_EXECUTION))
    assert (report.execId, report.commission) == ("0000e0d5.6553a1b2.01.01", 1.0)


def test_error_message():
    assert ibapi_decode(messages.error(7, 201, "Order rejected - reason:x")) == (
        "error", (7, 201, "Order rejected - reason:x"))
    assert ib_async_decode(messages.error(7, 201, "Order rejected - reason:x")) == (
        "error", (7, 201, "Order rejected - reason:x", ""))


def test_position():
    name, (account, contract, position, avg_cost) = ibapi_decode(messages.position("DU1", AAPL, -5.0, 190.5))
    assert (name, account, contract.symbol, position, avg_cost) == ("position", "DU1", "AAPL", -5.0, 190.5)
    assert ib_async_decode(messages.position("DU1", AAPL, -5.0, 190.5))[1][2:] == (-5.0, 190.5)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (messages.managed_accounts(["DU1", "DU2"]), ("managedAccounts", ("DU1,DU2",))),
        (messages.next_valid_id(17), ("nextValidId", (17,))),
        (messages.current_time(NOW), ("currentTime", (int(NOW.timestamp()),))),
        (messages.open_order_end(), ("openOrderEnd", ())),
        (messages.execution_data_end(5), ("execDetailsEnd", (5,))),
        (messages.completed_orders_end(), ("completedOrdersEnd", ())),
        (messages.position_end(), ("positionEnd", ())),
        (messages.account_value("NetLiquidation", "1.00", "USD", "DU1"),
         ("updateAccountValue", ("NetLiquidation", "1.00", "USD", "DU1"))),
        (messages.account_update_time(NOW), ("updateAccountTime", ("15:30",))),
        (messages.account_download_end("DU1"), ("accountDownloadEnd", ("DU1",))),
        (messages.account_summary_end(3), ("accountSummaryEnd", (3,))),
        (messages.position_multi_end(4), ("positionMultiEnd", (4,))),
        (messages.account_update_multi_end(6), ("accountUpdateMultiEnd", (6,))),
    ],
)
def test_short_messages(message, expected):
    assert ibapi_decode(message) == expected
    assert ib_async_decode(message) == expected


def test_handshake_reply_is_version_and_time():
    assert fields_of(messages.handshake_reply(157, NOW)) == ["157", "20250314 15:30:05 UTC"]


def test_handshake_time_is_in_the_login_zone_with_its_standard_abbreviation():
    # TWS wrote "EST" in May and "CET" in October: the zone's standard name, all year.
    assert fields_of(messages.handshake_reply(157, NOW, "US/Eastern")) == ["157", "20250314 11:30:05 EST"]
    assert fields_of(messages.handshake_reply(157, NOW, "Europe/Berlin")) == ["157", "20250314 16:30:05 CET"]


@pytest.mark.parametrize(("form", "written"), [
    ("local", "20250314  11:30:05"),  # two spaces, the TWS login zone (EDT that day)
    ("utc", "20250314-15:30:05"),
    ("zone", "20250314 11:30:05 US/Eastern"),
])
def test_execution_time_forms(form, written):
    times = ExecutionTimes(form, "US/Eastern")
    name, (_, _, execution) = ibapi_decode(messages.execution_data(-1, AN_EXECUTION, times))
    assert execution.time == written
