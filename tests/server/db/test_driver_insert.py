"""`DriverInsert` writes rows past SQLAlchemy's per-row work and, on MariaDB, past pymysql's
escaping of the JSON texts and datetimes: every value must read back exactly as SQLAlchemy's own
INSERT of the same row stores it, on SQLite and MariaDB, whatever the text holds (quotes,
backslashes, %, line breaks, NUL, non-ASCII), across statements split at pymysql's size, and on a
MariaDB session in NO_BACKSLASH_ESCAPES mode (whose escaping differs)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pymysql.converters
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import ProgrammingError

from execgw.server.db import driver_insert
from execgw.server.db.driver_insert import DriverInsert
from execgw.server.db.engine import make_engine

AWKWARD = [
    "plain", "", "it's", 'say "hi"', "back\\slash\\", "\\'", "'\\", "100% sure %s %(x)s %%", "line\nbreak\r\n",
    "nul\x00byte", "ctrl-z \x1a", "tab\there", "é ü € 日本 😀", "--; DROP TABLE t; --",
]

metadata = MetaData()
scratch = Table(
    "driver_insert_scratch", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch", String(16), nullable=False),
    Column("position", Integer, nullable=False),
    Column("text", String(200)),
    # A None JSON value is SQL NULL through DriverInsert (the gateway never writes one); the
    # column says so, so that SQLAlchemy's own INSERT stores NULL too.
    Column("doc", JSON(none_as_null=True)),
    Column("moment", DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")),  # as stored_at
    Column("amount", Double),
    Column("count", BigInteger),
)
COLUMNS = ("batch", "position", "text", "doc", "moment", "amount", "count")


@pytest.fixture
def db(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _rows(batch: str) -> list[dict[str, Any]]:
    rows = []
    moments = [datetime(2026, 11, 28, 14, 30, 5), datetime(2026, 11, 28, 14, 30, 5, 123456), None]
    amounts = [0.1, 1e-300, -2.5e300, 100.0, None, 3.0]
    for position, value in enumerate(AWKWARD):
        rows.append({
            "batch": batch, "position": position, "text": value,
            "doc": {"value": value, "nested": {"list": [1, None, True, 1.5, value]}, value or "k": "v"},
            "moment": moments[position % len(moments)], "amount": amounts[position % len(amounts)],
            "count": [None, 0, -1, 2**53 + 1][position % 4],
        })
    rows.append({c: None for c in COLUMNS} | {"batch": batch, "position": len(AWKWARD)})
    return rows


def _stored(db: Engine, batch: str) -> list[tuple[Any, ...]]:
    """Each row as the database returns it raw (datetimes as the driver reads them), by
    position; the JSON text parsed by json.loads, as SQLAlchemy reads it (the writer's JSON is
    compact, SQLAlchemy's has spaces: the values are what must match)."""
    with db.connect() as conn:
        rows = conn.execute(text(
            "SELECT position, text, doc, moment, amount, count FROM driver_insert_scratch "
            "WHERE batch = :b ORDER BY position"), {"b": batch})
        return [(p, t, None if doc is None else json.loads(doc), *rest) for p, t, doc, *rest in rows]


def _statements(db: Engine) -> list[str]:
    sent: list[str] = []

    @event.listens_for(db, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.startswith("INSERT INTO"):
            sent.append(statement)

    return sent


def _insert_both_ways(db: Engine) -> tuple[list[str], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows through DriverInsert (batch "driver") and through SQLAlchemy's INSERT (batch
    "core"); the statements DriverInsert sent, and both batches as stored."""
    sent = _statements(db)
    with db.begin() as conn:
        DriverInsert(scratch, COLUMNS).execute(conn, _rows("driver"))
    ours = list(sent)
    with db.begin() as conn:
        conn.execute(insert(scratch), _rows("core"))
    return ours, _stored(db, "driver"), _stored(db, "core")


def test_rows_read_back_exactly_as_sqlalchemy_stores_them(db):
    sent, driver, core = _insert_both_ways(db)
    assert driver == core
    assert [row[1] for row in driver[:-1]] == AWKWARD
    with db.connect() as conn:
        typed = conn.execute(select(scratch.c.doc).where(scratch.c.batch == "driver").order_by(scratch.c.position))
        assert [doc for (doc,) in typed][:-1] == [row["doc"] for row in _rows("x")][:-1]
    assert len(sent) == 1, "one executemany"


@pytest.mark.mysql
def test_rows_past_one_statement_are_split_and_all_stored(fresh_mysql_url, monkeypatch):
    """The multi-row INSERTs are split where pymysql splits its own: no statement past its
    `max_stmt_length` bytes unless a single row is longer."""
    import pymysql.cursors

    monkeypatch.setattr(pymysql.cursors.Cursor, "max_stmt_length", 600)
    queries: list[str] = []
    query = pymysql.cursors.Cursor._query

    def counted(cursor: Any, q: Any) -> Any:
        queries.append(q.decode() if isinstance(q, bytes | bytearray) else q)
        return query(cursor, q)

    monkeypatch.setattr(pymysql.cursors.Cursor, "_query", counted)
    engine = make_engine(fresh_mysql_url)
    try:
        metadata.create_all(engine)
        _, driver, core = _insert_both_ways(engine)
    finally:
        engine.dispose()
    assert driver == core
    assert len(driver) == len(AWKWARD) + 1
    inserts = [q for q in queries if q.startswith("INSERT") and "'driver'" in q]
    assert len(inserts) > 2, "split into several statements"
    rows_in = [q.count("('driver',") for q in inserts]
    assert sum(rows_in) == len(AWKWARD) + 1
    assert all(len(q.encode()) <= 600 or n == 1 for q, n in zip(inserts, rows_in, strict=True)), \
        [(len(q.encode()), n) for q, n in zip(inserts, rows_in, strict=True)]
    assert any(n > 1 for n in rows_in), "rows that fit together share a statement"


@pytest.mark.mysql
def test_a_mariadb_session_without_backslash_escapes_gets_its_own_escaping(fresh_mysql_url):
    engine = make_engine(fresh_mysql_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
            DriverInsert(scratch, COLUMNS).execute(conn, _rows("driver"))
            conn.execute(insert(scratch), _rows("core"))
            conn.exec_driver_sql("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        driver, core = _stored(engine, "driver"), _stored(engine, "core")
        assert driver == core
        assert [row[1] for row in driver[:-1]] == AWKWARD
    finally:
        engine.dispose()


def test_json_text_reads_back_as_the_values_written():
    """orjson writes the text (compact, UTF-8); json.loads (what SQLAlchemy reads a JSON column
    with) must get the same values back, datetimes as their ISO text; what orjson cannot write
    goes through json.dumps."""
    from datetime import UTC, timedelta, timezone

    for value in [{"a": 1.5, "b": [None, True, "é'\"\\😀\u2028"], "c": {"d": -0.0, "e": 1e-300, "f": 2**63 - 1}},
                  [], "s", 3, {"x": 0.1 + 0.2}]:
        assert json.loads(driver_insert._json_dumps(value)) == value
    moments = [datetime(2026, 1, 1), datetime(2026, 1, 1, 9, 30, 0, 123456, tzinfo=UTC),
               datetime(2026, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))]
    assert json.loads(driver_insert._json_dumps({"when": moments})) == {"when": [m.isoformat() for m in moments]}
    # JSON has no NaN: null, which MariaDB's JSON check accepts (json.dumps' NaN it refuses).
    assert json.loads(driver_insert._json_dumps({"nan": float("nan"), "inf": float("-inf")})) == \
        {"nan": None, "inf": None}
    # Past orjson: json.dumps, datetimes still as ISO text.
    assert json.loads(driver_insert._json_dumps({"big": 2**70, "at": moments[0]})) == \
        {"big": 2**70, "at": moments[0].isoformat()}
    assert json.loads(driver_insert._json_dumps({1: "one"})) == {"1": "one"}
    with pytest.raises(TypeError):
        driver_insert._json_dumps({"what": object()})


def test_a_nan_in_a_json_value_is_stored_as_null(db):
    """A NaN in a payload (IB's doubles can be anything) must not cost its batch: MariaDB
    refuses the text `NaN` in a JSON column, and one refused row fails the transaction."""
    rows = [{c: None for c in COLUMNS} | {"batch": "nan", "position": 0, "doc": {"price": float("nan"), "qty": 1.0}}]
    with db.begin() as conn:
        DriverInsert(scratch, COLUMNS).execute(conn, rows)
    with db.connect() as conn:
        assert conn.execute(select(scratch.c.doc).where(scratch.c.batch == "nan")).scalar_one() == \
            {"price": None, "qty": 1.0}


@given(st.text(alphabet=st.sampled_from(list("ab'\"\\\n\r\x00\x1a%_é€😀 {}:,")) | st.characters(), max_size=60))
@settings(max_examples=500, deadline=None)
def test_the_mysql_string_literal_is_pymysqls_own(text: str) -> None:
    """The writer quotes text values for pymysql itself (for speed): the literal must be exactly
    what pymysql's escape_string makes of the same text, whatever the characters."""
    assert driver_insert._mysql_string(text) == "'" + pymysql.converters.escape_string(text) + "'"


_JSON_TEXT = st.text(alphabet=st.sampled_from(list("ab'\"\\\n\r\x00\x1a%_é€😀 {}:,")) | st.characters(), max_size=30)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats() | _JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_TEXT, inner, max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def mysql_connection(mysql_server_url: str) -> Iterator[Any]:
    engine = make_engine(mysql_server_url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


@pytest.mark.mysql
@given(_JSON_VALUES)
@settings(max_examples=300, deadline=None)
def test_a_json_text_reads_back_from_mariadb_as_written(mysql_connection: Any, value: Any) -> None:
    """JSON texts are quoted with only the backslash and the quote escaped (not as pymysql
    quotes them): MariaDB must read each literal back as the very text, whatever the value."""
    written = driver_insert._json_dumps(value)
    literal = driver_insert._mysql_json_string(written)
    assert mysql_connection.exec_driver_sql("SELECT " + literal, execution_options={"no_parameters": True}) \
        .scalar_one() == written


class _PymysqlEscape:
    """pymysql's own escaping of one value, as its Connection.escape does for anything but text
    and bytes (no server needed)."""

    @staticmethod
    def escape(value: Any) -> str:
        return str(pymysql.converters.escape_item(value, "utf8mb4"))


@given(st.one_of(
    st.text(alphabet=st.sampled_from(list("ab'\"\\\n\r\x00\x1a%_é€😀")) | st.characters(), max_size=40),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(),
    st.booleans(),
))
@settings(max_examples=1000, deadline=None)
def test_a_value_is_written_as_pymysql_writes_it(value: Any) -> None:
    """On MariaDB the writer writes each row's values itself (for speed): every value must be
    exactly pymysql's own literal of it."""
    expected = "'" + pymysql.converters.escape_string(value) + "'" if isinstance(value, str) else \
        _PymysqlEscape.escape(value)
    assert driver_insert._mysql_literal(value, _PymysqlEscape, {}) == expected


def test_datetimes_of_one_instant_in_different_zones_are_each_written_as_pymysql_writes_them() -> None:
    """Rows share their times, so the writer keeps each datetime's literal; two aware datetimes
    of one instant are equal keys, yet pymysql writes each one's own wall-clock time."""
    from datetime import UTC, timedelta, timezone

    literals: dict[Any, str] = {}
    moments = [datetime(2026, 11, 29, 15, 0, tzinfo=UTC), datetime(2026, 11, 29, 10, 0, tzinfo=timezone(timedelta(hours=-5))),
               datetime(2026, 11, 29, 15, 0), datetime(2026, 11, 29, 15, 0, 0, 1)]
    for moment in moments + moments:
        assert driver_insert._mysql_literal(moment, _PymysqlEscape, literals) == _PymysqlEscape.escape(moment)


@pytest.mark.mysql
def test_an_infinite_float_is_refused_and_nothing_of_its_rows_stored(fresh_mysql_url):
    """MariaDB has no infinity: pymysql refuses the value, as it did when it escaped every value
    itself, and the rows of that INSERT are not stored (the writer then applies its reports one
    by one, and the report with the infinity alone is skipped)."""
    engine = make_engine(fresh_mysql_url)
    try:
        metadata.create_all(engine)
        rows = _rows("inf")
        rows[1]["amount"] = float("inf")
        with pytest.raises((pymysql.err.ProgrammingError, ProgrammingError), match="inf can not be used"), \
                engine.begin() as conn:
            DriverInsert(scratch, COLUMNS).execute(conn, rows)
        assert _stored(engine, "inf") == []
    finally:
        engine.dispose()


def test_a_gateway_on_sqlite_never_loads_pymysql():
    """The writer reads pymysql's statement size from the connection it writes through: a
    gateway on SQLite never imports pymysql, which with the ssl it loads is some 8 MiB of RSS."""
    probe = ("import sys, execgw.server.app, execgw.server.db.driver_insert; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pymysql'))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert loaded.stdout.strip() == "[]", loaded.stdout
