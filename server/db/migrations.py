"""Bring a database to the current schema: ``upgrade(url)``, behind ``execgw db upgrade``.

MySQL/MariaDB: the plain SQL files under ``deploy/mysql`` are the schema's history — ``base/``
first, then ``patches/``, each in file-name order. Every file is idempotent on its own (the seed's
style: ``CREATE TABLE IF NOT EXISTS`` and information_schema-guarded ``ALTER``), so a file that
failed half-way is simply run again; ``schema_migrations`` records the ones that completed so they
are skipped, with the file's sha256 so an edited file is noticed.

SQLite: there is no history to replay; the tables are created from the models. ``create_all``
never alters an existing table, so a checksum of the models' DDL is recorded and a change warned
about.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select, text
from sqlalchemy.engine import URL
from sqlalchemy.schema import CreateIndex, CreateTable

from .engine import display_url, is_mysql, is_sqlite, make_engine
from .models import Base, SchemaMigration, utcnow

log = logging.getLogger(__name__)

MIGRATIONS_DIR_ENV = "EXECGW_MIGRATIONS_DIR"
# Order matters: the base creates the tables every patch alters.
MIGRATION_FOLDERS = ("base", "patches")
# The SQLite schema's row in schema_migrations; its checksum is that of the models' DDL.
SQLITE_MODELS_MIGRATION = "sqlite:models"
# Two gateways (or a gateway and an operator) upgrading at once would interleave DDL.
_UPGRADE_LOCK = "execgw.schema_upgrade"
_UPGRADE_LOCK_TIMEOUT_SECONDS = 300
UPGRADE_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class Migration:
    name: str  # the file name, as recorded in schema_migrations
    path: Path
    checksum: str  # sha256 of the file's bytes

    def statements(self) -> list[str]:
        return split_sql_statements(self.path.read_text(encoding="utf-8"))


def migrations_dir() -> Path:
    """``$EXECGW_MIGRATIONS_DIR``; else the copy an installed wheel carries (``execgw.server.db.sql``,
    mapped from ``deploy/mysql`` in pyproject.toml); else ``deploy/mysql`` of the source tree (an
    editable install)."""
    configured = os.environ.get(MIGRATIONS_DIR_ENV)
    if configured:
        return Path(configured)
    packaged = Path(__file__).resolve().parent / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "deploy" / "mysql"


def discover_migrations(root: Path | None = None) -> list[Migration]:
    """The SQL files in the order they apply: ``base/*.sql`` then ``patches/*.sql``, by name."""
    root = migrations_dir() if root is None else root
    if not (root / "base").is_dir():
        raise FileNotFoundError(f"no migrations at {root} (set {MIGRATIONS_DIR_ENV} to deploy/mysql)")
    found: list[Migration] = []
    for folder in MIGRATION_FOLDERS:
        for path in sorted((root / folder).glob("*.sql")):
            found.append(Migration(path.name, path, hashlib.sha256(path.read_bytes()).hexdigest()))
    names = [m.name for m in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"migration file names must be unique across {MIGRATION_FOLDERS}: {duplicates}")
    return found


def upgrade(url: str | URL, *, root: Path | None = None) -> list[str]:
    """Bring the database at ``url`` to the current schema; return the names of what was applied."""
    # DDL on a big table may run for minutes: the serving read/write timeout does not apply.
    engine = make_engine(url, timeout_seconds=UPGRADE_TIMEOUT_SECONDS)
    try:
        if is_sqlite(url):
            return _upgrade_sqlite(engine.connect())
        if is_mysql(url):
            with engine.connect() as conn:
                return _upgrade_mysql(conn, discover_migrations(root))
        raise ValueError(f"unsupported database {display_url(url)}")
    finally:
        engine.dispose()


def split_sql_statements(sql: str) -> list[str]:
    """Split a script into statements at ``;`` outside quotes, identifiers and comments.

    Line ends are not enough: the seed puts ``PREPARE …; EXECUTE …; DEALLOCATE …;`` on one line,
    and a quoted ALTER could contain a ``;``. Comments are dropped (the server ignores them anyway).
    """
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = _end_of_quoted(sql, i)
            current.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            current.append(" ")
        elif ch == "#" or (sql.startswith("--", i) and (i + 2 == n or sql[i + 2].isspace())):
            # MySQL's "-- " comment needs the space (or line end) after the dashes.
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif ch == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def _end_of_quoted(sql: str, start: int) -> int:
    """Index just past the quoted string or identifier that opens at ``start``."""
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if ch == "\\" and quote != "`":
            i += 2
        elif ch == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:  # a doubled quote is an escaped quote
                i += 2
            else:
                return i + 1
        else:
            i += 1
    raise ValueError(f"unterminated {quote} quote starting at offset {start}")


def _upgrade_mysql(conn: Connection, migrations: list[Migration]) -> list[str]:
    locked = conn.execute(
        text("SELECT GET_LOCK(:name, :timeout)"),
        {"name": _UPGRADE_LOCK, "timeout": _UPGRADE_LOCK_TIMEOUT_SECONDS},
    ).scalar()
    if locked != 1:
        raise TimeoutError(f"another upgrade holds the lock {_UPGRADE_LOCK!r}")
    try:
        SchemaMigration.__table__.create(conn, checkfirst=True)
        conn.commit()
        applied = {
            name: checksum
            for name, checksum in conn.execute(select(SchemaMigration.name, SchemaMigration.checksum))
        }
        conn.commit()
        ran: list[str] = []
        for migration in migrations:
            recorded = applied.get(migration.name)
            if recorded is not None:
                if recorded != migration.checksum:
                    log.warning(
                        "%s changed after it was applied (recorded sha256 %s, file %s); "
                        "it is not run again: put schema changes in a new patch",
                        migration.name,
                        recorded[:12],
                        migration.checksum[:12],
                    )
                continue
            log.info("applying %s", migration.name)
            apply_script(conn, migration)
            conn.execute(
                SchemaMigration.__table__.insert().values(
                    name=migration.name, applied_at=utcnow(), checksum=migration.checksum
                )
            )
            conn.commit()
            ran.append(migration.name)
        return ran
    finally:
        try:
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _UPGRADE_LOCK})
            conn.commit()
        except Exception:
            # The lock dies with the connection anyway; don't hide the error that got us here.
            log.debug("could not release %s", _UPGRADE_LOCK, exc_info=True)


def apply_script(conn: Connection, migration: Migration) -> None:
    """Run every statement of one SQL file on a MySQL connection (without recording it)."""
    # The driver's own cursor, not SQLAlchemy's text(): a ":name" or "%" in a file is SQL, not a
    # bind parameter, and pymysql formats nothing when given no arguments.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for number, statement in enumerate(migration.statements(), start=1):
            try:
                cursor.execute(statement)
                while cursor.nextset():  # drain every result (the guards' SELECT 1)
                    pass
            except Exception as exc:
                raise RuntimeError(f"{migration.name}, statement {number}: {exc}") from exc
    finally:
        cursor.close()


def models_ddl_checksum() -> str:
    """sha256 of the SQLite DDL the models produce: changes whenever a table, column or index does."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    parts: list[str] = []
    for table in Base.metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda ix: ix.name or ""):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return hashlib.sha256("\n;\n".join(parts).encode()).hexdigest()


# Columns renamed since SQLite files were first made (table, old name, new name): create_all
# never alters an existing table, and a model reading a column by its new name would fail.
SQLITE_COLUMN_RENAMES = (("trade_orders", "rejected_reason", "status_reason"),)

# Nullable columns added since SQLite files were first made (table, column; the type is the
# model's): the models read them, so an older file gets them empty, as the MySQL patch gives old
# rows NULL.
SQLITE_COLUMN_ADDITIONS = (
    ("trade_runs", "submitted_note"),
    ("trade_runs", "submitted_from"),
    ("trade_runs", "cancelled_by"),
    ("trade_runs", "cancelled_at"),
    # NOT NULL with the model's server default: old runs belong to the default gateway name.
    ("trade_runs", "gateway"),
)


def _sqlite_columns(conn: Connection, table: str) -> set[str]:
    return {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}


def _bring_sqlite_columns_up(conn: Connection) -> list[str]:
    """Renames and additions an existing SQLite file needs; what was done, for the caller."""
    done = []
    for table, old, new in SQLITE_COLUMN_RENAMES:
        columns = _sqlite_columns(conn, table)
        if old in columns and new not in columns:
            conn.exec_driver_sql(f'ALTER TABLE "{table}" RENAME COLUMN "{old}" TO "{new}"')
            done.append(f"sqlite:rename {table}.{old} to {new}")
    for table, column in SQLITE_COLUMN_ADDITIONS:
        columns = _sqlite_columns(conn, table)
        if columns and column not in columns:
            model_column = Base.metadata.tables[table].c[column]
            sql_type = model_column.type.compile(dialect=conn.dialect)
            default = model_column.server_default
            if default is not None:  # the only way SQLite adds a NOT NULL column
                sql_type += f" NOT NULL DEFAULT {default.arg.text}"  # type: ignore[attr-defined]
            conn.exec_driver_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {sql_type}')
            done.append(f"sqlite:add {table}.{column}")
    for step in done:
        log.info("%s", step)
    return done


def _upgrade_sqlite(conn: Connection) -> list[str]:
    with conn:
        renamed = _bring_sqlite_columns_up(conn)
        Base.metadata.create_all(conn)
        checksum = models_ddl_checksum()
        recorded = conn.execute(
            select(SchemaMigration.checksum).where(SchemaMigration.name == SQLITE_MODELS_MIGRATION)
        ).scalar_one_or_none()
        if recorded is None:
            conn.execute(
                SchemaMigration.__table__.insert().values(
                    name=SQLITE_MODELS_MIGRATION, applied_at=utcnow(), checksum=checksum
                )
            )
            conn.commit()
            return [*renamed, SQLITE_MODELS_MIGRATION]
        if recorded != checksum:
            log.warning(
                "this SQLite database was created from older models: new tables were added, but "
                "columns and indexes of existing tables were not; recreate the file to get them"
            )
        conn.commit()
        return renamed
