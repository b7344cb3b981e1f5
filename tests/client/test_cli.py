"""The execgw client subcommands end to end, against gateways running in this process.

Output goes to a pipe here (capsys), so watch prints one plain line per event.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from execgw.client import ExecGwClient
from execgw.server.embedded import GatewayThread
from execgw.v1 import execution_pb2 as pb

pytestmark = pytest.mark.timeout(60)

Run = Callable[..., Any]  # the execgw fixture: returns .code, .out, .err
Outcome = Any
RUN_ID = re.compile(r"run ([0-9a-f-]{36})")


def run_id_of(outcome: Outcome) -> str:
    match = RUN_ID.search(outcome.out)
    assert match, outcome.out
    return match.group(1)


def event_sequences(out: str) -> list[int]:
    return [int(m) for m in re.findall(r"^#(\d+) ", out, flags=re.MULTILINE)]


def test_submit_watch_follows_the_run_to_success(execgw: Run, gateway: GatewayThread) -> None:
    result = execgw("submit", "--target", gateway.target, "--watch", "--submitted-by", "desk-7",
                    "BUY:AAPL:10", "SELL:MSFT:5:cli-sell-1")
    assert result.code == 0, result.err
    run_id = run_id_of(result)
    assert re.search(r"cli-sell-1\s+│ SELL\s+│ MSFT\s+│\s+5 │\s+2 │", result.out)  # IB order id 2
    sequences = event_sequences(result.out)
    assert sequences == list(range(1, len(sequences) + 1)) and len(sequences) >= 9
    assert "fill cli-sell-1 5 @ " in result.out and "commission cli-sell-1 " in result.out
    assert "run RUNNING -> SUCCESS (final): all 2 orders filled" in result.out
    assert result.out.rstrip().endswith(f"run {run_id} SUCCESS: all 2 orders filled")
    assert result.err == ""


def test_submit_then_run_runs_and_watch_after(execgw: Run, gateway: GatewayThread) -> None:
    submitted = execgw("submit", "--target", gateway.target, "--deadline", "30", "BUY:SPY:3:spy-1")
    assert submitted.code == 0, submitted.err
    run_id = run_id_of(submitted)
    assert f"follow it with: execgw watch {run_id}" in submitted.out
    assert "spy-1" in submitted.out and "PENDING_SUBMIT" in submitted.out

    watched = execgw("watch", run_id, "--target", gateway.target)
    assert watched.code == 0 and f"run {run_id} SUCCESS" in watched.out
    last = event_sequences(watched.out)[-1]

    resumed = execgw("watch", run_id, "--target", gateway.target, "--after", "3")
    assert event_sequences(resumed.out) == list(range(4, last + 1))
    assert resumed.code == 0

    with ExecGwClient(gateway.target) as client:
        fill = client.get(run_id).orders[0].fills[0]
    shown = execgw("run", run_id, "--target", gateway.target)
    assert shown.code == 0
    assert re.search(r"spy-1\s+│ BUY\s+│ SPY\s+│ FILLED\s+│\s+3/3 │", shown.out)
    assert re.search(rf"└ {re.escape(fill.exec_id)}\s+│\s+│ \S+\s+│ .*│\s+3 │\s+[\d.,]+ │\s+1.00 USD", shown.out)
    assert "SUCCESS" in shown.out and "all 1 orders filled" in shown.out

    execgw("submit", "--target", gateway.target, "SELL:SPY:1")
    listed = execgw("runs", "--target", gateway.target, "--limit", "1")
    assert listed.code == 0
    assert run_id not in listed.out  # newest first, and only one
    listed = execgw("runs", "--target", gateway.target)
    lines = [line for line in listed.out.splitlines() if re.match(r"[0-9a-f-]{36} ", line)]
    assert len(lines) == 2 and lines[1].startswith(run_id) and "SUCCESS" in lines[1]


def test_submit_from_files(execgw: Run, gateway: GatewayThread, tmp_path: Path) -> None:
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text("side,symbol,quantity,client_order_id\nBUY,AAPL,2,csv-1\nSELL,MSFT,1,csv-2\n")
    result = execgw("submit", "--target", gateway.target, "--file", str(csv_file))
    assert result.code == 0 and "csv-1" in result.out and "csv-2" in result.out

    json_file = tmp_path / "orders.json"
    json_file.write_text(json.dumps([{"side": "BUY", "symbol": "NVDA", "quantity": 4, "client_order_id": "js-1"}]))
    result = execgw("submit", "--target", gateway.target, "--file", str(json_file), "--watch")
    assert result.code == 0 and "js-1" in result.out and "SUCCESS" in result.out


def test_resubmit_says_the_run_already_existed(execgw: Run, gateway: GatewayThread) -> None:
    first = execgw("submit", "--target", gateway.target, "BUY:AAPL:1:same-1")
    again = execgw("submit", "--target", gateway.target, "BUY:AAPL:1:same-1")
    assert again.code == 0 and run_id_of(again) == run_id_of(first)
    assert "already existed: nothing sent again" in again.out


def test_partial_and_failed_runs_exit_2_and_3(execgw: Run, scenario_gateway: GatewayThread) -> None:
    partial = execgw("submit", "--target", scenario_gateway.target, "--watch", "BUY:AAPL:5", "BUY:REJ:5:rej-1")
    assert partial.code == 2, partial.out + partial.err
    assert "REJECTED" in partial.out and "No trading permissions" in partial.out
    assert re.search(r"run \S+ PARTIAL: .*rej-1", partial.out)

    failed = execgw("submit", "--target", scenario_gateway.target, "--watch", "SELL:REJ:1")
    assert failed.code == 3 and re.search(r"run \S+ FAILED", failed.out)


def test_cancel_reports_each_order_and_watch_ends_cancelled(execgw: Run, scenario_gateway: GatewayThread) -> None:
    target = scenario_gateway.target
    submitted = execgw("submit", "--target", target, "BUY:REST:10:rest-1")
    run_id = run_id_of(submitted)
    with ExecGwClient(target) as client:  # wait until IB has acknowledged the order
        next(e for e in client.watch(run_id) if e.order_status.status == pb.ORDER_STATUS_SUBMITTED)

    cancelled = execgw("cancel", run_id, "--target", target)
    assert cancelled.code == 0, cancelled.err
    assert re.search(r"rest-1\s+│\s+1 │ CANCELLED", cancelled.out)

    watched = execgw("watch", run_id, "--target", target)
    assert watched.code == 3
    assert f"run {run_id} CANCELLED" in watched.out


def test_refused_request_lists_the_fields(execgw: Run, gateway: GatewayThread) -> None:
    result = execgw("submit", "--target", gateway.target, "BUY:AAPL:0", "SELL:MSFT:-1")
    assert result.code == 1 and result.out == ""
    accepted = "shares from 0.0001 to 100000 in steps of 0.0001 (at most 4 decimals)"
    assert result.err.strip() == (f"error: request refused: orders[0].quantity: {accepted}; got 0.0; "
                                  f"orders[1].quantity: {accepted}; got -1.0")


def test_submit_live_is_refused_without_confirm_live_and_trades_with_it(execgw: Run, live_desk: Any) -> None:
    target = live_desk.gateway.target
    live = ("submit", "--target", target, "--token-file", str(live_desk.token_file),
            "--mode", "live", "--account", live_desk.account)

    unconfirmed = execgw(*live, "BUY:AAPL:3:live-unconfirmed")
    assert unconfirmed.code == 1 and unconfirmed.out == ""
    # "refused:" is how the CLI shows FAILED_PRECONDITION (PreconditionFailed); INVALID_ARGUMENT
    # would read "request refused:", a missing permission "PERMISSION_DENIED:".
    assert unconfirmed.err.startswith(
        "error: refused: refused by this gateway's limits: confirm_live (live_requires_confirmation): "
        'live runs must carry confirm_live = "LIVE"'), unconfirmed.err
    assert "nothing was written or sent" in unconfirmed.err
    assert live_desk.live.received_orders() == [] and live_desk.paper.received_orders() == []
    with ExecGwClient(target, token_file=live_desk.token_file) as client:
        assert list(client.list()) == []

    confirmed = execgw(*live, "--confirm-live", "--watch", "BUY:AAPL:3:live-confirmed")
    assert confirmed.code == 0, confirmed.err
    assert f"run {run_id_of(confirmed)} SUCCESS: all 1 orders filled" in confirmed.out
    assert [(o.order_ref, o.symbol, o.action, o.quantity, o.refused_with)
            for o in live_desk.live.received_orders()] == [("live-confirmed", "AAPL", "BUY", 3, None)]
    assert {e.account for e in live_desk.live.executions()} == {live_desk.account}
    assert live_desk.paper.received_orders() == []  # live went to the live endpoint only


NO_SUCH_RUN = "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b"  # well formed, and no run has it


@pytest.mark.parametrize("argv", [("run", NO_SUCH_RUN), ("watch", NO_SUCH_RUN), ("cancel", NO_SUCH_RUN)])
def test_unknown_run(execgw: Run, gateway: GatewayThread, argv: tuple[str, ...]) -> None:
    result = execgw(*argv, "--target", gateway.target)
    assert result.code == 1
    assert result.err.strip() == f"error: not found: run_id: no run '{NO_SUCH_RUN}'"


def test_bad_order_argument_is_one_line(execgw: Run) -> None:
    result = execgw("submit", "--target", "127.0.0.1:1", "BUY:AAPL")
    assert result.code == 1
    assert result.err.strip() == ("error: order 'BUY:AAPL': expected SIDE:SYMBOL:QUANTITY[:CLIENT_ORDER_ID], "
                                  "e.g. BUY:AAPL:10")
    result = execgw("submit", "--target", "127.0.0.1:1")
    assert result.code == 1 and "no orders" in result.err


def test_unreachable_gateway_from_the_environment(execgw: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    monkeypatch.setenv("EXECGW_TARGET", "127.0.0.1:1")
    result = execgw("runs", "--timeout", "2")
    assert result.code == 1
    assert result.err.startswith("error: gateway 127.0.0.1:1 unavailable: ")
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_target_flag_wins_over_the_environment(execgw: Run, gateway: GatewayThread,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECGW_TARGET", "127.0.0.1:1")
    assert execgw("runs", "--target", gateway.target).code == 0
    monkeypatch.setenv("EXECGW_TARGET", gateway.target)
    assert execgw("runs").code == 0


def test_demo_runs_the_sample_to_success(execgw: Run) -> None:
    result = execgw("demo")
    assert result.code == 0, result.err
    run_id = run_id_of(result)
    for symbol in ("AAPL", "MSFT", "SPY", "NVDA"):
        assert re.search(rf"│ {symbol}\s+│ FILLED\s+│", result.out), symbol
    assert "PARTIALLY_FILLED" in result.out  # the sample fills in two executions each
    assert result.out.count("└ ") == 8  # two fills under each order
    assert f"run {run_id} SUCCESS: all 4 orders filled" in result.out
    assert result.out.rstrip().endswith("gateway stopped")


def test_demo_keeps_its_database_when_given_one(execgw: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kept.sqlite3"
    result = execgw("demo", "--database-url", url)
    assert result.code == 0 and url in result.out
    assert (tmp_path / "kept.sqlite3").stat().st_size > 0


def test_demo_that_cannot_start_says_why(execgw: Run) -> None:
    result = execgw("demo", "--database-url", "nosuch://db")
    assert result.code == 1
    assert result.err.startswith("error: gateway did not start: ") and "nosuch://db" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [("runs", "--limit", "0"), ("watch", "r1", "--after", "-1"),
                                  ("watch", "r1", "--after", "x")])
def test_bad_numbers_are_usage_errors(execgw: Run, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        execgw(*argv)
    assert caught.value.code == 2
    assert f"argument {argv[-2]}:" in capsys.readouterr().err


def test_through_the_execgw_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Registered on the real `execgw` parser (as server/cli.py will do), next to its own commands."""
    from execgw.client import cli
    from execgw.server import cli as server_cli

    build_parser = server_cli.build_parser

    def with_client_commands() -> argparse.ArgumentParser:
        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "demo" not in commands.choices:  # until server/cli.py lists execgw.client.cli itself
            cli.register(commands)
        return parser

    monkeypatch.setattr(server_cli, "build_parser", with_client_commands)
    with pytest.raises(SystemExit) as caught:
        server_cli.main(["demo"])
    assert caught.value.code == 0
    assert "SUCCESS: all 4 orders filled" in capsys.readouterr().out
