"""Execution times as TWS / IB Gateway writes them, turned into aware UTC datetimes.

Execution.time is a string whose form depends on the TWS version, the API version it talks to
and its settings. The forms seen, and where they are documented or reported:

- ``20261124  10:00:01`` (two spaces, no zone): local time in the **TWS login time zone**, the
  zone chosen in TWS / IB Gateway's login dialog. What server version 157 sends, and what
  ibapi's own docs and ib_insync/ib_async's ``parseIBDatetime`` expect (they return it naive).
  One space instead of two is taken the same way.
- ``20261124-15:00:01``: UTC. IB's API documentation ("Changes in the date/time field", TWS
  10.17 / API 10.18) made ``yyyymmdd-hh:mm:ss`` the UTC form.
- ``20261124 10:00:01 America/New_York`` or ``... US/Eastern``: local time in the named zone.
  TWS sends the zone from server version 200 on (rust-ibapi PR #387 shows
  ``20260130 10:46:26 America/New_York``); ib_async parses it with ``ZoneInfo(name)``.
  European paper accounts have been reported stamping ``MET``, others ``UTC`` / ``Universal``
  (NautilusTrader's IB adapter lists them). TWS is a Java program and these are Java time zone
  ids, i.e. zones with their DST rules, which is exactly how ``zoneinfo`` reads ``MET``, ``EST``,
  ``CET``, ``US/Eastern`` and the rest of tzdata's names, so any name zoneinfo resolves is used as
  a zone.
- A zone abbreviation zoneinfo does not know (``EDT``, ``CEST``, ...): the handshake's connection
  time is written that way (``20240115 10:00:00 EST``), so an execution time may be too. Only
  the short, unambiguous table below is accepted; anything else is refused (None), never guessed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Abbreviations tzdata has no zone for. A daylight-saving abbreviation names its offset exactly,
# so it is a fixed offset. CST and PST are also Java's legacy ids for Chicago / Los Angeles (with
# DST), and an abbreviation CST / PST can only mean the same winter offset, so both readings
# agree with the zone. Deliberately absent: IST (India, Israel or Ireland), BST (British Summer
# Time, but Java's id for Dhaka), AST and the like: ambiguous, so refused rather than guessed.
_ABBREVIATIONS: dict[str, tzinfo] = {
    "EDT": timezone(timedelta(hours=-4), "EDT"),
    "CDT": timezone(timedelta(hours=-5), "CDT"),
    "MDT": timezone(timedelta(hours=-6), "MDT"),
    "PDT": timezone(timedelta(hours=-7), "PDT"),
    "CST": ZoneInfo("America/Chicago"),
    "PST": ZoneInfo("America/Los_Angeles"),
    "CEST": timezone(timedelta(hours=2), "CEST"),
    "MEST": timezone(timedelta(hours=2), "MEST"),
    "EEST": timezone(timedelta(hours=3), "EEST"),
    "JST": ZoneInfo("Asia/Tokyo"),
    "HKT": ZoneInfo("Asia/Hong_Kong"),
    "Z": UTC,
}

# date, then "-" (UTC) or one or two spaces (local), time, optional zone name.
_FORM = re.compile(r"(\d{8})(-| {1,2})(\d{2}:\d{2}:\d{2})(?: +(\S+))?")


@lru_cache(maxsize=64)
def resolve_zone(name: str) -> tzinfo | None:
    """A zone name as IB writes it, or None if it names no zone we can trust."""
    if name in _ABBREVIATIONS:
        return _ABBREVIATIONS[name]
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a malformed key, e.g. "../x"
        return None


def parse_ib_time(text: str, tws_zone: tzinfo) -> datetime | None:
    """IB's execution time as an aware UTC datetime; None if the text is in no known form.

    ``tws_zone`` is the TWS login time zone, used when the text carries no zone. A local time
    that happens twice when clocks go back is taken as the first (``fold=0``): IB gives nothing
    to tell them apart."""
    match = _FORM.fullmatch(text.strip())
    if match is None:
        return None
    day, separator, clock, zone_name = match.groups()
    try:
        naive = datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S")
    except ValueError:  # digits in the right places but no such date or time (20261332)
        return None
    if zone_name is not None:
        zone = resolve_zone(zone_name)
        if zone is None:
            return None
    elif separator == "-":
        zone = UTC
    else:
        zone = tws_zone
    return naive.replace(tzinfo=zone).astimezone(UTC)


def validate_zone_name(name: str) -> str:
    """For configuration: the name if it is an IANA zone zoneinfo knows, else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as unknown:
        raise ValueError(
            f"{name!r} is not an IANA time zone (expected e.g. 'America/New_York', 'Europe/Zurich')"
        ) from unknown
    return name
