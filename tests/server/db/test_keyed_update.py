"""`KeyedUpdate` changes many rows in one statement on MariaDB: every value must be stored exactly
as SQLAlchemy's own executemany UPDATE of the same rows stores it, on SQLite and MariaDB,
whatever the text holds; rows not named are left alone; updated_at is set as SQLAlchemy sets it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    insert,
    text,
    update,
)
from sqlalchemy.dialects import mysql

from execgw.server.db import keyed_update
from execgw.server.db.engine import make_engine
from execgw.server.db.keyed_update import KeyedUpdate

AWKWARD = [  # texts that escaping gets wrong first
    "plain", "", "it's", 'say "hi"', "back\\slash\\", "\\'", "'\\", "100% sure %s %(x)s %%", "line\nbreak\r\n",
    "nul\x00byte", "ctrl-z \x1a", "tab\there", "é ü € 日本 😀", "--; DROP TABLE t; --",
]

_ticks = itertools.count(1)

metadata = MetaData()
scratch = Table(
    "keyed_update_scratch", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exec_id", String(64), nullable=False, unique=True),
    Column("text", String(200)),
    Column("amount", Double),
    Column("moment", DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")),
    Column("count", BigInteger),
    # As the orders' updated_at: a Python onupdate (here a counter, so each statement's value shows).
    Column("touched", Integer, nullable=False, default=0, onupdate=lambda: next(_ticks)),
)
COLUMNS = ("text", "amount", "moment", "count")


@pytest.fixture
def db(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _seed(db: Engine, batch: str, count: int) -> None:
    with db.begin() as conn:
        conn.execute(insert(scratch), [{"exec_id": f"{batch}-{i:03d}", "text": "before", "amount": 1.0,
                                        "moment": None, "count": 7} for i in range(count)])


def _changes(batch: str) -> list[dict[str, Any]]:
    moments = [datetime(2026, 11, 28, 14, 30, 5), datetime(2026, 11, 28, 14, 30, 5, 123456), None]
    amounts = [0.1, 1e-300, -2.5e300, 100.0, None, 3.0, 0.1 + 0.2]
    return [{"exec_id": f"{batch}-{i * 2:03d}", "text": value, "amount": amounts[i % len(amounts)],
             "moment": moments[i % len(moments)], "count": [None, 0, -1, 2**53 + 1][i % 4]}
            for i, value in enumerate(AWKWARD)]


def _stored(db: Engine, batch: str) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT exec_id, text, amount, moment, count, touched FROM keyed_update_scratch "
            "WHERE exec_id LIKE :b ORDER BY exec_id"), {"b": f"{batch}-%"})]


def _updates_sent(db: Engine) -> list[str]:
    sent: list[str] = []

    @event.listens_for(db, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.startswith("UPDATE"):
            sent.append(statement)

    return sent


def _without_touched(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(exec_id.split("-", 1)[1], *rest[:-1]) for exec_id, *rest in rows]


def test_rows_are_stored_exactly_as_sqlalchemys_update_stores_them_and_only_those(db):
    count = 2 * len(AWKWARD) + 3
    _seed(db, "ours", count)
    _seed(db, "core", count)
    sent = _updates_sent(db)
    with db.begin() as conn:
        KeyedUpdate(scratch, "exec_id", COLUMNS).execute(conn, _changes("ours"))
    ours_sent = list(sent)
    core_statement = update(scratch).where(scratch.c.exec_id == bindparam("b_exec_id")).values(
        {c: bindparam(f"b_{c}") for c in COLUMNS})
    with db.begin() as conn:
        conn.execute(core_statement, [{f"b_{k}": v for k, v in row.items()} for row in _changes("core")])

    ours, core = _stored(db, "ours"), _stored(db, "core")
    assert _without_touched(ours) == _without_touched(core)
    changed = {row["exec_id"] for row in _changes("ours")}
    assert [row[1] for row in ours if row[0] in changed] == AWKWARD
    untouched = [row for row in ours if row[0] not in changed]
    assert len(untouched) == count - len(AWKWARD)
    assert all(row[1:] == ("before", 1.0, None, 7, 0) for row in untouched)
    assert all(row[-1] > 0 for row in ours if row[0] in changed), "updated_at's onupdate was not applied"
    if db.dialect.name != "sqlite":
        assert len(ours_sent) == 1, "one statement for every row on MariaDB"


@pytest.mark.mysql
def test_more_rows_than_one_statement_takes_are_split_and_all_stored(fresh_mysql_url, monkeypatch):
    monkeypatch.setattr(keyed_update, "ROWS_PER_STATEMENT", 4)
    engine = make_engine(fresh_mysql_url)
    try:
        metadata.create_all(engine)
        _seed(engine, "split", 2 * len(AWKWARD))
        sent = _updates_sent(engine)
        with engine.begin() as conn:
            KeyedUpdate(scratch, "exec_id", COLUMNS).execute(conn, _changes("split"))
        stored = {row[0]: row[1] for row in _stored(engine, "split")}
    finally:
        engine.dispose()
    assert len(sent) == -(-len(AWKWARD) // 4)
    assert [stored[row["exec_id"]] for row in _changes("split")] == AWKWARD


def test_a_key_given_twice_stores_the_later_row_as_executemany_does(db):
    _seed(db, "twice", 2)
    rows = [{"exec_id": "twice-000", "text": "first", "amount": 1.5, "moment": None, "count": 1},
            {"exec_id": "twice-001", "text": "other", "amount": 2.5, "moment": None, "count": 2},
            {"exec_id": "twice-000", "text": "second", "amount": 3.5, "moment": None, "count": 3}]
    with db.begin() as conn:
        KeyedUpdate(scratch, "exec_id", COLUMNS).execute(conn, rows)
    assert [row[:5] for row in _stored(db, "twice")] == [("twice-000", "second", 3.5, None, 3),
                                                        ("twice-001", "other", 2.5, None, 2)]


@pytest.mark.mysql
def test_a_mariadb_session_without_backslash_escapes_is_escaped_its_way(fresh_mysql_url):
    engine = make_engine(fresh_mysql_url)
    try:
        metadata.create_all(engine)
        _seed(engine, "nobs", 2 * len(AWKWARD))
        with engine.begin() as conn:
            conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
            KeyedUpdate(scratch, "exec_id", COLUMNS).execute(conn, _changes("nobs"))
            conn.exec_driver_sql("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        stored = {row[0]: row[1] for row in _stored(engine, "nobs")}
    finally:
        engine.dispose()
    assert [stored[row["exec_id"]] for row in _changes("nobs")] == AWKWARD
