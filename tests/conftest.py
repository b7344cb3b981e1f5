"""Fixtures shared by the whole suite: databases.

- ``mysql_server_url``: the MariaDB/MySQL server named by ``$EXECGW_TEST_MYSQL_URL``.
- ``fresh_mysql_url``: a new, empty database on it, dropped afterwards.
- ``empty_database_url`` / ``database_url``: one test per database (ids ``sqlite`` and ``mysql``),
  empty or already upgraded to the current schema.

A missing MySQL server skips its tests on a developer's machine but fails them in CI, where a
silently skipped half of the suite would look green.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from execgw.server.db.migrations import upgrade

MYSQL_URL_ENV = "EXECGW_TEST_MYSQL_URL"
DEFAULT_TEST_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"

DATABASES = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    url = os.environ.get(MYSQL_URL_ENV, DEFAULT_TEST_MYSQL_URL)
    shown = make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        message = f"no MySQL/MariaDB at {shown} (set {MYSQL_URL_ENV}): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        # Only outside CI: a newcomer without MySQL still runs the SQLite half of the suite.
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def fresh_mysql_url(mysql_server_url: str) -> Iterator[str]:
    name = f"execgw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(mysql_server_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        yield make_url(mysql_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(params=DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables: a SQLite file in tmp_path, or a fresh MySQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'execgw.sqlite3'}"
    # Looked up only for the mysql case, so the sqlite half runs without a server.
    return request.getfixturevalue("fresh_mysql_url")


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A database at the current schema (``upgrade`` already ran), on each backend."""
    upgrade(empty_database_url)
    return empty_database_url
