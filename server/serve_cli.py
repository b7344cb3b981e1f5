"""`execgw serve`: the gateway's main job."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pydantic import ValidationError

from execgw.server import event_loop, logs
from execgw.server.api.bind_guard import RemoteBindRefused
from execgw.server.api.callers import CallersFileError
from execgw.server.api.tls import TlsConfigError
from execgw.server.app import serve
from execgw.server.config import load_settings
from execgw.server.db.secrets import PASSWORD_ENV, PASSWORD_FILE_ENV, DatabasePasswordError, carries_password
from execgw.server.engine.registry import GatewayNameTaken
from execgw.server.metrics.exposition import MetricsPortUnavailable

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
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (EXECGW_DATABASE_URL); keep the password out of it, a flag is visible to `ps`",
    )
    parser.add_argument(
        "--database-password-file", type=Path, metavar="FILE",
        help=f"file holding the database password (EXECGW_DATABASE_PASSWORD_FILE; or {PASSWORD_ENV})",
    )
    parser.add_argument("--tls-cert", type=Path, metavar="FILE",
                        help="PEM certificate of the gRPC port; serves TLS (EXECGW_TLS_CERT_FILE)")
    parser.add_argument("--tls-key", type=Path, metavar="FILE",
                        help="PEM key of --tls-cert, unencrypted, mode 600 (EXECGW_TLS_KEY_FILE)")
    parser.add_argument("--tls-client-ca", type=Path, metavar="FILE",
                        help="PEM CA signing client certificates; clients must present one (EXECGW_TLS_CLIENT_CA_FILE)")
    parser.add_argument(
        "--insecure-allow-remote", action="store_const", const=True, default=None,
        help="listen on a non-loopback address without TLS and caller credentials (EXECGW_INSECURE_ALLOW_REMOTE)",
    )
    parser.add_argument("--ib-paper", help="host:port of the paper TWS/IB Gateway (EXECGW_IB_PAPER)")
    parser.add_argument("--ib-live", help="host:port of the live TWS/IB Gateway (EXECGW_IB_LIVE)")
    parser.add_argument("--ib-client-id", type=int, help="IB API client id (EXECGW_IB_CLIENT_ID)")
    parser.add_argument(
        "--live-enabled", action="store_const", const=True, default=None,
        help="accept live runs (also needs --ib-live) (EXECGW_LIVE_ENABLED)",
    )
    parser.add_argument(
        "--metrics-listen", metavar="HOST:PORT",
        help="serve Prometheus metrics on this address, e.g. 127.0.0.1:9464; unset: none (EXECGW_METRICS_LISTEN)",
    )
    parser.add_argument(
        "--metrics-allow-remote", action="store_const", const=True, default=None,
        help="allow --metrics-listen on a non-loopback address: plain HTTP, no credentials (EXECGW_METRICS_ALLOW_REMOTE)",
    )
    parser.add_argument("--log-format", choices=["text", "json"], help="key=value text or JSON lines (EXECGW_LOG_FORMAT)")
    parser.add_argument(
        "--log-level", action="append", metavar="COMPONENT=LEVEL", dest="log_levels",
        help="level of one component's logger, e.g. execgw.server.ib=DEBUG; repeatable (EXECGW_LOG_LEVELS, JSON)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(
            args.config,
            listen=args.listen,
            tls_cert_file=args.tls_cert,
            tls_key_file=args.tls_key,
            tls_client_ca_file=args.tls_client_ca,
            insecure_allow_remote=args.insecure_allow_remote,
            database_url=args.database_url,
            database_password_file=args.database_password_file,
            ib_paper=args.ib_paper,
            ib_live=args.ib_live,
            ib_client_id=args.ib_client_id,
            live_enabled=args.live_enabled,
            metrics_listen=args.metrics_listen,
            metrics_allow_remote=args.metrics_allow_remote,
            log_format=args.log_format,
            log_levels=_levels_of(args.log_levels),
        )
        logs.configure(settings.log_format, settings.log_levels, verbose=args.verbose)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    if args.database_url and carries_password(args.database_url):
        log.warning("the database password in --database-url is visible to every local user (ps); give it in "
                    "%s or a file (%s, --database-password-file) instead", PASSWORD_ENV, PASSWORD_FILE_ENV)
    try:
        event_loop.run(serve(settings))
    except (DatabasePasswordError, TlsConfigError, CallersFileError) as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    except (RemoteBindRefused, MetricsPortUnavailable, GatewayNameTaken) as exc:
        log.error("%s", exc)
        return 2
    return 0


def _levels_of(given: list[str] | None) -> dict[str, str] | None:
    """`--log-level a=DEBUG --log-level b=WARNING` as the settings' mapping; None when not given,
    so the environment or the file still apply."""
    if not given:
        return None
    levels = {}
    for item in given:
        name, sep, level = item.partition("=")
        if not sep or not name.strip() or not level.strip():
            raise ValueError(f"--log-level expects COMPONENT=LEVEL, got {item!r}")
        levels[name.strip()] = level.strip()
    return levels
