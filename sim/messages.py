"""Server → client messages in the server-version-157 layout, each returned as one framed message.

Layouts follow ibapi 9.81's ``decoder.py``/``orderdecoder.py`` and ib_async 2.1's ``decoder.py``
read at version 157. ibapi decodes integer fields with ``int()``, so an integer field must be an
integer string or empty: a ``"0.0"`` in the wrong place kills its reader thread.
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum

from execgw.sim.records import Contract, Execution, Order
from execgw.sim.todays_tws import ExecutionTimes, connection_time
from execgw.sim.wire import UNSET_DOUBLE_TEXT, frame, frame_texts, text


class Outgoing(IntEnum):
    """Message ids the server sends (ibapi ``message.IN``)."""

    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    CURRENT_TIME = 49
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY_END = 64
    POSITION_MULTI_END = 72
    ACCOUNT_UPDATE_MULTI_END = 74
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


def handshake_reply(version: int, now: dt.datetime, zone: str = "UTC") -> bytes:
    """The one message that answers ``API\\0 v100..157``: version and connection time, written in
    the TWS login zone (``20240115 10:00:00 EST``)."""
    return frame([version, connection_time(now, zone)])


def error(req_id: int, code: int, message: str) -> bytes:
    return frame([Outgoing.ERR_MSG, 2, req_id, code, message])


def managed_accounts(accounts: list[str]) -> bytes:
    return frame([Outgoing.MANAGED_ACCTS, 1, ",".join(accounts)])


def next_valid_id(order_id: int) -> bytes:
    return frame([Outgoing.NEXT_VALID_ID, 1, order_id])


def current_time(now: dt.datetime) -> bytes:
    return frame([Outgoing.CURRENT_TIME, 1, int(now.timestamp())])


def open_order_end() -> bytes:
    return frame([Outgoing.OPEN_ORDER_END, 1])


def execution_data_end(req_id: int) -> bytes:
    return frame([Outgoing.EXECUTION_DATA_END, 1, req_id])


def completed_orders_end() -> bytes:
    return frame([Outgoing.COMPLETED_ORDERS_END])


def position_end() -> bytes:
    return frame([Outgoing.POSITION_END, 1])


def account_update_time(now: dt.datetime) -> bytes:
    return frame([Outgoing.ACCT_UPDATE_TIME, 1, now.strftime("%H:%M")])


def account_value(key: str, value: str, currency: str, account: str) -> bytes:
    return frame([Outgoing.ACCT_VALUE, 2, key, value, currency, account])


def account_download_end(account: str) -> bytes:
    return frame([Outgoing.ACCT_DOWNLOAD_END, 1, account])


def account_summary_end(req_id: int) -> bytes:
    return frame([Outgoing.ACCOUNT_SUMMARY_END, 1, req_id])


def position_multi_end(req_id: int) -> bytes:
    return frame([Outgoing.POSITION_MULTI_END, 1, req_id])


def account_update_multi_end(req_id: int) -> bytes:
    return frame([Outgoing.ACCOUNT_UPDATE_MULTI_END, 1, req_id])


def position(account: str, contract: Contract, quantity: float, avg_cost: float) -> bytes:
    return frame([Outgoing.POSITION_DATA, 3, account, *_contract_fields(contract), quantity, avg_cost])


def order_status(order: Order) -> bytes:
    # Written field by field: a flood sends one per execution.
    return frame_texts(
        [
            "3",
            str(order.order_id),
            order.status,
            text(order.filled),
            text(order.remaining),
            text(order.avg_fill_price),
            str(order.perm_id),
            "0",  # parentId
            text(order.last_fill_price),
            str(order.client_id),
            order.why_held,
            "0",  # mktCapPrice
        ]
    )


def _contract_fields(c: Contract) -> list[object]:
    # conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency,
    # localSymbol, tradingClass: the block shared by openOrder, completedOrder, position.
    return [
        c.con_id,
        c.symbol,
        c.sec_type,
        c.last_trade_date,
        c.strike,
        c.right,
        c.multiplier,
        c.exchange,
        c.currency,
        c.local_symbol or c.symbol,
        c.trading_class or (c.symbol if c.sec_type == "STK" else ""),
    ]


def _price_or_empty(price: float | None) -> str:
    return "" if price is None else text(price)


def open_order(order: Order, commission: float | None = None) -> bytes:
    """OPEN_ORDER: field list of ``Decoder.processOpenOrder`` at version 157 (120 fields).

    ``commission`` fills the orderState commission, as TWS does in the last openOrder of a fill.
    """
    commission_text = "" if commission is None else text(commission)
    fields: list[object] = [
        Outgoing.OPEN_ORDER,
        order.order_id,
        *_contract_fields(order.contract),
        order.action,
        order.quantity,
        order.order_type,
        _price_or_empty(order.lmt_price),
        _price_or_empty(order.aux_price),
        order.tif or "DAY",
        "",  # ocaGroup
        order.account,
        "",  # openClose
        0,  # origin: customer
        order.order_ref,
        order.client_id,
        order.perm_id,
        0,  # outsideRth
        0,  # hidden
        0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # sharesAllocation (deprecated)
        "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile
        "",  # modelCode
        "",  # goodTillDate
        "",  # rule80A
        "",  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
        0,  # auctionStrategy
        "", "", "",  # startingPrice, stockRefPrice, delta
        "", "",  # stockRangeLower, stockRangeUpper
        0,  # displaySize
        0, 0, 0,  # blockOrder, sweepToFill, allOrNone
        "",  # minQty
        0,  # ocaType
        0, 0,  # eTradeOnly, firmQuoteOnly
        "",  # nbboPriceCap
        0,  # parentId
        0,  # triggerMethod
        "",  # volatility
        0,  # volatilityType
        "",  # deltaNeutralOrderType: empty, so no delta-neutral block follows
        "",  # deltaNeutralAuxPrice
        0,  # continuousUpdate
        0,  # referencePriceType
        "", "",  # trailStopPrice, trailingPercent
        "", "",  # basisPoints, basisPointsType
        "",  # comboLegsDescrip
        0,  # comboLegs count
        0,  # orderComboLegs count
        0,  # smartComboRoutingParams count
        "", "",  # scaleInitLevelSize, scaleSubsLevelSize
        "",  # scalePriceIncrement: unset, so no scale block follows
        "",  # hedgeType: empty, so no hedgeParam
        0,  # optOutSmartRouting
        "", "",  # clearingAccount, clearingIntent
        0,  # notHeld
        0,  # deltaNeutralContract present
        "",  # algoStrategy: empty, so no algo params
        0,  # solicited
        0,  # whatIf
        order.status,
        "", "", "", "", "", "",  # margin before / change (server >= 142)
        "", "", "",  # initMarginAfter, maintMarginAfter, equityWithLoanAfter
        commission_text,
        "", "",  # minCommission, maxCommission
        "USD" if commission is not None else "",  # commissionCurrency
        "",  # warningText
        0, 0,  # randomizeSize, randomizePrice
        0,  # conditions count (no PEG BENCH block: MKT)
        "",  # adjustedOrderType
        "", "", "",  # triggerPrice, trailStopPrice, lmtPriceOffset
        "", "", "",  # adjustedStopPrice, adjustedStopLimitPrice, adjustedTrailingAmount
        0,  # adjustableTrailingUnit
        "", "", "",  # softDollarTier name, value, displayName
        "",  # cashQty
        0,  # dontUseAutoPriceForHedge
        0,  # isOmsContainer
        0,  # discretionaryUpToLimitPrice
        0,  # usePriceMgmtAlgo
    ]
    return frame(fields)


def completed_order(order: Order, completed_at: dt.datetime) -> bytes:
    """COMPLETED_ORDER: field list of ``Decoder.processCompletedOrderMsg`` (no orderId, no clientId)."""
    fields: list[object] = [
        Outgoing.COMPLETED_ORDER,
        *_contract_fields(order.contract),
        order.action,
        order.quantity,
        order.order_type,
        _price_or_empty(order.lmt_price),
        _price_or_empty(order.aux_price),
        order.tif or "DAY",
        "",  # ocaGroup
        order.account,
        "",  # openClose
        0,  # origin
        order.order_ref,
        order.perm_id,
        0, 0,  # outsideRth, hidden
        0,  # discretionaryAmt
        "",  # goodAfterTime
        "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile
        "",  # modelCode
        "",  # goodTillDate
        "",  # rule80A
        "",  # percentOffset
        "",  # settlingFirm
        0, "", -1,  # shortSaleSlot, designatedLocation, exemptCode
        "", "", "",  # startingPrice, stockRefPrice, delta
        "", "",  # stockRangeLower, stockRangeUpper
        0,  # displaySize
        0, 0,  # sweepToFill, allOrNone
        "",  # minQty
        0,  # ocaType
        0,  # triggerMethod
        "", 0, "", "",  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
        0, 0,  # continuousUpdate, referencePriceType
        "", "",  # trailStopPrice, trailingPercent
        "",  # comboLegsDescrip
        0, 0,  # comboLegs count, orderComboLegs count
        0,  # smartComboRoutingParams count
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        "", "",  # clearingAccount, clearingIntent
        0,  # notHeld
        0,  # deltaNeutralContract present
        "",  # algoStrategy
        0,  # solicited
        order.status,
        0, 0,  # randomizeSize, randomizePrice
        0,  # conditions count
        "", "",  # trailStopPrice, lmtPriceOffset
        "",  # cashQty
        0, 0,  # dontUseAutoPriceForHedge, isOmsContainer
        "",  # autoCancelDate
        order.filled,
        0,  # refFuturesConId
        0,  # autoCancelParent
        "",  # shareholder
        0, 0,  # imbalanceOnly, routeMarketableToBbo
        0,  # parentPermId
        completed_at.strftime("%Y%m%d %H:%M:%S") + " UTC",
        order.status,  # completedStatus
    ]
    return frame(fields)


UTC_TIMES = ExecutionTimes("utc")


def execution_data(req_id: int, execution: Execution, times: ExecutionTimes = UTC_TIMES) -> bytes:
    """EXECUTION_DATA at version 157: no version field, reqId first (-1 for a live fill); the time
    in the form ``times`` writes (the scenario's ``execution_time_format``)."""
    c = execution.contract
    return frame_texts(
        [
            "11",
            str(req_id),
            str(execution.order_id),
            str(c.con_id),
            c.symbol,
            c.sec_type,
            c.last_trade_date,
            text(c.strike),
            c.right,
            c.multiplier,
            execution.venue or c.exchange,
            c.currency,
            c.local_symbol or c.symbol,
            c.trading_class or (c.symbol if c.sec_type == "STK" else ""),
            execution.exec_id,
            times.format(execution.time),
            execution.account,
            execution.venue or c.exchange,
            execution.side,
            text(execution.shares),
            text(execution.price),
            str(execution.perm_id),
            str(execution.client_id),
            "0",  # liquidation
            text(execution.cum_qty),
            text(execution.avg_price),
            execution.order_ref,
            "",  # evRule
            "",  # evMultiplier
            "",  # modelCode
            "2",  # lastLiquidity: a market order removes liquidity
        ]
    )


def commission_report(execution: Execution) -> bytes:
    return frame_texts(
        [
            "59",
            "1",
            execution.exec_id,
            text(execution.commission),
            execution.commission_currency,
            UNSET_DOUBLE_TEXT,  # realizedPNL: TWS leaves it unset on opening trades
            UNSET_DOUBLE_TEXT,  # yield
            "",  # yieldRedemptionDate: ibapi reads an int, so empty rather than DBL_MAX
        ]
    )
