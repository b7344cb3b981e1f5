"""``execgw db …``: database chores that run outside the gateway."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .engine import DATABASE_URL_ENV, display_url, resolve_database_url
from .secrets import (
    PASSWORD_ENV,
    PASSWORD_FILE_ENV,
    DatabasePasswordError,
    carries_password,
    password_from_environment,
    with_password,
)

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
        help=f"SQLAlchemy URL, e.g. mysql+pymysql://user@host:3306/execgw "
        f"(default: ${DATABASE_URL_ENV}, else sqlite:///./execgw-data/execgw.sqlite3); keep the password "
        f"out of it (a flag is visible to `ps`): ${PASSWORD_ENV} or a password file",
    )
    upgrade.add_argument(
        "--database-password-file", type=Path, metavar="FILE", default=None,
        help=f"file holding the database password (default: ${PASSWORD_FILE_ENV})",
    )
    upgrade.set_defaults(func=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    """Exit code 0 when the schema is current (whether or not anything had to run), 1 on failure."""
    from .migrations import upgrade  # imported late: `execgw --help` needn't load SQLAlchemy's dialects

    if args.database_url and carries_password(args.database_url):
        log.warning("the database password in --database-url is visible to every local user (ps); give it in "
                    "%s or a file (%s, --database-password-file) instead", PASSWORD_ENV, PASSWORD_FILE_ENV)
    try:
        url = with_password(resolve_database_url(args.database_url),
                            password_from_environment(args.database_password_file))
    except DatabasePasswordError as exc:
        log.error("%s", exc)
        return 1
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
