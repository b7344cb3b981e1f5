"""``execgw db …``: database chores that run outside the gateway."""

from __future__ import annotations

import argparse
import logging

from .engine import DATABASE_URL_ENV, display_url, resolve_database_url

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser("db", help="database schema")
    commands = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    upgrade = commands.add_parser(
        "upgrade",
        help="bring the database to the current schema (idempotent)",
        description="Apply the SQL files under deploy/mysql not yet recorded in schema_migrations "
        "(MySQL/MariaDB), or create the tables from the models (SQLite).",
    )
    upgrade.add_argument(
        "--database-url",
        metavar="URL",
        default=None,
        help=f"SQLAlchemy URL, e.g. mysql+pymysql://user:pass@host:3306/execgw "
        f"(default: ${DATABASE_URL_ENV}, else sqlite:///./execgw-data/execgw.sqlite3)",
    )
    upgrade.set_defaults(func=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    """Exit code 0 when the schema is current (whether or not anything had to run), 1 on failure."""
    from .migrations import upgrade  # imported late: `execgw --help` needn't load SQLAlchemy's dialects

    url = resolve_database_url(args.database_url)
    shown = display_url(url)
    try:
        applied = upgrade(url)
    except Exception as exc:
        # The driver's message names the host and user, never the password.
        log.error("upgrade of %s failed: %s", shown, exc)
        return 1
    if applied:
        for name in applied:
            print(f"applied {name}")
        print(f"{shown}: upgraded ({len(applied)} applied)")
    else:
        print(f"{shown}: schema is up to date")
    return 0
