"""Fixtures: real gateways on free 127.0.0.1 ports (SQLite in tmp_path), clients, and a runner of
the ``execgw`` client subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from execgw.client import ExecGwClient, RetryPolicy, cli
from execgw.server.embedded import GatewayThread
from execgw.sim import Scenario, SimulatorThread


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    with GatewayThread(database_url=f"sqlite:///{tmp_path}/gw.sqlite3", listen="127.0.0.1:0") as running:
        yield running


@pytest.fixture
def gateway_port(gateway: GatewayThread) -> int:
    return gateway.port


@pytest.fixture
def client(gateway: GatewayThread) -> Iterator[ExecGwClient]:
    with ExecGwClient(gateway.target, timeout=10, retry=RetryPolicy(initial_backoff=0.05)) as connected:
        yield connected


# Symbols with scripted outcomes at the simulator; every other symbol fills at once.
SCENARIO = {
    "symbols": {
        "REJ": {"outcome": "reject", "reject_reason": "No trading permissions"},
        "REST": {"outcome": "rest"},
    },
}


@pytest.fixture
def scenario_gateway(tmp_path: Path) -> Iterator[GatewayThread]:
    """A gateway whose IB paper is a simulator that rejects REJ and leaves REST orders working."""
    simulator = SimulatorThread(scenario=Scenario.from_dict(SCENARIO), seed=1)
    simulator.start()
    try:
        with GatewayThread(database_url=f"sqlite:///{tmp_path}/gw.sqlite3", listen="127.0.0.1:0",
                          ib_paper=f"127.0.0.1:{simulator.port}") as running:
            yield running
    finally:
        simulator.stop()


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture
def execgw(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Runs one ``execgw`` client subcommand in this process, as the console script would."""

    def run(*argv: str) -> Outcome:
        parser = argparse.ArgumentParser(prog="execgw")
        parser.add_argument("-v", "--verbose", action="store_true")
        cli.register(parser.add_subparsers(dest="command", required=True))
        capsys.readouterr()
        args = parser.parse_args(list(argv))
        code = args.func(args)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


LIVE_ACCOUNT = "U1234567"  # not DU…/DF…: what a live TWS reports


@dataclass
class LiveDesk:
    """A gateway with live enabled, its two TWS simulators and the token file of a live caller."""

    gateway: GatewayThread
    paper: SimulatorThread
    live: SimulatorThread
    token_file: Path
    account: str = LIVE_ACCOUNT


@pytest.fixture
def live_desk(tmp_path: Path) -> Iterator[LiveDesk]:
    """Paper goes to one simulator, live (enabled) to another reporting LIVE_ACCOUNT; the callers
    file holds one caller with the live permission, its token in a file as `caller add` printed it."""
    from execgw.server.api.callers import Permission, add_caller

    callers = tmp_path / "callers.toml"
    token_file = tmp_path / "desk.token"
    token_file.write_text(add_caller(callers, "desk", [Permission.READ, Permission.PAPER, Permission.LIVE]) + "\n")
    paper = SimulatorThread(seed=1)
    live = SimulatorThread(accounts=[LIVE_ACCOUNT], seed=2)
    paper.start()
    live.start()
    try:
        with GatewayThread(database_url=f"sqlite:///{tmp_path}/gw.sqlite3", listen="127.0.0.1:0",
                           ib_paper=f"127.0.0.1:{paper.port}", ib_live=f"127.0.0.1:{live.port}",
                           live_enabled=True, callers_file=callers) as running:
            yield LiveDesk(running, paper, live, token_file)
    finally:
        live.stop()
        paper.stop()
