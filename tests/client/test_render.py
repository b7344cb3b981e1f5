"""Event lines, the watch state machine, and the live (terminal) view."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from execgw.client import ExecGwClient, Order
from execgw.client.progress import RunProgress, follow_run
from execgw.client.render import describe_event, price
from execgw.v1 import execution_pb2 as pb


def run_with_one_order() -> pb.Run:
    spec = pb.OrderSpec(client_order_id="a-1", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=100)
    return pb.Run(run_id="r1", status=pb.RUN_STATUS_RUNNING, orders=[pb.Order(spec=spec, ib_order_id=7)])


def test_event_lines() -> None:
    status = pb.RunEvent(sequence=3, order_status=pb.OrderStatusChanged(
        client_order_id="a-1", ib_order_id=7, status=pb.ORDER_STATUS_PARTIALLY_FILLED,
        previous_status=pb.ORDER_STATUS_SUBMITTED, filled_quantity=40, remaining_quantity=60, avg_fill_price=187.9))
    assert describe_event(status) == "#3 order a-1 (IB 7) SUBMITTED -> PARTIALLY_FILLED, filled 40/100 avg 187.90"
    fill = pb.RunEvent(sequence=4, fill=pb.FillReported(
        client_order_id="a-1", fill=pb.Fill(exec_id="e.02", quantity=40, price=187.8, exchange="ISLAND"),
        corrects_exec_id="e.01", order_filled_quantity=40, order_avg_fill_price=187.8))
    assert describe_event(fill) == ("#4 fill a-1 40 @ 187.80 on ISLAND exec e.02 (corrects e.01) "
                                    "(filled 40, avg 187.80)")
    commission = pb.RunEvent(sequence=5, commission=pb.CommissionReported(
        client_order_id="a-1", exec_id="e.02", commission=1.25, currency="USD", realized_pnl=-3))
    assert describe_event(commission) == "#5 commission a-1 1.25 USD exec e.02 realized P&L -3.00 USD"
    final = pb.RunEvent(sequence=6, run_status=pb.RunStatusChanged(
        status=pb.RUN_STATUS_FAILED, previous_status=pb.RUN_STATUS_RUNNING, reason="a-1 REJECTED", final=True))
    assert describe_event(final) == "#6 run RUNNING -> FAILED (final): a-1 REJECTED"


@pytest.mark.parametrize(("value", "text"), [(187.9, "187.90"), (0.12345, "0.1235"), (1234.5, "1,234.50"),
                                             (None, "")])
def test_prices_keep_cents_and_sub_cent_digits(value: float | None, text: str) -> None:
    assert price(value) == text


def test_progress_folds_events_and_drops_superseded_commissions() -> None:
    progress = RunProgress.from_run(run_with_one_order(), with_state=False)
    events = [
        pb.RunEvent(sequence=1, fill=pb.FillReported(client_order_id="a-1", fill=pb.Fill(exec_id="e.01"),
                                                     order_filled_quantity=100, order_avg_fill_price=10.0)),
        pb.RunEvent(sequence=2, commission=pb.CommissionReported(client_order_id="a-1", exec_id="e.01",
                                                                 commission=1.0, currency="USD")),
        pb.RunEvent(sequence=3, fill=pb.FillReported(client_order_id="a-1", fill=pb.Fill(exec_id="e.02"),
                                                     corrects_exec_id="e.01", order_filled_quantity=100,
                                                     order_avg_fill_price=10.5)),
        pb.RunEvent(sequence=4, commission=pb.CommissionReported(client_order_id="a-1", exec_id="e.02",
                                                                 commission=1.5, currency="USD")),
        pb.RunEvent(sequence=5, order_status=pb.OrderStatusChanged(
            client_order_id="a-1", status=pb.ORDER_STATUS_FILLED, filled_quantity=100, avg_fill_price=10.5)),
        pb.RunEvent(sequence=6, run_status=pb.RunStatusChanged(status=pb.RUN_STATUS_SUCCESS, final=True)),
    ]
    for event in events:
        progress.apply(event)
    line = progress.orders["a-1"]
    assert (line.side, line.symbol, line.total, line.filled, line.avg_price) == ("BUY", "AAPL", 100, 100, 10.5)
    assert line.status == pb.ORDER_STATUS_FILLED and line.commission_total == 1.5
    assert (progress.status, progress.final, progress.last_sequence) == (pb.RUN_STATUS_SUCCESS, True, 6)


def test_progress_seeds_state_when_resuming() -> None:
    run = run_with_one_order()
    order = run.orders[0]
    order.status, order.filled_quantity, order.avg_fill_price = pb.ORDER_STATUS_FILLED, 100, 10.0
    order.fills.add(exec_id="e.01", quantity=100, price=10.0, commission=1.0, commission_currency="USD")
    line = RunProgress.from_run(run, with_state=True).orders["a-1"]
    assert (line.status, line.filled, line.commission_total) == (pb.ORDER_STATUS_FILLED, 100, 1.0)
    assert RunProgress.from_run(run, with_state=False).orders["a-1"].status == pb.ORDER_STATUS_UNSPECIFIED


@pytest.mark.timeout(60)
def test_live_view_on_a_terminal(client: ExecGwClient) -> None:
    result = client.submit([Order.new("BUY", "AAPL", 10), Order("live-2", "MSFT", "SELL", 4)])
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, markup=False)
    progress = follow_run(client, console, result.run_id)
    text = screen.getvalue()
    assert progress.status == pb.RUN_STATUS_SUCCESS and progress.final
    assert "\x1b[" in text  # drawn with terminal control sequences, not plain lines
    assert "#1 " in text and f"#{progress.last_sequence} " in text
    assert "live-2" in text and "FILLED" in text and "4/4" in text
    assert f"run {result.run_id} SUCCESS: all 2 orders filled" in text


@pytest.mark.timeout(60)
def test_follow_after_the_end_asks_for_the_final_status(client: ExecGwClient) -> None:
    result = client.submit([Order.new("BUY", "SPY", 1)])
    last = list(client.watch(result.run_id))[-1].sequence
    screen = io.StringIO()
    progress = follow_run(client, Console(file=screen, width=140, markup=False), result.run_id, after_sequence=last)
    assert progress.status == pb.RUN_STATUS_SUCCESS and progress.final
    assert screen.getvalue().strip() == f"run {result.run_id} SUCCESS: all 1 orders filled"
