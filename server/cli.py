"""The `execgw` command: one entry point, one subcommand per job.

Each concern registers its own subcommands (``register(subparsers)``), so this module stays a
table of contents and never grows the logic of the commands themselves.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from execgw.client import cli as client_cli
    from execgw.server import callers_cli, serve_cli
    from execgw.server.db import cli as db_cli
    from execgw.sim import cli as sim_cli

    parser = argparse.ArgumentParser(prog="execgw", description="Execution gateway for Interactive Brokers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (serve_cli, client_cli, sim_cli, db_cli, callers_cli):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # ibapi logs every message it sends and receives at INFO; keep that for --verbose.
    logging.getLogger("ibapi").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    sys.exit(args.func(args))
