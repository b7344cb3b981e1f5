"""Client → server messages the simulator understands, parsed from their fields."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

from execgw.sim.records import Contract, Execution
from execgw.sim.wire import parse_float, parse_int


class Incoming(IntEnum):
    """Message ids a client sends (ibapi ``message.OUT``)."""

    REQ_MKT_DATA = 1
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_CURRENT_TIME = 49
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_POSITIONS_MULTI = 74
    CANCEL_POSITIONS_MULTI = 75
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_COMPLETED_ORDERS = 99


@dataclass(frozen=True)
class PlaceOrder:
    """A PLACE_ORDER at server version 157: its head (positions 0–34) and the two attributes of
    its tail today's TWS refuses; the rest of the tail is ignored."""

    order_id: int
    contract: Contract
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool = False
    e_trade_only: bool = False
    firm_quote_only: bool = False


HIDDEN = 34
"""Last field of the fixed head; BAG orders put their combo legs right after it."""
E_TRADE_ONLY_IN_TAIL = 18
"""Position in the tail (after the head and a BAG's combo legs) in ibapi 9.81 ``placeOrder`` at
157: sharesAllocation,
discretionaryAmt, goodAfterTime, goodTillDate, faGroup, faMethod, faPercentage, faProfile,
modelCode, shortSaleSlot, designatedLocation, exemptCode, ocaType, rule80A, settlingFirm,
allOrNone, minQty, percentOffset, then eTradeOnly (18) and firmQuoteOnly (19)."""


def _tail_start(f: list[str]) -> int:
    """Index of the first field after the head and, for a BAG, its combo legs and routing params."""
    at = HIDDEN + 1
    if f[4].upper() != "BAG":
        return at
    legs = parse_int(f[at]) or 0
    at += 1 + 8 * legs  # conId, ratio, action, exchange, openClose, shortSaleSlot, location, exemptCode
    priced = parse_int(f[at]) or 0
    at += 1 + priced
    params = parse_int(f[at]) or 0
    return at + 1 + 2 * params


def _flag(f: list[str], index: int) -> bool:
    """A bool of the tail; a message cut short (a bare client sending only the head) means false."""
    return index < len(f) and bool(parse_int(f[index]) or 0)


def parse_place_order(fields: list[str]) -> PlaceOrder:
    """Raises ValueError (or IndexError) when the head is not a version-157 PLACE_ORDER."""
    f = fields
    contract = Contract(
        con_id=parse_int(f[2]) or 0,
        symbol=f[3],
        sec_type=f[4],
        last_trade_date=f[5],
        strike=parse_float(f[6]) or 0.0,
        right=f[7],
        multiplier=f[8],
        exchange=f[9],
        primary_exchange=f[10],
        currency=f[11],
        local_symbol=f[12],
        trading_class=f[13],
    )
    order_id = parse_int(f[1])
    quantity = parse_float(f[17])
    if order_id is None or quantity is None:
        raise ValueError("order id and total quantity are required")
    return PlaceOrder(
        order_id=order_id,
        contract=contract,
        action=f[16].upper(),
        quantity=quantity,
        order_type=f[18].upper(),
        lmt_price=parse_float(f[19]),
        aux_price=parse_float(f[20]),
        tif=f[21],
        account=f[23],
        order_ref=f[26],
        # An absent transmit flag means transmit, as TWS reads it.
        transmit=(parse_int(f[27]) if f[27] else 1) != 0,
        parent_id=parse_int(f[28]) or 0,
        outside_rth=_flag(f, 33),
        e_trade_only=_flag(f, _tail_start(f) + E_TRADE_ONLY_IN_TAIL),
        firm_quote_only=_flag(f, _tail_start(f) + E_TRADE_ONLY_IN_TAIL + 1),
    )


@dataclass(frozen=True)
class ExecutionFilter:
    """REQ_EXECUTIONS filter; empty or zero fields do not filter."""

    client_id: int = 0
    account: str = ""
    since: dt.datetime | None = None
    symbol: str = ""
    sec_type: str = ""
    exchange: str = ""
    side: str = ""

    def matches(self, execution: Execution) -> bool:
        if self.client_id and execution.client_id != self.client_id:
            return False
        if self.account and execution.account != self.account:
            return False
        if self.since and execution.time < self.since:
            return False
        if self.symbol and execution.contract.symbol.upper() != self.symbol.upper():
            return False
        if self.sec_type and execution.contract.sec_type.upper() != self.sec_type.upper():
            return False
        # The execution's exchange is where it happened, but clients filter by the routing
        # exchange they sent (usually SMART), so either one matches.
        if self.exchange and self.exchange.upper() not in (
            execution.contract.exchange.upper(),
            execution.venue.upper(),
        ):
            return False
        return not self.side or _side_of(self.side) == execution.side


def _side_of(side: str) -> str:
    side = side.upper()
    return {"BUY": "BOT", "SELL": "SLD", "SSHORT": "SLD"}.get(side, side)


def parse_execution_filter(fields: list[str]) -> tuple[int, ExecutionFilter]:
    """(request id, filter) from ``7,3,reqId,clientId,acctCode,time,symbol,secType,exchange,side``."""
    padded = fields + [""] * (10 - len(fields))
    return parse_int(padded[2]) or 0, ExecutionFilter(
        client_id=parse_int(padded[3]) or 0,
        account=padded[4],
        since=parse_filter_time(padded[5]),
        symbol=padded[6],
        sec_type=padded[7],
        exchange=padded[8],
        side=padded[9],
    )


def parse_filter_time(value: str) -> dt.datetime | None:
    """``yyyymmdd-hh:mm:ss`` (or with a space), in the simulator's clock, which is UTC."""
    value = value.strip()
    if not value:
        return None
    head = value.replace("-", " ", 1)[:17]
    try:
        parsed = dt.datetime.strptime(head, "%Y%m%d %H:%M:%S")
    except ValueError:
        return None  # TWS ignores a time it cannot read rather than failing the request
    return parsed.replace(tzinfo=dt.UTC)
