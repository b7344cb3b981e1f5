"""Many rows of one table changed, each found by its key: on MySQL/MariaDB in one UPDATE
statement, not one per row.

pymysql's executemany runs an UPDATE once per row, a round trip each (only INSERTs become one
multi-row statement). Under a flood of executions the writer changes a dozen orders a
transaction, and waiting for those answers was a third of its time on MariaDB. Here the rows go
in one statement: `SET column = CASE key WHEN k1 THEN v1 WHEN k2 THEN v2 ... END` for each
column, `WHERE key IN (k1, k2, ...)`, the values escaped by pymysql as its executemany escapes
them (so they are stored alike, and a session in NO_BACKSLASH_ESCAPES mode is escaped its way).

SQLite runs an executemany's prepared statement per row in C, with no round trip: there the
rows go through SQLAlchemy's executemany, as before.

A column SQLAlchemy sets on every UPDATE (`onupdate`: the updated_at columns) is set here too,
as SQLAlchemy's own UPDATE would: a Python default once per statement, a SQL one as its SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table, bindparam, update
from sqlalchemy.engine import Dialect

# Rows per statement: 1,000 orders of 7 columns are some 15,000 values, about 0.3 MB of SQL,
# far below MariaDB's max_allowed_packet (16 MB by default).
ROWS_PER_STATEMENT = 1_000


class KeyedUpdate:
    """UPDATE of `columns` of `table` for rows found by `key`; every row given holds the key
    and all the columns, by name. Two rows with the same key: the later one is stored."""

    def __init__(self, table: Table, key: str, columns: Sequence[str]) -> None:
        self._table = table
        self._key = key
        self._columns = tuple(columns)
        self._core = update(table).where(table.c[key] == bindparam(f"b_{key}")).values(
            {name: bindparam(f"b_{name}") for name in self._columns})
        self._onupdate: list[Column[Any]] = [
            column for column in table.c if column.onupdate is not None and column.name not in self._columns]

    def execute(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if connection.dialect.driver != "pymysql":
            connection.execute(self._core, [{f"b_{name}": value for name, value in row.items()} for row in rows])
            return
        latest = list({row[self._key]: row for row in rows}.values())
        for start in range(0, len(latest), ROWS_PER_STATEMENT):
            sql, params = self._statement(connection.dialect, latest[start:start + ROWS_PER_STATEMENT])
            connection.exec_driver_sql(sql, params)

    def _statement(self, dialect: Dialect, rows: list[dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
        quote = dialect.identifier_preparer.quote
        key = self._key
        whens = " ".join(["WHEN %s THEN %s"] * len(rows))
        sets = [f"{quote(name)} = CASE {quote(key)} {whens} END" for name in self._columns]
        params: list[Any] = []
        for name in self._columns:
            for row in rows:
                params += (row[key], row[name])
        for column in self._onupdate:
            default: Any = column.onupdate
            if default.is_clause_element:
                sets.append(f"{quote(column.name)} = {default.arg.compile(dialect=dialect)}")
            else:
                sets.append(f"{quote(column.name)} = %s")
                params.append(default.arg(None) if default.is_callable else default.arg)
        params += [row[key] for row in rows]
        table = dialect.identifier_preparer.format_table(self._table)
        keys = ", ".join(["%s"] * len(rows))
        return f"UPDATE {table} SET {', '.join(sets)} WHERE {quote(key)} IN ({keys})", tuple(params)
