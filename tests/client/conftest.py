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
