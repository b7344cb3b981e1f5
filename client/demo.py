"""``execgw demo``: the whole path in one command, with nothing to set up.

Starts the TWS simulator and a gateway in this process (the simulator as IB paper, a temporary
SQLite file, free ports on 127.0.0.1), submits a sample run through the client, follows it as
``execgw watch`` does, prints the finished run with its fills, and stops both.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from execgw.client.cli import exit_code, print_error, reports_errors
from execgw.client.client import ExecGwClient
from execgw.client.orders import Order, new_client_order_id
from execgw.client.progress import RunProgress, follow_run
from execgw.client.render import make_console, run_view, submit_view
from execgw.server.db.engine import display_url
from execgw.server.embedded import GatewayStartError, GatewayThread
from execgw.sim import Scenario, SimulatorThread

SAMPLE_RUN = (("BUY", "AAPL", 100), ("SELL", "MSFT", 50), ("BUY", "SPY", 10), ("BUY", "NVDA", 25))
# Each order fills in two executions a moment apart, so the demo shows orders PARTIALLY_FILLED on
# their way to FILLED instead of finishing before the first screen update.
DEMO_SCENARIO = {"default": {"fills": 2, "fill_delay": 0.1, "fill_interval": 0.3}}


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="run a sample order run against an in-process gateway and the built-in simulator",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    demo.add_argument("--database-url", metavar="URL",
                      help="keep the demo's data here (default: a temporary SQLite file, deleted afterwards)")
    demo.set_defaults(func=run_demo)


def sample_orders() -> list[Order]:
    # One id prefix per demo, so a run stands out in `execgw runs` of a kept database.
    prefix = f"demo-{new_client_order_id()[:8]}"
    return [Order(f"{prefix}-{n}", symbol, side, qty) for n, (side, symbol, qty) in enumerate(SAMPLE_RUN, 1)]


@contextmanager
def simulator_running() -> Iterator[SimulatorThread]:
    simulator = SimulatorThread(scenario=Scenario.from_dict(DEMO_SCENARIO), seed=1)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@reports_errors
def run_demo(args: argparse.Namespace) -> int:
    gateway_log = logging.getLogger("execgw")
    level = gateway_log.level
    if not getattr(args, "verbose", False):
        # The gateway's INFO lines (listening, run finished ...) would interleave with the run's view.
        gateway_log.setLevel(logging.WARNING)
    try:
        return _demo(args.database_url)
    except GatewayStartError as error:
        return print_error(str(error))
    finally:
        gateway_log.setLevel(level)


def _demo(kept_database_url: str | None) -> int:
    console = make_console()
    with tempfile.TemporaryDirectory(prefix="execgw-demo-") as scratch:
        database_url = kept_database_url or f"sqlite:///{Path(scratch) / 'demo.sqlite3'}"
        console.print("starting the TWS simulator and the gateway ...", style="dim")
        with simulator_running() as simulator, GatewayThread(
            # ib_paper, ib_live and live_enabled are given so that an operator's EXECGW_IB_*
            # environment can never point the demo at a real TWS.
            database_url=database_url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{simulator.port}",
            ib_live=None, live_enabled=False,
        ) as gateway:
            console.print(f"gateway on {gateway.target}, IB paper = simulator on 127.0.0.1:{simulator.port}, "
                          f"database {display_url(kept_database_url) if kept_database_url else '(temporary)'}", style="dim", soft_wrap=True)
            with ExecGwClient(gateway.target) as client:
                result = client.submit(sample_orders(), submitted_by="execgw demo")
                console.print(submit_view(result))
                console.print()
                # transient: the run's full view follows, the live table need not stay on screen too.
                progress = follow_run(client, console, result.run_id, transient=True,
                                      progress=RunProgress.from_run(result.run, with_state=False))
                console.print()
                console.print(run_view(client.get(result.run_id)))
        console.print("gateway stopped", style="dim")
    return exit_code(progress.status)
