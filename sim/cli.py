"""``execgw sim``: run the TWS simulator standalone until Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from execgw.sim.scenario import Scenario
from execgw.sim.simulator import DEFAULT_ACCOUNT, Simulator

log = logging.getLogger("execgw.sim")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the TWS API simulator (server version 157)",
        description="Listen as a TWS/IB Gateway would; ibapi and ib_async clients connect unmodified.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4002,
                        help="port to listen on (default 4002, IB Gateway paper; 0 picks a free one)")
    parser.add_argument("--account", action="append", dest="accounts", metavar="ACCOUNT",
                        help=f"managed account, repeatable (default {DEFAULT_ACCOUNT} or the scenario's)")
    parser.add_argument("--scenario", metavar="FILE", help="scenario file, .json or .toml")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated prices and ids")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
        simulator = Simulator(scenario=scenario, accounts=args.accounts, seed=args.seed)
    except (OSError, ValueError) as exc:
        log.error("cannot start the simulator: %s", exc)
        return 2
    try:
        return asyncio.run(_serve(simulator, args.host, args.port))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130


async def _serve(simulator: Simulator, host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await simulator.start(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return 1
    # One line a supervisor (or a test) can wait for, with the port actually bound.
    print(f"execgw sim listening on {host}:{simulator.port}", flush=True)
    try:
        await stop.wait()
        log.info("signal received, stopping")
    finally:
        await simulator.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0
