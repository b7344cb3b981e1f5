"""Every field ibapi gives execDetails and commissionReport reaches its event's field of the same
meaning (the event is built positionally), and the remembered parses of execution times give
each execution its own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ibapi.commission_report import CommissionReport
from ibapi.contract import Contract
from ibapi.execution import Execution

from execgw.server.engine.recorder import naive_utc
from execgw.server.ib import events as ev
from execgw.server.ib import wrapper
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.wrapper import CallbackTranslator

ENDPOINT = Endpoint("paper", "127.0.0.1", 4002, 1, "America/New_York")


def _execution(time: str = "20260715  10:00:01", exec_id: str = "0000e0d5.67890abc.01.01") -> tuple[Contract, Execution]:
    contract = Contract()
    contract.symbol, contract.secType, contract.currency = "MSFT", "STK", "CHF"
    execution = Execution()
    execution.orderId, execution.permId, execution.clientId = 101, 202_000, 7
    execution.orderRef, execution.execId, execution.time = "ref-1", exec_id, time
    execution.exchange, execution.side, execution.acctNumber = "ISLAND", "SLD", "DU42"
    execution.shares, execution.price = Decimal("3.5"), 410.25
    execution.cumQty, execution.avgPrice = Decimal("12"), 409.75
    return contract, execution


def test_every_execution_field_reaches_its_event_field():
    seen: list[ev.IbEvent] = []
    translator = CallbackTranslator(ENDPOINT, seen.append)
    before = datetime.now(UTC)
    translator.execDetails(2_000_000_001, *_execution())
    (report,) = seen
    assert isinstance(report, ev.ExecutionReport)
    received_at = report.received_at
    assert before <= received_at <= datetime.now(UTC)
    assert report == ev.ExecutionReport(
        endpoint="127.0.0.1:4002", req_id=2_000_000_001, order_id=101, perm_id=202_000, client_id=7,
        order_ref="ref-1", exec_id="0000e0d5.67890abc.01.01", symbol="MSFT", sec_type="STK", currency="CHF",
        exchange="ISLAND", side="SLD", shares=3.5, price=410.25, cum_qty=12.0, avg_price=409.75, account="DU42",
        trade_time=datetime(2026, 7, 15, 14, 0, 1, tzinfo=UTC), received_at=received_at,
    )
    assert all(type(getattr(report, name)) is float for name in ("shares", "price", "cum_qty", "avg_price"))


def test_every_commission_field_reaches_its_event_field():
    seen: list[ev.IbEvent] = []
    report = CommissionReport()
    report.execId, report.commission, report.currency, report.realizedPNL = "e.01", 1.25, "CHF", -3.5
    CallbackTranslator(ENDPOINT, seen.append).commissionReport(report)
    (event,) = seen
    assert isinstance(event, ev.CommissionReport)
    assert (event.endpoint, event.exec_id, event.commission, event.currency, event.realized_pnl) == (
        "127.0.0.1:4002", "e.01", 1.25, "CHF", -3.5)


def test_remembered_execution_times_give_each_execution_its_own(monkeypatch):
    monkeypatch.setattr(wrapper, "TRADE_TIMES_KEPT", 3)  # forgotten every few: both paths taken
    seen: list[ev.IbEvent] = []
    translator = CallbackTranslator(ENDPOINT, seen.append)
    start = datetime(2026, 7, 15, 10, 0, 0)
    texts = [(start + timedelta(seconds=second)).strftime("%Y%m%d  %H:%M:%S") for second in (0, 1, 0, 2, 3, 1, 4, 0)]
    for number, text in enumerate(texts):
        translator.execDetails(-1, *_execution(text, f"e.{number}"))
    expected = [datetime.strptime(text, "%Y%m%d  %H:%M:%S").replace(tzinfo=UTC) + timedelta(hours=4) for text in texts]
    assert [report.trade_time for report in seen] == expected
    assert len(translator._trade_times) <= 3, "a bounded memory of parses"
    translator.execDetails(-1, *_execution("20260715 10:00:01 Mars/Olympus", "e.bad"))
    translator.execDetails(-1, *_execution("20260715 10:00:01 Mars/Olympus", "e.bad2"))
    assert [report.trade_time for report in seen[-2:]] == [None, None]


def test_naive_utc_of_remembered_times_is_each_ones_own():
    moments = [datetime(2026, 7, 15, 14, 0, tzinfo=UTC) + timedelta(seconds=second) for second in range(100)]
    for _ in range(2):  # the second pass finds some remembered, some forgotten
        assert [naive_utc(m) for m in moments] == [m.replace(tzinfo=None) for m in moments]
    naive = datetime(2026, 7, 15, 14, 0, 1)
    assert naive_utc(naive) is naive and naive_utc(None) is None
