"""What IB's error codes mean for an order of ours.

TWS delivers errors, warnings and notices through one callback, `error(id, code, message)`; the
id is an order id when the message is about an order. Whether the order lives on depends on the
code, and IB publishes the list (https://interactivebrokers.github.io/tws-api/message_codes.html,
and the TWS API error-code page on ibkrcampus.com). The sets below follow that list and what the
maintained IB clients learned in production (ib_async `wrapper.error`, nautilus_trader's
`InteractiveBrokersErrorHandler`); `sim/README.md` has the table with sources.

An order error whose code is in none of the sets is treated as a refusal (IB created no order,
or stopped it) unless IB later reports the order alive; it is logged at WARNING so that it can
be classified here.
"""

from __future__ import annotations

import enum


class OrderErrorKind(enum.Enum):
    WARNING = "warning"
    """The order lives on (399 "will not be placed at the exchange until ...", 404 locate...)."""
    CANCEL_ANSWER = "cancel-answer"
    """IB's answer to a cancel we sent (161, 10147, 10148): the order's state is unchanged."""
    CANCELLED = "cancelled"
    """202: IB confirms the order is cancelled."""
    REFUSAL = "refusal"
    """A known refusal: IB did not take the order (or stopped it)."""
    UNKNOWN = "unknown"
    """A code this gateway does not know: a refusal until IB says otherwise."""


# Warnings and notices that leave an order working.
ORDER_WARNING_CODES = frozenset({
    399,    # "Order Message: ... Warning: your order will not be placed at the exchange until ..."
    404,    # shares not available for short sale: the order is held while IB locates them
    2109,   # "Outside Regular Trading Hours" attribute ignored; the order is processed
    10349,  # order TIF was set to DAY based on the order preset
    165, 492, 10167,  # market data / scanner notices; never about an order's life
})

# IB's answers to a cancel request, kept for CancelRun's report; they change no state.
CANCEL_ANSWER_CODES = frozenset({
    161,    # cancel attempted when the order is not in a cancellable state
    10147,  # the order id to cancel was not found
    10148,  # the order cannot be cancelled, e.g. it is already filled
})

ORDER_CANCELLED_CODE = 202  # "Order Canceled - reason:"

# Refusals: IB did not accept the order. Most come with no orderStatus after them.
REFUSAL_CODES = frozenset({
    103,    # duplicate order id
    105,    # order being modified does not match the original order
    106,    # can't transmit order id
    107,    # cannot transmit incomplete order
    109,    # price out of the range defined by the order defaults
    110,    # price does not conform to the minimum price variation
    111,    # TIF and order type are incompatible
    116,    # the order cannot be transmitted to a dead exchange
    133,    # submit new order failed
    200,    # no security definition found
    201,    # order rejected - reason: ...
    203,    # the security is not available or allowed for this account
    321,    # error validating request (e.g. the API is in Read-Only mode)
    322,    # error processing request
    434,    # the order size cannot be zero
    10268,  # the 'EtradeOnly' order attribute is not supported
    10269,  # the 'FirmQuoteOnly' order attribute is not supported
    10285,  # the API version does not support fractional size rules (clients below v163)
    10289,  # nautilus_trader's rejection list
    10293,  # nautilus_trader's rejection list
})

# Not about any one order even when an id is given: connection state and farm notices.
NOT_ABOUT_ORDERS = frozenset({1100, 1101, 1102, 1300, 2110})

NOT_CONNECTED_CODE = 504  # ibapi's own "Not connected", reported per order id


def classify_order_error(code: int) -> OrderErrorKind:
    """What an error addressed to one of our order ids means for that order."""
    if code in ORDER_WARNING_CODES or 2100 <= code < 2200:
        # 2100–2199 are IB's informational range (farm status, order event warnings).
        return OrderErrorKind.WARNING
    if code in CANCEL_ANSWER_CODES:
        return OrderErrorKind.CANCEL_ANSWER
    if code == ORDER_CANCELLED_CODE:
        return OrderErrorKind.CANCELLED
    if code in REFUSAL_CODES:
        return OrderErrorKind.REFUSAL
    return OrderErrorKind.UNKNOWN


def is_read_only_refusal(code: int, message: str) -> bool:
    """TWS's "Read-Only API" setting (on by default) answers orders and some requests with 321."""
    text = message.lower().replace("-", "").replace(" ", "")
    return code == 321 and "readonly" in text
