"""SubmitRun validation: every field checked before anything is written or sent.

Returns every violation at once, each naming its field (`orders[2].quantity`), so a caller can
fix a whole request in one go.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta

CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .\-/]{0,31}$")
CODE = re.compile(r"^[A-Z0-9.]{1,32}$")
SEC_TYPE = re.compile(r"^[A-Z]{2,8}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
ACCOUNT = re.compile(r"^[A-Za-z0-9]{1,32}$")
SIDES = ("BUY", "SELL")
MODES = ("paper", "live")


@dataclass(frozen=True)
class OrderRequest:
    """One order: as the caller sent it (side already 'BUY'/'SELL'/'' from the enum), and after
    validation with defaults applied and codes upper-cased."""

    client_order_id: str
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    side: str
    quantity: float
    order_type: str = "MKT"


@dataclass(frozen=True)
class RunRequest:
    mode: str
    account: str
    orders: tuple[OrderRequest, ...]
    deadline: timedelta
    submitted_by: str


@dataclass(frozen=True)
class Violation:
    field: str
    description: str


def validate_run(
    *,
    mode: str,
    account: str,
    orders: list[OrderRequest],
    deadline: timedelta | None,
    submitted_by: str,
    max_orders: int,
    default_deadline: timedelta,
    max_deadline: timedelta,
) -> tuple[RunRequest | None, list[Violation]]:
    problems: list[Violation] = []
    if mode not in MODES:
        problems.append(Violation("mode", "must be TRADING_MODE_PAPER or TRADING_MODE_LIVE"))
    if account and not ACCOUNT.match(account):
        problems.append(Violation("account", "must be 1-32 letters or digits"))
    if not orders:
        problems.append(Violation("orders", "at least one order is required"))
    elif len(orders) > max_orders:
        problems.append(Violation("orders", f"at most {max_orders} orders per run, got {len(orders)}"))
    if deadline is not None and not (timedelta(0) < deadline <= max_deadline):
        problems.append(
            Violation("deadline", f"must be positive and at most {max_deadline.total_seconds():g}s")
        )
    if len(submitted_by) > 128:
        problems.append(Violation("submitted_by", "at most 128 characters"))

    seen: dict[str, int] = {}
    accepted: list[OrderRequest] = []
    for index, raw in enumerate(orders):
        order, order_problems = _validate_order(index, raw)
        problems.extend(order_problems)
        if raw.client_order_id in seen:
            problems.append(
                Violation(
                    f"orders[{index}].client_order_id",
                    f"duplicate of orders[{seen[raw.client_order_id]}].client_order_id {raw.client_order_id!r}",
                )
            )
        else:
            seen[raw.client_order_id] = index
        if order is not None:
            accepted.append(order)
    if problems:
        return None, problems
    return RunRequest(mode, account, tuple(accepted), deadline or default_deadline, submitted_by), []


def _validate_order(index: int, raw: OrderRequest) -> tuple[OrderRequest | None, list[Violation]]:
    where = f"orders[{index}]"
    problems: list[Violation] = []

    def check(ok: bool, field: str, description: str) -> None:
        if not ok:
            problems.append(Violation(f"{where}.{field}", description))

    sec_type = raw.sec_type.strip().upper() or "STK"
    exchange = raw.exchange.strip().upper() or "SMART"
    primary = raw.primary_exchange.strip().upper()
    currency = raw.currency.strip().upper() or "USD"
    order_type = raw.order_type.strip().upper() or "MKT"
    symbol = raw.symbol.strip().upper()
    check(bool(CLIENT_ORDER_ID.match(raw.client_order_id)), "client_order_id",
          "required: 1-64 characters of letters, digits, '-', '_', '.', ':'")
    check(bool(SYMBOL.match(symbol)), "symbol", "required: 1-32 characters, letters, digits, ' ', '.', '-', '/'")
    check(bool(SEC_TYPE.match(sec_type)), "sec_type", "an IB security type such as STK")
    check(bool(CODE.match(exchange)), "exchange", "an IB exchange code such as SMART")
    check(not primary or bool(CODE.match(primary)), "primary_exchange", "an IB exchange code such as NASDAQ")
    check(bool(CURRENCY.match(currency)), "currency", "a three-letter currency code such as USD")
    check(raw.side in SIDES, "side", "must be ORDER_SIDE_BUY or ORDER_SIDE_SELL")
    check(math.isfinite(raw.quantity) and raw.quantity > 0, "quantity", "must be positive and finite")
    check(order_type == "MKT", "order_type", f"only MKT orders are accepted, got {raw.order_type!r}")
    if problems:
        return None, problems
    return (
        OrderRequest(raw.client_order_id, symbol, sec_type, exchange, primary, currency, raw.side, raw.quantity),
        [],
    )
