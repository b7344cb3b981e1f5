"""Many rows into one table through the driver's executemany, past SQLAlchemy's per-row
parameter processing.

pymysql sends the rows as one multi-row INSERT; SQLite runs its prepared statement per row in
C. Each value is converted here, once, as the column's SQLAlchemy type would convert it (JSON as
JSON text, see below; on SQLite, datetimes as SQLAlchemy's text form), so the rows read back exactly
as rows the ORM wrote. For the gateway's writer, SQLAlchemy's own processing of the fills' and
events' parameters cost as much as everything else it does for an execution.

Some of the driver's per-row work is avoided too (a replay of the day's executions writes three
rows per execution, two of them mostly JSON text):

- pymysql: its executemany escapes every value in Python, a string with `str.translate`
  through a dict, a character at a time (for the JSON texts, the fills' raw payloads and the
  events' payloads, half the writer's time on MariaDB), and every other value through three calls
  (a third of the writer's time in a replay after that). Here each row's values are written as
  SQL: text with the same escapes (a `str.replace` per special character present), JSON texts
  with only the escapes a quoted string needs, integers, floats and naive datetimes as pymysql's
  converters write them, anything else by pymysql. The multi-row INSERTs are made here too,
  split where pymysql splits its own (its cursor class's `max_stmt_length` bytes), and sent
  without parameters: pymysql's executemany formatted each row again through five calls of its
  own (a fifth of the writer's Python in a MariaDB replay after the above). A session in
  NO_BACKSLASH_ESCAPES mode escapes differently: there, pymysql escapes everything itself.
- JSON: `orjson`, 5-7x faster than the standard library's encoder on these payloads (three per
  execution). Its text is compact (no spaces) and holds non-ASCII characters as UTF-8, not as
  escapes; it reads back as the same values. Datetimes in a payload become ISO 8601 text as
  `isoformat()` writes it. NaN and infinities, which JSON has no word for, become null (`json.dumps`
  wrote `NaN`, which MariaDB's JSON check refuses). What orjson cannot write (an integer past 64
  bits, a key that is not text) is written by `json.dumps` as before.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, DateTime, Table, insert

SERVER_STATUS_NO_BACKSLASH_ESCAPES = 512  # pymysql.constants.SERVER_STATUS: the session's sql_mode has it

Conversion = tuple[int | str, Callable[[Any], Any]]  # (position or name of a value, how to convert it)


class DriverInsert:
    """INSERT of `columns` into `table`; every row given must hold all of them."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self._table = table
        self._columns = tuple(columns)
        self._json = tuple(c for c in columns if isinstance(table.c[c].type, JSON))
        self._datetimes = tuple(c for c in columns if isinstance(table.c[c].type, DateTime))
        self._statements: dict[tuple[str, str], tuple[str, list[str], list[Conversion]]] = {}
        self._columns_json = tuple((c, c in self._json) for c in self._columns)  # pymysql: each column, JSON or not
        self._prefix: str | None = None  # pymysql: the statement before its rows (_values_prefix)

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        dialect = connection.dialect
        if dialect.driver == "pymysql" and not _no_backslash_escapes(connection):
            return self._execute_pymysql(connection, rows)
        sql, order, conversions = self._statement(connection)
        params: list[Any] = []
        if any(convert is _sqlite_datetime for _, convert in conversions):
            # Rows often share a datetime (the gateway's events of one transaction share their
            # stored_at): each converted once.
            converted: dict[datetime, str] = {}

            def as_text(moment: datetime) -> str:
                text = converted.get(moment)
                if text is None:
                    text = converted[moment] = _sqlite_datetime(moment)
                return text

            conversions = [(at, as_text if convert is _sqlite_datetime else convert) for at, convert in conversions]
        for row in rows:
            values: Any = [row[c] for c in order] if order else dict(row)
            for at, convert in conversions:
                value = values[at]
                if value is not None:
                    values[at] = convert(value)
            params.append(tuple(values) if order else values)
        connection.exec_driver_sql(sql, params)

    def _execute_pymysql(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Multi-row INSERTs of the rows' values written here, each statement at most pymysql's
        own `max_stmt_length` bytes (unless one row alone is longer, as in pymysql)."""
        dbapi = connection.connection.driver_connection
        prefix = self._values_prefix(connection)
        most = dbapi.cursorclass.max_stmt_length
        columns = self._columns_json
        literals: dict[Any, str] = {}  # datetime → its literal: rows share their times
        statement: list[str] = []
        size = len(prefix)
        for row in rows:
            values = []
            for name, is_json in columns:
                value = row[name]
                if value is None:
                    values.append("NULL")
                elif is_json:
                    values.append(_mysql_json_string(_json_dumps(value)))
                else:
                    values.append(_mysql_literal(value, dbapi, literals))
            text = "(" + ",".join(values) + ")"
            length = len(text) if text.isascii() else len(text.encode(dbapi.encoding))
            if statement and size + 1 + length > most:
                _send(connection, prefix + ",".join(statement))
                statement, size = [], len(prefix)
            statement.append(text)
            size += 1 + length
        _send(connection, prefix + ",".join(statement))

    def _values_prefix(self, connection: Connection) -> str:
        """INSERT INTO t (a, b, ...) VALUES : the rows follow, in the columns' order."""
        if self._prefix is None:
            quote = connection.dialect.identifier_preparer
            names = ", ".join(quote.quote(name) for name in self._columns)
            self._prefix = f"INSERT INTO {quote.format_table(self._table)} ({names}) VALUES "
        return self._prefix

    def _statement(self, connection: Connection) -> tuple[str, list[str], list[Conversion]]:
        """The SQL in the driver's parameter style; for positional styles the columns' order;
        which values to convert, and how."""
        dialect = connection.dialect
        key = (dialect.name, dialect.driver)
        if key not in self._statements:
            compiled = insert(self._table).compile(dialect=dialect, column_keys=list(self._columns))
            order = list(compiled.positiontup or ()) if compiled.positional else []
            assert sorted(order or self._columns) == sorted(self._columns), (order, self._columns)
            wanted: list[tuple[str, Callable[[Any], Any]]] = [(c, _json_dumps) for c in self._json]
            if dialect.name == "sqlite":
                wanted += [(c, _sqlite_datetime) for c in self._datetimes]
            conversions = [(order.index(c) if order else c, convert) for c, convert in wanted]
            self._statements[key] = (compiled.string, order, conversions)
        return self._statements[key]


def _sqlite_datetime(moment: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text, "YYYY-MM-DD HH:MM:SS.ffffff", which it reads back and
    which sorts as text. (As SQLAlchemy does, a time zone is dropped, not converted: the
    gateway's columns hold naive UTC.)"""
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_dumps(value: Any) -> str:
    """The JSON text of a column's value (see the module's note on orjson)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=_isoformat)


def _isoformat(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


# pymysql's escapes, backslash first (the others add backslashes of their own).
_MYSQL_ESCAPES = (("\\", "\\\\"), ("'", "\\'"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"),
                  ("\x00", "\\0"), ("\x1a", "\\Z"))


def _mysql_literal(value: Any, dbapi: Any, literals: dict[Any, str]) -> str:
    """A value as pymysql writes it into SQL: text, integers, finite floats and naive datetimes
    here (the common kinds, exactly as pymysql's converters write them), anything else by pymysql
    (its escaping, its errors: an infinite float is refused)."""
    kind = type(value)
    if kind is str:
        return _mysql_string(value)
    if kind is int:
        return str(value)
    if kind is float and math.isfinite(value):
        text = repr(value)
        return text if "e" in text else text + "e0"
    if kind is datetime and value.tzinfo is None:
        # Naive only: aware datetimes at one instant in different zones are equal keys, yet
        # pymysql writes each one's own wall-clock time. isoformat is pymysql's text (its
        # microseconds too, only when there are any), in C: a third of pymysql's time.
        literal = literals.get(value)
        if literal is None:
            literal = literals[value] = "'" + value.isoformat(" ") + "'"
        return literal
    return str(dbapi.escape(value))


def _mysql_string(value: str) -> str:
    """pymysql's `escape_string` (backslash escapes, for a server without NO_BACKSLASH_ESCAPES),
    quoted: a scan per special character instead of a dict lookup per character."""
    for special, escaped in _MYSQL_ESCAPES:
        if special in value:
            value = value.replace(special, escaped)
    return "'" + value + "'"


def _mysql_json_string(text: str) -> str:
    """A JSON text quoted for MariaDB: only what a quoted string needs escaped, the backslash and
    the quote. (orjson writes no raw control character: JSON escapes them. pymysql's escaping of
    every double quote, some 60 in an execution's payload, read back the same text and cost ten
    times as long.)"""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "'" in text:
        text = text.replace("'", "\\'")
    return "'" + text + "'"


# The SQL is complete: pymysql must not look for parameters in it (text may hold a %).
_NO_PARAMETERS = {"no_parameters": True}


def _send(connection: Connection, sql: str) -> None:
    connection.exec_driver_sql(sql, execution_options=_NO_PARAMETERS)


def _no_backslash_escapes(connection: Connection) -> bool:
    dbapi = connection.connection.driver_connection
    return bool(getattr(dbapi, "server_status", 0) & SERVER_STATUS_NO_BACKSLASH_ESCAPES)
