"""`execgw serve`: the gateway's main job."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from pydantic import ValidationError

from execgw.server.app import serve
from execgw.server.config import load_settings

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the gateway (gRPC server + IB sessions)",
        description=(
            "Run the execution gateway. With no configuration it uses the embedded defaults: a SQLite "
            "file under ./execgw-data, the built-in TWS simulator as the paper endpoint, and "
            "127.0.0.1:50051. Flags override EXECGW_* environment variables, which override --config."
        ),
    )
    parser.add_argument("--config", type=Path, help="TOML file with settings (keys as in the README table)")
    parser.add_argument("--listen", help="host:port to serve gRPC on (EXECGW_LISTEN)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (EXECGW_DATABASE_URL)")
    parser.add_argument("--ib-paper", help="host:port of the paper TWS/IB Gateway (EXECGW_IB_PAPER)")
    parser.add_argument("--ib-live", help="host:port of the live TWS/IB Gateway (EXECGW_IB_LIVE)")
    parser.add_argument("--ib-client-id", type=int, help="IB API client id (EXECGW_IB_CLIENT_ID)")
    parser.add_argument(
        "--live-enabled", action="store_const", const=True, default=None,
        help="accept live runs (also needs --ib-live) (EXECGW_LIVE_ENABLED)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(
            args.config,
            listen=args.listen,
            database_url=args.database_url,
            ib_paper=args.ib_paper,
            ib_live=args.ib_live,
            ib_client_id=args.ib_client_id,
            live_enabled=args.live_enabled,
        )
    except (ValidationError, FileNotFoundError) as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    asyncio.run(serve(settings))
    return 0
