"""Execution times in every form TWS writes them, to UTC; the `ib_time_zone` setting.

The forms and their sources are listed in `execgw.server.ib.times`."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from ibapi.contract import Contract
from ibapi.execution import Execution
from pydantic import ValidationError

from execgw.server.app import Gateway
from execgw.server.config import Settings
from execgw.server.ib import events as ev
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.times import parse_ib_time
from execgw.server.ib.wrapper import CallbackTranslator

NEW_YORK = ZoneInfo("America/New_York")
ZURICH = ZoneInfo("Europe/Zurich")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


@pytest.mark.parametrize(("text", "tws_zone", "expected"), [
    # local, in the TWS login zone: EST in January, EDT in July
    pytest.param("20260115  10:00:01", NEW_YORK, utc(2026, 1, 15, 15, 0, 1), id="local-winter"),
    pytest.param("20260715  10:00:01", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="local-summer"),
    pytest.param("20260715 10:00:01", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="local-one-space"),
    pytest.param("20260715  10:00:01", ZURICH, utc(2026, 7, 15, 8, 0, 1), id="local-zurich"),
    pytest.param(" 20260715  10:00:01 ", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="local-padded"),
    # the days clocks change in New York (2026-03-08 and 2026-11-01, at 02:00 local)
    pytest.param("20260308  01:59:59", NEW_YORK, utc(2026, 3, 8, 6, 59, 59), id="before-spring-forward"),
    pytest.param("20260308  03:00:00", NEW_YORK, utc(2026, 3, 8, 7, 0, 0), id="after-spring-forward"),
    pytest.param("20261101  00:59:59", NEW_YORK, utc(2026, 11, 1, 4, 59, 59), id="before-fall-back"),
    pytest.param("20261101  01:30:00", NEW_YORK, utc(2026, 11, 1, 5, 30, 0), id="fall-back-twice-first"),
    pytest.param("20261101  02:00:00", NEW_YORK, utc(2026, 11, 1, 7, 0, 0), id="after-fall-back"),
    # UTC, whatever the login zone
    pytest.param("20260715-14:00:01", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="utc"),
    pytest.param("20260115-15:00:01", ZURICH, utc(2026, 1, 15, 15, 0, 1), id="utc-zurich-login"),
    # a zone name wins over the login zone
    pytest.param("20260715 10:00:01 America/New_York", ZURICH, utc(2026, 7, 15, 14, 0, 1), id="iana"),
    pytest.param("20260115 10:00:01 US/Eastern", ZURICH, utc(2026, 1, 15, 15, 0, 1), id="us-eastern-winter"),
    pytest.param("20260715 10:00:01 US/Eastern", ZURICH, utc(2026, 7, 15, 14, 0, 1), id="us-eastern-summer"),
    pytest.param("20261101 01:30:00 US/Eastern", ZURICH, utc(2026, 11, 1, 5, 30, 0), id="zone-fall-back"),
    pytest.param("20260715 10:00:01 Europe/Zurich", NEW_YORK, utc(2026, 7, 15, 8, 0, 1), id="europe"),
    pytest.param("20260715 10:00:01 MET", NEW_YORK, utc(2026, 7, 15, 8, 0, 1), id="MET-summer"),
    pytest.param("20260115 10:00:01 MET", NEW_YORK, utc(2026, 1, 15, 9, 0, 1), id="MET-winter"),
    pytest.param("20260715 14:00:01 UTC", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="UTC-name"),
    pytest.param("20260715 14:00:01 Universal", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="Universal"),
    pytest.param("20260715 14:00:01 GMT", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="GMT"),
    pytest.param("20260715-10:00:01 US/Eastern", ZURICH, utc(2026, 7, 15, 14, 0, 1), id="dash-and-zone"),
    # abbreviations: EST is tzdata's fixed UTC-5; the summer ones from the table
    pytest.param("20260115 10:00:01 EST", ZURICH, utc(2026, 1, 15, 15, 0, 1), id="EST"),
    pytest.param("20260715 10:00:01 EDT", ZURICH, utc(2026, 7, 15, 14, 0, 1), id="EDT"),
    pytest.param("20260115 09:00:01 CST", ZURICH, utc(2026, 1, 15, 15, 0, 1), id="CST"),
    pytest.param("20260715 09:00:01 CDT", ZURICH, utc(2026, 7, 15, 14, 0, 1), id="CDT"),
    pytest.param("20260715 07:00:01 PDT", ZURICH, utc(2026, 7, 15, 14, 0, 1), id="PDT"),
    pytest.param("20260715 16:00:01 CEST", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="CEST"),
    pytest.param("20260715 23:00:01 JST", NEW_YORK, utc(2026, 7, 15, 14, 0, 1), id="JST"),
])
def test_every_form_becomes_utc(text: str, tws_zone: ZoneInfo, expected: datetime) -> None:
    parsed = parse_ib_time(text, tws_zone)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None and parsed.tzinfo == UTC


@pytest.mark.parametrize("text", [
    "", "   ", "garbage", "20260715", "10:00:01", "2026071510:00:01", "20260715   10:00:01",
    "20261332  10:00:00", "20260715  25:00:00", "20260715 10:00:01 Mars/Olympus",
    "20260715 10:00:01 IST", "20260715 10:00:01 BST", "20260715 10:00:01 ../etc/passwd",
    "20260715 10:00:01 US/Eastern extra",
])
def test_what_is_in_no_known_form_is_refused_not_guessed(text: str) -> None:
    assert parse_ib_time(text, NEW_YORK) is None


def _execution(time_text: str) -> tuple[Contract, Execution]:
    contract = Contract()
    contract.symbol, contract.secType, contract.currency = "AAPL", "STK", "USD"
    execution = Execution()
    execution.execId = "0000e0d5.67890abc.01.01"
    execution.time = time_text
    execution.orderId, execution.permId, execution.clientId = 10, 20, 1
    execution.side, execution.shares, execution.price = "BOT", 100, 190.5
    execution.cumQty, execution.avgPrice = 100, 190.5
    execution.orderRef, execution.acctNumber, execution.exchange = "run-1-a", "DU1234567", "ISLAND"
    return contract, execution


def test_the_translator_reads_local_times_in_the_endpoints_login_zone() -> None:
    seen: list[ev.IbEvent] = []
    translator = CallbackTranslator(Endpoint("paper", "127.0.0.1", 4002, 1, "America/New_York"), seen.append)
    translator.execDetails(-1, *_execution("20260715  10:00:01"))
    (report,) = seen
    assert isinstance(report, ev.ExecutionReport)
    assert report.trade_time == utc(2026, 7, 15, 14, 0, 1)

    seen.clear()
    translator = CallbackTranslator(Endpoint("paper", "127.0.0.1", 4002, 1, "Europe/Zurich"), seen.append)
    translator.execDetails(-1, *_execution("20260115  10:00:01"))
    assert seen[0].trade_time == utc(2026, 1, 15, 9, 0, 1)


def test_an_unreadable_time_is_logged_with_its_exec_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="execgw")
    seen: list[ev.IbEvent] = []
    translator = CallbackTranslator(Endpoint("paper", "127.0.0.1", 4002, 1), seen.append)
    translator.execDetails(-1, *_execution("20260715 10:00:01 Mars/Olympus"))
    (report,) = seen
    assert report.trade_time is None, "unreadable is stored as unknown, never as a wrong time"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert "20260715 10:00:01 Mars/Olympus" in message and "0000e0d5.67890abc.01.01" in message


# -- the setting ----------------------------------------------------------------------------------


def test_ib_time_zone_defaults_to_new_york_and_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXECGW_IB_TIME_ZONE", raising=False)
    assert Settings().ib_time_zone == "America/New_York"
    monkeypatch.setenv("EXECGW_IB_TIME_ZONE", "Europe/Zurich")
    assert Settings().ib_time_zone == "Europe/Zurich"


@pytest.mark.parametrize("name", ["Mars/Olympus", "EDT", "", "../etc/passwd"])
def test_an_unknown_ib_time_zone_is_refused_at_start_up(name: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(ib_time_zone=name)
    assert "ib_time_zone" in str(refused.value)
    assert "not an IANA time zone" in str(refused.value)


def test_the_gateway_gives_every_endpoint_the_configured_zone() -> None:
    settings = Settings(ib_paper="127.0.0.1:4002", ib_live="127.0.0.1:4001", live_enabled=True,
                        ib_time_zone="Europe/Zurich")
    endpoints = asyncio.run(Gateway(settings)._endpoints())
    assert [(e.mode, e.time_zone) for e in endpoints] == [("paper", "Europe/Zurich"), ("live", "Europe/Zurich")]
