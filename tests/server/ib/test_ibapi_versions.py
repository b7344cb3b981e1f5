"""The session layer under either ibapi line: `ibapi` 9.81 (PyPI `ibapi`) and 10.x (PyPI
`ibapi-stable`). CI runs this file in both venvs; each test says which difference it covers.

The callback tests call the translator the way each ibapi version calls it, whatever version is
installed; the wire tests go through the installed ibapi to a bare TCP peer at server version 157.
"""

from __future__ import annotations

import asyncio
import struct
from decimal import Decimal
from types import SimpleNamespace

import ibapi
import pytest
from ibapi.contract import Contract
from ibapi.execution import Execution

from execgw.server.ib import events as ev
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.session import IBSession, MarketOrder
from execgw.server.ib.wrapper import CallbackTranslator

UNSET_DOUBLE = 1.7976931348623157e308


def _translator() -> tuple[CallbackTranslator, list[ev.IbEvent]]:
    seen: list[ev.IbEvent] = []
    return CallbackTranslator(Endpoint("paper", "127.0.0.1", 4002, 1), seen.append), seen


@pytest.mark.parametrize("args", [
    pytest.param((201, "Order rejected - reason:x"), id="9.81: code, message"),
    pytest.param((201, "Order rejected - reason:x", ""), id="10.1x-10.3x: code, message, json"),
    pytest.param((0, 201, "Order rejected - reason:x", ""), id="10.37+: time 0 below v194"),
    pytest.param((1764000000000, 201, "Order rejected - reason:x"), id="10.37+: time, no json"),
])
def test_error_in_every_signature(args: tuple) -> None:
    translator, seen = _translator()
    translator.error(12, *args)
    (error,) = seen
    assert isinstance(error, ev.IbError)
    assert (error.req_id, error.code, error.message) == (12, 201, "Order rejected - reason:x")
    assert translator.last_error == "201 Order rejected - reason:x"


def test_the_advanced_reject_json_does_not_replace_the_message() -> None:
    translator, seen = _translator()
    translator.error(12, 0, 201, "Order rejected", '{"rejectReason":"x"}')
    assert seen[0].message == "Order rejected"


def test_commission_from_9_81s_commission_report() -> None:
    translator, seen = _translator()
    translator.commissionReport(SimpleNamespace(
        execId="e.01", commission=1.25, currency="USD", realizedPNL=UNSET_DOUBLE, yield_=UNSET_DOUBLE,
        yieldRedemptionDate=0))
    assert seen == [ev.CommissionReport("127.0.0.1:4002", "e.01", 1.25, "USD", None, seen[0].received_at)]


def test_commission_from_10s_commission_and_fees_report() -> None:
    translator, seen = _translator()
    translator.commissionAndFeesReport(SimpleNamespace(
        execId="e.01", commissionAndFees=1.25, currency="USD", realizedPNL=3.5, yield_=UNSET_DOUBLE,
        yieldRedemptionDate=0))
    assert seen == [ev.CommissionReport("127.0.0.1:4002", "e.01", 1.25, "USD", 3.5, seen[0].received_at)]


def test_decimal_quantities_become_floats() -> None:
    translator, seen = _translator()
    translator.orderStatus(5, "Filled", Decimal("100"), Decimal("0"), 190.5, 77, 0, 190.5, 1, "", 0.0)
    contract = Contract()
    contract.symbol, contract.secType, contract.currency = "AAPL", "STK", "USD"
    execution = Execution()
    execution.execId, execution.time = "e.01", "20260715  10:00:01"
    execution.shares, execution.cumQty = Decimal("33.5"), Decimal("100")
    execution.price, execution.avgPrice = 190.5, 190.5
    translator.execDetails(-1, contract, execution)
    status, fill = seen
    assert (status.filled, status.remaining) == (100.0, 0.0) and type(status.filled) is float
    assert (fill.shares, fill.cum_qty) == (33.5, 100.0) and type(fill.shares) is float


# -- on the wire, through the installed ibapi ------------------------------------------------------


def _frame(*fields: object) -> bytes:
    payload = "".join(f"{f}\0" for f in fields).encode("ascii")
    return struct.pack(">I", len(payload)) + payload


async def _read(reader: asyncio.StreamReader) -> list[str]:
    size = struct.unpack(">I", await reader.readexactly(4))[0]
    return (await reader.readexactly(size)).decode("ascii").split("\0")[:-1]


async def _place_then_cancel() -> dict[str, list[str]]:
    """A TWS at server version 157 just far enough to take one order and its cancel."""
    seen: dict[str, list[str]] = {}
    got_both = asyncio.Event()

    async def tws(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(4)
        await _read(reader)
        writer.write(_frame(157, "20261124 10:00:00 EST"))
        await _read(reader)  # START_API
        writer.write(_frame(15, 1, "DU1234567") + _frame(9, 1, 500))
        await writer.drain()
        while not got_both.is_set():
            fields = await _read(reader)
            seen[fields[0]] = fields
            if "3" in seen and "4" in seen:
                got_both.set()
        writer.close()

    server = await asyncio.start_server(tws, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = IBSession(Endpoint("paper", "127.0.0.1", port, 7), lambda event: None, connect_timeout=5)
    session.start()
    try:
        assert await session.wait_ready(10)
        await session.place_market_order(MarketOrder(
            order_id=500, order_ref="run-1-ord-1", symbol="AAPL", sec_type="STK", exchange="SMART",
            primary_exchange="", currency="USD", side="BUY", quantity=100.0, account="DU1234567",
        ))
        await session.cancel_order(500)
        await asyncio.wait_for(got_both.wait(), 10)
        return seen
    finally:
        await session.stop()
        server.close()


def test_place_and_cancel_go_out_as_a_v157_tws_reads_them() -> None:
    seen = asyncio.run(_place_then_cancel())
    place, cancel = seen["3"], seen["4"]
    assert cancel == ["4", "1", "500"], f"ibapi {ibapi.__file__}: cancel at v157 is 4,1,orderId"
    # The fixed positions a TWS (and the simulator) reads, identical under 9.81 and 10.x.
    assert place[1:5] == ["500", "0", "AAPL", "STK"]
    assert place[9] == "SMART" and place[11] == "USD"
    assert place[16:19] == ["BUY", "100.0", "MKT"] or place[16:19] == ["BUY", "100", "MKT"]
    assert place[21] == "DAY" and place[23] == "DU1234567" and place[26] == "run-1-ord-1" and place[27] == "1"
    # eTradeOnly, firmQuoteOnly: 9.81 sends what we set (False), 10.x always sends False itself.
    assert (place[53], place[54]) == ("0", "0")
