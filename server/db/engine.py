"""Engines and sessions for the two databases the gateway runs on: MySQL/MariaDB and SQLite.

MySQL is production. SQLite is the zero-setup default (a file under ``./execgw-data``) for a
developer's machine and for tests that need no server.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from .secrets import masked_url

DATABASE_URL_ENV = "EXECGW_DATABASE_URL"

# pymysql holds idle connections that MySQL closes after wait_timeout (8 h by default) and that
# proxies and NAT close much sooner; recycle well before either.
MYSQL_POOL_RECYCLE_SECONDS = 1800
# Without read/write timeouts pymysql waits for ever on a server that accepts bytes but never
# answers (a SIGSTOPped or wedged mysqld, a half-dead network path): the writer then holds IB's
# reports without bound and nobody learns that the database is gone. With them a hung server
# raises OperationalError 2013 / 2006 / 2003, which `faults.is_outage` takes for an outage.
DEFAULT_DATABASE_TIMEOUT_SECONDS = 5.0
# Connections the gateway needs at once: the writer, the readers, the watchers' readers, and a
# few for start-up and the CLI-like reads. Above SQLAlchemy's 5 so that no thread of the store
# waits for a connection another pool's thread holds.
MYSQL_POOL_SIZE = 12
# A pooled MySQL connection idle longer than this is pinged before use (see _ping_if_idle).
MYSQL_IDLE_PING_SECONDS = 1.0
_IDLE_SINCE = "execgw_idle_since"  # in a pooled connection's record: when it was last checked in
# How long a SQLite writer waits for another's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000


def default_database_url() -> str:
    """``sqlite:///<cwd>/execgw-data/execgw.sqlite3``, creating the folder."""
    folder = Path.cwd() / "execgw-data"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'execgw.sqlite3'}"


def resolve_database_url(explicit: str | None = None) -> str:
    """The URL given, else ``$EXECGW_DATABASE_URL``, else the SQLite default."""
    return explicit or os.environ.get(DATABASE_URL_ENV) or default_database_url()


def display_url(url: str | URL) -> str:
    """The URL with its password masked, in the user part and in the query: the only form of a
    URL that may be logged or printed."""
    return masked_url(url)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_mysql(url: str | URL) -> bool:
    return make_url(url).get_backend_name() in ("mysql", "mariadb")


def make_engine(
    url: str | URL, *, echo: bool = False, timeout_seconds: float = DEFAULT_DATABASE_TIMEOUT_SECONDS
) -> Engine:
    """An engine set up for the gateway's use of ``url`` (MySQL/MariaDB or SQLite).
    ``timeout_seconds`` bounds connecting to, reading from and writing to a MySQL server."""
    parsed = make_url(url)
    if is_sqlite(parsed):
        return _make_sqlite_engine(parsed, echo=echo)
    if is_mysql(parsed):
        return _make_mysql_engine(parsed, echo=echo, timeout_seconds=timeout_seconds)
    raise ValueError(f"unsupported database {display_url(parsed)}: use mysql+pymysql:// or sqlite://")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: the writer commits in its own thread and hands the objects to the
    # event loop, which must be able to read them without going back to the database.
    return sessionmaker(engine, expire_on_commit=False)


def _make_mysql_engine(url: URL, *, echo: bool, timeout_seconds: float) -> Engine:
    if "charset" not in url.query:
        # IB sends symbol descriptions and error texts outside latin1; the tables are utf8mb4.
        url = url.update_query_dict({"charset": "utf8mb4"})
    engine = create_engine(
        url,
        echo=echo,
        # A connection dropped while idle must not fail the first write after a quiet night:
        # pinged before use, but only after a second idle (_ping_if_idle), not at every checkout
        # as pool_pre_ping does. The writer checks its connection out once a transaction: under
        # a flood a ping each time was a round trip in every transaction (8% of its samples).
        pool_recycle=MYSQL_POOL_RECYCLE_SECONDS,
        pool_size=MYSQL_POOL_SIZE,
        # Each state change commits with its event row; READ COMMITTED lets readers (WatchRun
        # replay, listings) see those commits at once instead of a REPEATABLE READ snapshot, and
        # avoids InnoDB's gap locks between concurrent writers.
        isolation_level="READ COMMITTED",
        # The columns hold naive UTC, and the seed's DEFAULT/ON UPDATE CURRENT_TIMESTAMP follows the
        # session time zone, which is the server's local time unless set.
        connect_args={"init_command": "SET time_zone = '+00:00'", **_timeouts(url, timeout_seconds)},
    )
    event.listen(engine, "connect", _note_idle_since)
    event.listen(engine, "checkin", _note_idle_since)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _note_idle_since(dbapi_connection: Any, connection_record: Any) -> None:
    connection_record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """SQLAlchemy's pessimistic disconnect handling, done on a checkout event: a connection idle
    past MYSQL_IDLE_PING_SECONDS is pinged, and one that does not answer is replaced (the pool
    takes DisconnectionError as "get another"). One used a moment ago is trusted: if it died in
    between, the statement fails as any statement on a lost connection does, and the writer
    holds and retries (reports.py)."""
    idle_since = connection_record.info.get(_IDLE_SINCE)
    if idle_since is None or time.monotonic() - idle_since < MYSQL_IDLE_PING_SECONDS:
        return
    try:
        dbapi_connection.ping(reconnect=False)
    except Exception as exc:  # pymysql's OperationalError / InterfaceError, or the socket's OSError
        raise DisconnectionError(f"connection idle {time.monotonic() - idle_since:.0f}s did not answer a ping") from exc


def _timeouts(url: URL, seconds: float) -> dict[str, float]:
    # pymysql takes whole seconds for connect_timeout, fractions for the socket timeouts. A
    # timeout given in the URL's query wins: connect_args would otherwise override it.
    wanted = {"connect_timeout": max(1, round(seconds)), "read_timeout": seconds, "write_timeout": seconds}
    return {key: value for key, value in wanted.items() if key not in url.query}


def _make_sqlite_engine(url: URL, *, echo: bool) -> Engine:
    engine = create_engine(
        url,
        echo=echo,
        # The writer thread and the loop's readers share the pool; SQLite itself serialises writes.
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers don't block the writer nor it them, so a second process (CLI, a watcher)
        # can read while the gateway writes. An in-memory database stays in "memory" mode.
        cursor.execute("PRAGMA journal_mode=WAL")
        # SQLite ignores FOREIGN KEY clauses unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
