"""Engines: where the default database lives, how URLs are shown, and the per-database settings the
gateway relies on (SQLite shared between processes, MySQL reading what others committed)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from execgw.server.db import engine as engine_module
from execgw.server.db.engine import (
    DATABASE_URL_ENV,
    default_database_url,
    display_url,
    make_engine,
    make_session_factory,
    resolve_database_url,
)
from execgw.server.db.faults import is_outage
from execgw.server.db.migrations import upgrade
from execgw.server.db.models import RunMode, RunStatus, TradeRun


def test_default_database_is_a_sqlite_file_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = default_database_url()
    assert url == f"sqlite:///{tmp_path / 'execgw-data' / 'execgw.sqlite3'}"
    assert (tmp_path / "execgw-data").is_dir()


def test_an_explicit_url_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATABASE_URL_ENV, "sqlite:///from-env.sqlite3")
    assert resolve_database_url("sqlite:///explicit.sqlite3") == "sqlite:///explicit.sqlite3"
    assert resolve_database_url(None) == "sqlite:///from-env.sqlite3"
    monkeypatch.delenv(DATABASE_URL_ENV)
    assert resolve_database_url(None) == default_database_url()


def test_urls_are_shown_without_their_password() -> None:
    assert (
        display_url("mysql+pymysql://execgw:s3cret@db:3306/execgw")
        == "mysql+pymysql://execgw:***@db:3306/execgw"
    )


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database postgresql://u:\\*\\*\\*@h/db"):
        make_engine("postgresql://u:pw@h/db")


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()


def test_a_sqlite_file_is_shared_by_two_engines(tmp_path: Path) -> None:
    # The gateway and a second process (the CLI, a report) open the same file.
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    upgrade(url)
    writer, reader = make_engine(url), make_engine(url)
    try:
        with make_session_factory(writer).begin() as session:
            session.add(TradeRun(id=str(uuid.uuid4()), mode=RunMode.LIVE, status=RunStatus.RUNNING))
        with writer.connect() as held:
            # An open write transaction on one engine doesn't stop the other from reading (WAL).
            held.execute(text("UPDATE trade_runs SET status = 'CANCELLED'"))
            with reader.connect() as conn:
                assert conn.execute(select(TradeRun.status)).scalar_one() == "RUNNING"
            held.commit()
        with make_session_factory(reader).begin() as session:
            session.add(TradeRun(id=str(uuid.uuid4()), mode=RunMode.PAPER, status=RunStatus.RUNNING))
        with writer.connect() as conn:
            assert conn.execute(select(func.count()).select_from(TradeRun)).scalar_one() == 2
    finally:
        writer.dispose()
        reader.dispose()


@pytest.mark.mysql
def test_mysql_connections_read_committed_in_utf8mb4_and_utc(fresh_mysql_url: str) -> None:
    engine = make_engine(fresh_mysql_url)
    try:
        with engine.connect() as conn:
            assert conn.get_isolation_level() == "READ COMMITTED"
            assert conn.exec_driver_sql("SELECT @@character_set_client").scalar() == "utf8mb4"
            # CURRENT_TIMESTAMP defaults must be UTC like every other datetime the gateway stores.
            assert conn.exec_driver_sql("SELECT @@session.time_zone").scalar() == "+00:00"
    finally:
        engine.dispose()


def test_sessions_keep_their_objects_readable_after_commit(database_url: str) -> None:
    # The writer commits in its thread and the loop reads the objects afterwards, without I/O.
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            run = TradeRun(id=str(uuid.uuid4()), mode=RunMode.PAPER, status=RunStatus.RUNNING)
            session.add(run)
            session.commit()
        assert run.status == "RUNNING" and run.created_at is not None
    finally:
        engine.dispose()


def test_a_mysql_server_that_accepts_but_never_answers_is_an_outage_within_the_timeout() -> None:
    # A SIGSTOPped or wedged mysqld: the kernel completes the TCP handshake, nothing answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        engine = make_engine(f"mysql+pymysql://execgw@127.0.0.1:{silent.getsockname()[1]}/execgw", timeout_seconds=0.5)
        outcome: list[BaseException | None] = []

        def connect() -> None:
            try:
                with engine.connect():
                    outcome.append(None)
            except BaseException as exc:  # handed to the test's thread
                outcome.append(exc)

        started = time.monotonic()
        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        worker.join(10)
        engine.dispose()
    assert outcome, "connecting to a silent server never returned"
    assert isinstance(outcome[0], OperationalError) and is_outage(outcome[0]), outcome[0]
    assert time.monotonic() - started < 5


@pytest.mark.mysql
def test_a_query_the_server_does_not_answer_in_time_is_an_outage(mysql_server_url: str) -> None:
    engine = make_engine(mysql_server_url, timeout_seconds=1)
    try:
        with engine.connect() as conn:
            started = time.monotonic()
            with pytest.raises(OperationalError) as caught:
                conn.execute(text("SELECT SLEEP(5)"))
        assert time.monotonic() - started < 3
        assert is_outage(caught.value)
    finally:
        engine.dispose()


def _killed(mysql_url: str, connection_id: int) -> None:
    admin = make_engine(mysql_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"KILL CONNECTION {int(connection_id)}")
    finally:
        admin.dispose()


@pytest.mark.mysql
def test_a_pooled_connection_killed_while_idle_is_replaced_before_use(fresh_mysql_url, monkeypatch) -> None:
    """A quiet night: the server (or a proxy) drops the pool's idle connection. The next use
    pings it, finds it dead and takes a new one; the caller never sees the error."""
    monkeypatch.setattr(engine_module, "MYSQL_IDLE_PING_SECONDS", 0.2)
    engine = make_engine(fresh_mysql_url, timeout_seconds=3)
    try:
        with engine.connect() as conn:
            first = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
        _killed(fresh_mysql_url, first)
        time.sleep(0.3)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one() != first
    finally:
        engine.dispose()


@pytest.mark.mysql
def test_a_connection_used_a_moment_ago_is_not_pinged_again(fresh_mysql_url, monkeypatch) -> None:
    """The writer checks its connection out for every transaction: only one idle past
    MYSQL_IDLE_PING_SECONDS costs a ping (a round trip)."""
    import pymysql.connections

    pings: list[object] = []
    ping = pymysql.connections.Connection.ping
    monkeypatch.setattr(pymysql.connections.Connection, "ping",
                        lambda self, *args, **kwargs: (pings.append(self), ping(self, *args, **kwargs))[1])
    monkeypatch.setattr(engine_module, "MYSQL_IDLE_PING_SECONDS", 0.5)
    engine = make_engine(fresh_mysql_url)
    try:
        for _ in range(5):
            with engine.begin() as conn:
                conn.exec_driver_sql("SELECT 1")
        assert pings == []
        time.sleep(0.6)
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert len(pings) == 1
    finally:
        engine.dispose()
