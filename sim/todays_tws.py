"""What today's TWS / IB Gateway (10.x) says to a version-157 client, and how it writes times.

Message texts are IB's as public reports quote them (sources in ``sim/README.md``); they are
facts of the protocol a client may match on, so they are spelled exactly.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from execgw.sim.wire import UNSET_INTEGER, text

ETRADE_ONLY = 10268
FIRM_QUOTE_ONLY = 10269
ATTRIBUTE_REFUSALS = {
    ETRADE_ONLY: "The 'EtradeOnly' order attribute is not supported.",
    FIRM_QUOTE_ONLY: "The 'FirmQuoteOnly' order attribute is not supported.",
}

READ_ONLY = 321
NO_REQUEST_ID = UNSET_INTEGER
"""The id TWS puts on a 321 for a request that carries none (reqOpenOrders): 2147483647."""


def read_only_text(request_code: str) -> str:
    """321's text; ``request_code`` is TWS's internal two-letter request code (opaque to clients)."""
    return (f"Error validating request.-'{request_code}' : cause - "
            "The API interface is currently in Read-Only mode.")


ORDER_MESSAGE = 399
US_OPEN = dt.time(9, 30)
US_EXCHANGE_ZONE = "US/Eastern"


def next_us_open(now: dt.datetime) -> dt.datetime:
    """The next regular-session open of a US stock, weekends skipped (holidays are not modelled)."""
    local = now.astimezone(ZoneInfo(US_EXCHANGE_ZONE))
    day = local.date()
    if local.time() >= US_OPEN or day.weekday() >= 5:
        day += dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, US_OPEN, tzinfo=ZoneInfo(US_EXCHANGE_ZONE))


def market_closed_text(action: str, quantity: float, symbol: str, listing: str, now: dt.datetime) -> str:
    """399 for a MKT order placed outside regular hours: it waits for the open, in the exchange's zone."""
    opens = next_us_open(now)
    return (f"Order Message:\n{action} {text(quantity)} {symbol} {listing}\n"
            f"Warning: Your order will not be placed at the exchange until "
            f"{opens:%Y-%m-%d %H:%M:%S} {US_EXCHANGE_ZONE}.")


class ExecutionTimes:
    """Writes execDetails times in one of the three forms TWS has been seen to use.

    A flood formats the same second thousands of times, so the last one is cached.
    """

    def __init__(self, form: str = "utc", zone: str = "US/Eastern") -> None:
        if form not in ("local", "utc", "zone"):
            raise ValueError(f"unknown execution time form {form!r}")
        self.form = form
        self.zone_name = zone
        self.zone = ZoneInfo(zone)
        self._last: tuple[dt.datetime, str] = (dt.datetime.min.replace(tzinfo=dt.UTC), "")

    def format(self, moment: dt.datetime) -> str:
        second = moment.replace(microsecond=0)
        if self._last[0] != second:
            self._last = (second, self._format(second))
        return self._last[1]

    def _format(self, moment: dt.datetime) -> str:
        if self.form == "utc":
            return moment.astimezone(dt.UTC).strftime("%Y%m%d-%H:%M:%S")
        local = moment.astimezone(self.zone)
        if self.form == "local":
            return local.strftime("%Y%m%d  %H:%M:%S")  # two spaces, as TWS has always written it
        return f"{local:%Y%m%d %H:%M:%S} {self.zone_name}"


def connection_time(now: dt.datetime, zone: str) -> str:
    """The handshake's connection time: login-zone clock and the zone's standard abbreviation
    (TWS has been seen writing EST in May and CET in October)."""
    tz = ZoneInfo(zone)
    return f"{now.astimezone(tz):%Y%m%d %H:%M:%S} {standard_abbreviation(tz, now.year)}"


def standard_abbreviation(tz: ZoneInfo, year: int) -> str:
    for month in (1, 7):
        probe = dt.datetime(year, month, 1, 12, tzinfo=tz)
        if not probe.dst():
            return probe.tzname() or "UTC"
    return dt.datetime(year, 1, 1, 12, tzinfo=tz).tzname() or "UTC"
