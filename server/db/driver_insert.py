"""Many rows into one table through the driver's executemany, past SQLAlchemy's per-row
parameter processing.

pymysql sends the rows as one multi-row INSERT; SQLite runs its prepared statement per row in
C. Each value is converted here, once, as the column's SQLAlchemy type would convert it (JSON as
json.dumps text; on SQLite, datetimes as SQLAlchemy's text form), so the rows read back exactly
as rows the ORM wrote. For the gateway's writer, SQLAlchemy's own processing of the fills' and
events' parameters cost as much as everything else it does for an execution.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Table, insert

Conversion = tuple[int | str, Callable[[Any], Any]]  # (position or name of a value, how to convert it)


class DriverInsert:
    """INSERT of `columns` into `table`; every row given must hold all of them."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self._table = table
        self._columns = tuple(columns)
        self._json = tuple(c for c in columns if isinstance(table.c[c].type, JSON))
        self._datetimes = tuple(c for c in columns if isinstance(table.c[c].type, DateTime))
        self._statements: dict[tuple[str, str], tuple[str, list[str], list[Conversion]]] = {}

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
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

    def _statement(self, connection: Connection) -> tuple[str, list[str], list[Conversion]]:
        """The SQL in the driver's parameter style; for positional styles the columns' order;
        which values to convert, and how."""
        dialect = connection.dialect
        key = (dialect.name, dialect.driver)
        if key not in self._statements:
            compiled = insert(self._table).compile(dialect=dialect, column_keys=list(self._columns))
            order = list(compiled.positiontup or ()) if compiled.positional else []
            assert sorted(order or self._columns) == sorted(self._columns), (order, self._columns)
            serialize: Callable[[Any], str] = getattr(dialect, "_json_serializer", None) or json.dumps
            wanted: list[tuple[str, Callable[[Any], Any]]] = [(c, serialize) for c in self._json]
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
