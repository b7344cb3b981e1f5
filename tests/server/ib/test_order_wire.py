"""What the gateway's MKT order looks like on the wire, byte for byte, as today's TWS reads it.

A bare TCP peer plays TWS at server version 157 just far enough to take one PLACE_ORDER, so the
test sees exactly what `IBSession.place_market_order` makes ibapi send, whatever ibapi version
is installed. Today's TWS refuses the eTradeOnly / firmQuoteOnly attributes (10268 / 10269) that
ibapi 9.81's `Order()` sets by default, and creates no order at all.
"""

from __future__ import annotations

import asyncio
import struct

from execgw.server.ib import events as ev
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.session import IBSession, MarketOrder

PLACE_ORDER = "3"


async def _read_message(reader: asyncio.StreamReader) -> list[str]:
    size = struct.unpack(">I", await reader.readexactly(4))[0]
    return (await reader.readexactly(size)).decode("ascii").split("\0")[:-1]


def _frame(*fields: object) -> bytes:
    payload = "".join(f"{f}\0" for f in fields).encode("ascii")
    return struct.pack(">I", len(payload)) + payload


async def _capture_place_order() -> list[str]:
    placed: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    async def tws(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(4) == b"API\0"
        await _read_message(reader)  # "v100..157"
        writer.write(_frame(157, "20261124 10:00:00 EST"))
        start_api = await _read_message(reader)
        assert start_api[0] == "71"
        writer.write(_frame(15, 1, "DU1234567") + _frame(9, 1, 500))
        await writer.drain()
        while not placed.done():
            fields = await _read_message(reader)
            if fields[0] == PLACE_ORDER:
                placed.set_result(fields)
        writer.close()

    server = await asyncio.start_server(tws, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = IBSession(Endpoint("paper", "127.0.0.1", port, 7), lambda event: None, connect_timeout=5)
    session.start()
    try:
        assert await session.wait_ready(10), "the session never completed the handshake"
        await session.place_market_order(MarketOrder(
            order_id=500, order_ref="run-1-ord-1", symbol="AAPL", sec_type="STK", exchange="SMART",
            primary_exchange="", currency="USD", side="BUY", quantity=100.0, account="DU1234567",
        ))
        return await asyncio.wait_for(placed, 10)
    finally:
        await session.stop()
        server.close()


# The whole message for one 100-share MKT order at server version 157, as ibapi writes it.
EXPECTED_PLACE_ORDER = [
    "3", "500", "0", "AAPL", "STK", "", "0.0", "", "", "SMART", "", "USD", "", "", "", "",  # contract
    "BUY", "100.0", "MKT", "", "", "DAY", "", "DU1234567", "", "0", "run-1-ord-1", "1",  # ..orderRef, transmit
    "0", "0", "0", "0", "0", "0", "0", "", "0", "", "", "", "", "", "", "", "0", "", "-1", "0",  # ..ocaType
    "", "", "0", "", "",  # rule80A, settlingFirm, allOrNone, minQty, percentOffset
    "0", "0", "",  # eTradeOnly, firmQuoteOnly, nbboPriceCap: what 10268 / 10269 are about
    "0", "", "", "", "", "", "0", "", "", "", "", "0", "", "", "", "", "", "", "", "", "", "", "0", "", "",
    "0", "0", "", "", "0", "", "0", "0", "0", "0", "",
    "1.7976931348623157e+308", "1.7976931348623157e+308", "1.7976931348623157e+308",
    "1.7976931348623157e+308", "1.7976931348623157e+308",
    "0", "", "", "", "1.7976931348623157e+308", "", "", "", "", "0", "0", "0", "",
]
ETRADE_ONLY_AT, FIRM_QUOTE_ONLY_AT = 53, 54
STRIKE_AT = 6
# The one field the two ibapi releases we support write differently for a stock: ibapi 9.81
# sends the unset strike as "0.0", ibapi 10.x as "" (both mean "no strike" to TWS).
UNSET_STRIKE = ("0.0", "")


def test_place_order_sends_only_what_todays_tws_accepts() -> None:
    fields = asyncio.run(_capture_place_order())

    # ibapi 9.81's Order() would send "1", "1" here; today's TWS answers 10268 and keeps no order.
    assert (fields[ETRADE_ONLY_AT], fields[FIRM_QUOTE_ONLY_AT]) == ("0", "0")
    assert fields[21] == "DAY", "time in force is explicit, never the TWS preset"
    assert fields[26] == "run-1-ord-1", "orderRef carries the client_order_id"
    assert fields[STRIKE_AT] in UNSET_STRIKE
    assert fields[:STRIKE_AT] + fields[STRIKE_AT + 1:] == EXPECTED_PLACE_ORDER[:STRIKE_AT] + EXPECTED_PLACE_ORDER[STRIKE_AT + 1:]


def test_connected_event_is_what_the_handshake_said() -> None:
    """The peer above is a faithful enough TWS: the session reads its accounts and order id."""
    seen: list[ev.IbEvent] = []

    async def scenario() -> None:
        async def tws(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(4)
            await _read_message(reader)
            writer.write(_frame(157, "20261124 10:00:00 EST"))
            await _read_message(reader)
            writer.write(_frame(15, 1, "DU1234567") + _frame(9, 1, 500))
            await writer.drain()
            await reader.read()

        server = await asyncio.start_server(tws, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        session = IBSession(Endpoint("paper", "127.0.0.1", port, 7), seen.append, connect_timeout=5)
        session.start()
        try:
            assert await session.wait_ready(10)
        finally:
            await session.stop()
            server.close()

    asyncio.run(scenario())
    connected = [e for e in seen if isinstance(e, ev.Connected)]
    assert connected and connected[0].next_valid_id == 500 and connected[0].accounts == ("DU1234567",)
