"""SubmitRun validation: every field checked before anything is written or sent.

Returns every violation at once, each naming its field (`orders[2].quantity`), so a caller can
fix a whole request in one go. Each description says what is accepted; a caller's value is
echoed shortened (`shown`), so a megabyte of input never comes back in an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

# Matched with fullmatch: `$` alone also matches before a trailing newline, so "ord-1\n" passed and
# reached IB as an orderRef (found by tests/server/api/test_fuzz.py).
CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .\-/]{0,31}$")
ACCOUNT = re.compile(r"^[A-Za-z0-9]{1,32}$")
# The one form the engine makes (str(uuid.uuid4())). Anything else is refused rather than
# normalised: MySQL used to match an upper-cased id case-insensitively (and still ignores trailing
# spaces) while the engine keys runs by the exact string, so a near-miss id reached the database
# and not the engine: CancelRun answered OK and sent no cancel, WatchRun never ended.
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RUN_ID_FORM = "36 characters, a UUID in lower case with hyphens (e.g. 3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b)"
SIDES = ("BUY", "SELL")
MODES = ("paper", "live")

# The gateway sends market orders for stocks and nothing else.
SEC_TYPES = ("STK",)
# IB's codes for the currencies and exchanges of the stock markets IB serves; the lists are
# settings (stock_currencies / stock_exchanges), these are their defaults. SMART is IB's router;
# the rest are routing destinations / listing exchanges as IB spells them (ISLAND is IB's code
# for Nasdaq as a destination, IBIS is Xetra, SBF Euronext Paris, AEB Euronext Amsterdam,
# EBS SIX Swiss, TSE Toronto, TSEJ Tokyo).
DEFAULT_CURRENCIES = ("USD", "CAD", "EUR", "GBP", "CHF", "SEK", "HKD", "JPY", "AUD", "SGD")
DEFAULT_EXCHANGES = (
    "SMART",
    "NYSE", "NASDAQ", "ISLAND", "ARCA", "AMEX", "BATS", "IEX",
    "TSE", "VENTURE",
    "LSE", "IBIS", "FWB", "SBF", "AEB", "ENEXT.BE", "EBS", "BVME", "BM", "SFB",
    "SEHK", "ASX", "TSEJ", "SGX",
)
ROUTER = "SMART"  # an exchange, never a primary (listing) exchange

# Quantities in shares, to 4 decimals. IB trades fractional shares in units of 0.0001 share (its
# fractional-share examples, and the size increment of fractional-eligible stocks), and ibapi 10.x
# sends totalQuantity as a Decimal: a finer quantity is one IB cannot hold (a 1/3 share "filled"
# 0.33333333 and its order stayed UNKNOWN), and 1e-9 is no order at all. Whole-share-only
# accounts still get IB's refusal (10243, "Fractional-sized order cannot be placed via API"),
# which ends the order REJECTED: the gateway cannot see that permission up front.
QUANTITY_DECIMALS = 4
QUANTITY_STEP = Decimal(1).scaleb(-QUANTITY_DECIMALS)
# A typo guard (1e300 was sent and "filled"); the max_order_quantity setting overrides it.
DEFAULT_MAX_ORDER_QUANTITY = 100_000.0
SHOWN_CHARACTERS = 40


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
    submitted_by: str  # the authenticated caller
    submitted_note: str = ""  # the request's free-text submitted_by
    submitted_from: str = ""  # the caller's address (gRPC peer)


@dataclass(frozen=True)
class Violation:
    field: str
    description: str


@dataclass(frozen=True)
class OrderRules:
    """What one order may ask for, from the settings."""

    max_quantity: float = DEFAULT_MAX_ORDER_QUANTITY
    currencies: Collection[str] = DEFAULT_CURRENCIES
    exchanges: Collection[str] = DEFAULT_EXCHANGES


DEFAULT_RULES = OrderRules()


def shown(value: str) -> str:
    """A caller's value for an error description: quoted, ASCII only, at most ~40 characters."""
    if len(value) <= SHOWN_CHARACTERS:
        return ascii(value)
    return f"{ascii(value[:SHOWN_CHARACTERS])}... ({len(value)} characters)"


def validate_run_id(run_id: str) -> list[Violation]:
    if not run_id:
        return [Violation("run_id", f"required: the run id SubmitRun returned, {RUN_ID_FORM}")]
    if not RUN_ID.fullmatch(run_id):
        return [Violation("run_id", f"must be a run id as SubmitRun returned it, {RUN_ID_FORM}; got {shown(run_id)}")]
    return []


def order_quantity(value: float, max_quantity: float) -> Decimal | None:
    """The quantity as the exact decimal the caller wrote, or None if it is not one we send.

    The proto field is a double; repr gives the shortest decimal that reads back as the same
    double, which is what the caller typed (below 10^9 with 4 decimals, fewer than 15 digits).
    """
    if not math.isfinite(value) or value <= 0 or value > max_quantity:
        return None
    exact = Decimal(repr(value))
    if exact < QUANTITY_STEP or exact % QUANTITY_STEP != 0:
        return None
    return exact


def validate_run(
    *,
    mode: str,
    account: str,
    orders: list[OrderRequest],
    deadline: timedelta | None,
    submitted_by: str,
    submitted_note: str = "",
    submitted_from: str = "",
    max_orders: int,
    default_deadline: timedelta,
    max_deadline: timedelta,
    rules: OrderRules = DEFAULT_RULES,
) -> tuple[RunRequest | None, list[Violation]]:
    problems: list[Violation] = []
    if mode not in MODES:
        problems.append(Violation("mode", "must be TRADING_MODE_PAPER or TRADING_MODE_LIVE"))
    if account and not ACCOUNT.fullmatch(account):
        problems.append(Violation("account", "must be 1-32 letters or digits"))
    if not orders:
        problems.append(Violation("orders", "at least one order is required"))
    elif len(orders) > max_orders:
        problems.append(Violation("orders", f"at most {max_orders} orders per run, got {len(orders)}"))
    if deadline is not None and not (timedelta(0) < deadline <= max_deadline):
        problems.append(
            Violation("deadline", f"must be positive and at most {max_deadline.total_seconds():g}s")
        )
    # The note arrives in the request's submitted_by field, and is refused under that name.
    if len(submitted_note) > 128 or len(submitted_by) > 128:
        problems.append(Violation("submitted_by", "at most 128 characters"))

    seen: dict[str, int] = {}
    accepted: list[OrderRequest] = []
    for index, raw in enumerate(orders):
        order, order_problems = _validate_order(index, raw, rules)
        problems.extend(order_problems)
        if raw.client_order_id in seen:
            problems.append(
                Violation(
                    f"orders[{index}].client_order_id",
                    f"duplicate of orders[{seen[raw.client_order_id]}].client_order_id {shown(raw.client_order_id)}",
                )
            )
        else:
            seen[raw.client_order_id] = index
        if order is not None:
            accepted.append(order)
    if problems:
        return None, problems
    return RunRequest(
        mode, account, tuple(accepted), deadline or default_deadline, submitted_by, submitted_note,
        submitted_from[:255],
    ), []


def _validate_order(index: int, raw: OrderRequest, rules: OrderRules) -> tuple[OrderRequest | None, list[Violation]]:
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
    listing_exchanges = [e for e in rules.exchanges if e != ROUTER]
    check(bool(CLIENT_ORDER_ID.fullmatch(raw.client_order_id)), "client_order_id",
          "required: 1-64 characters of letters, digits, '-', '_', '.', ':'")
    check(bool(SYMBOL.fullmatch(symbol)), "symbol", "required: 1-32 characters, letters, digits, ' ', '.', '-', '/'")
    check(sec_type in SEC_TYPES, "sec_type",
          f"only {', '.join(SEC_TYPES)} (stocks): the gateway sends market orders for stocks; got {shown(raw.sec_type)}")
    check(exchange in rules.exchanges, "exchange",
          f"one of {', '.join(rules.exchanges)} (IB's codes); got {shown(raw.exchange)}")
    check(not primary or primary in listing_exchanges, "primary_exchange",
          f"empty or one of {', '.join(listing_exchanges)} (IB's codes); got {shown(raw.primary_exchange)}")
    check(currency in rules.currencies, "currency",
          f"one of {', '.join(rules.currencies)}; got {shown(raw.currency)}")
    check(raw.side in SIDES, "side", "must be ORDER_SIDE_BUY or ORDER_SIDE_SELL")
    check(order_quantity(raw.quantity, rules.max_quantity) is not None, "quantity",
          f"shares from {QUANTITY_STEP} to {_plain(rules.max_quantity)} in steps of {QUANTITY_STEP} "
          f"(at most {QUANTITY_DECIMALS} decimals); got {raw.quantity!r}")
    check(order_type == "MKT", "order_type", f"only MKT orders are accepted, got {shown(raw.order_type)}")
    if problems:
        return None, problems
    return (
        OrderRequest(raw.client_order_id, symbol, sec_type, exchange, primary, currency, raw.side, raw.quantity),
        [],
    )


def _plain(number: float) -> str:
    """100000.0 → '100000', 2.5 → '2.5': the way a person writes the limit."""
    return format(Decimal(repr(number)).normalize(), "f")
