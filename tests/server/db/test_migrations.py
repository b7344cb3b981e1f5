"""The MySQL schema's history (deploy/mysql) applies, re-applies harmlessly, and ends exactly where
the models say it does; ``execgw db upgrade`` does that from the command line."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, UniqueConstraint, inspect, select, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import Index

from execgw.server.db.engine import make_engine
from execgw.server.db.migrations import (
    SQLITE_MODELS_MIGRATION,
    apply_script,
    discover_migrations,
    migrations_dir,
    split_sql_statements,
    upgrade,
)
from execgw.server.db.models import Base, TradeEvent, TradeOrder, TradeRun, utcnow
from execgw.server.engine.store import Store

SEED_PATCH = "20260123_trade_fills_and_orders.sql"
SEED_ORDER_COLUMNS = {"ib_order_id", "ib_perm_id", "last_status_ts", "rejected_reason"}
ALL_MIGRATIONS = [m.name for m in discover_migrations()]


@pytest.fixture
def mysql_engine(fresh_mysql_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_mysql_url)
    yield engine
    engine.dispose()


def show_create_tables(conn: Connection) -> dict[str, str]:
    """SHOW CREATE TABLE of every table, without the AUTO_INCREMENT counter (data, not schema)."""
    tables = [row[0] for row in conn.exec_driver_sql("SHOW TABLES")]
    return {
        table: re.sub(
            r" AUTO_INCREMENT=\d+", "", conn.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").one()[1]
        )
        for table in sorted(tables)
    }


# --- the SQL files ------------------------------------------------------------------------------


def test_the_seed_patch_is_where_the_seed_put_it() -> None:
    path = migrations_dir() / "patches" / SEED_PATCH
    sql = path.read_text(encoding="utf-8")
    assert "CREATE TABLE IF NOT EXISTS trade_fills" in sql
    assert "UNIQUE KEY uq_trade_fills_exec_id (exec_id)" in sql
    for column in SEED_ORDER_COLUMNS:
        assert f"AND COLUMN_NAME = '{column}'" in sql


def test_migrations_apply_base_first_then_patches_by_name() -> None:
    assert ALL_MIGRATIONS == [
        "20260101_base_schema.sql",
        "20260123_trade_fills_and_orders.sql",
        "20261124_execgw_fills_corrections_and_events.sql",
        "20261125_execgw_case_sensitive_client_order_id.sql",
        "20261126_execgw_perm_id_bigint.sql",
        "20261127_execgw_case_sensitive_run_id.sql",
        "20261128_execgw_order_status_reason.sql",
        "20261129_execgw_run_callers.sql",
        "20261130_execgw_gateways.sql",
        "20261130_execgw_run_gateway.sql",
    ]


def test_statements_split_at_semicolons_outside_quotes_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    SET @sql := IF(@n = 0, 'ALTER TABLE t ADD COLUMN c TEXT COMMENT ''a;b''', 'SELECT 1');
    PREPARE stmt FROM @sql; EXECUTE stmt; DEALLOCATE PREPARE stmt;
    /* block; comment */ SELECT "x;y", `odd;name` FROM t # trailing; comment
    """
    assert split_sql_statements(sql) == [
        "SET @sql := IF(@n = 0, 'ALTER TABLE t ADD COLUMN c TEXT COMMENT ''a;b''', 'SELECT 1')",
        "PREPARE stmt FROM @sql",
        "EXECUTE stmt",
        "DEALLOCATE PREPARE stmt",
        'SELECT "x;y", `odd;name` FROM t',
    ]


def test_every_seed_statement_is_found() -> None:
    [seed] = [m for m in discover_migrations() if m.name == SEED_PATCH]
    statements = seed.statements()
    # 1 CREATE TABLE + 4 columns x (SET, SET, PREPARE, EXECUTE, DEALLOCATE)
    assert len(statements) == 1 + 4 * 5
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS trade_fills")


# --- applying them (MariaDB/MySQL) --------------------------------------------------------------


@pytest.mark.mysql
def test_seed_patch_applies_twice_on_the_base(mysql_engine: Engine) -> None:
    migrations = {m.name: m for m in discover_migrations()}
    with mysql_engine.connect() as conn:
        apply_script(conn, migrations["20260101_base_schema.sql"])
        apply_script(conn, migrations[SEED_PATCH])
        once = show_create_tables(conn)
        apply_script(conn, migrations[SEED_PATCH])
        assert show_create_tables(conn) == once
    columns = {c["name"] for c in inspect(mysql_engine).get_columns("trade_orders")}
    assert columns >= SEED_ORDER_COLUMNS
    assert "trade_fills" in once


@pytest.mark.mysql
def test_every_file_is_idempotent_on_its_own(mysql_engine: Engine) -> None:
    with mysql_engine.connect() as conn:
        for migration in discover_migrations():
            apply_script(conn, migration)
            once = show_create_tables(conn)
            apply_script(conn, migration)
            assert show_create_tables(conn) == once, migration.name


@pytest.mark.mysql
def test_upgrade_twice_applies_nothing_the_second_time(fresh_mysql_url: str, mysql_engine: Engine) -> None:
    assert upgrade(fresh_mysql_url) == ALL_MIGRATIONS
    with mysql_engine.connect() as conn:
        first = show_create_tables(conn)
        recorded = dict(conn.execute(text("SELECT name, checksum FROM schema_migrations")).all())
    assert upgrade(fresh_mysql_url) == []
    with mysql_engine.connect() as conn:
        assert show_create_tables(conn) == first
    assert recorded == {m.name: m.checksum for m in discover_migrations()}


@pytest.mark.mysql
def test_upgrade_warns_about_an_applied_file_that_changed(
    fresh_mysql_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "mysql"
    shutil.copytree(migrations_dir(), root)
    upgrade(fresh_mysql_url, root=root)
    edited = root / "patches" / SEED_PATCH
    edited.write_text(edited.read_text() + "\n-- edited after release\n")
    with caplog.at_level(logging.WARNING):
        assert upgrade(fresh_mysql_url, root=root) == []
    assert any(SEED_PATCH in r.getMessage() and "changed" in r.getMessage() for r in caplog.records)


@pytest.mark.mysql
def test_upgrade_applies_only_a_new_patch(fresh_mysql_url: str, tmp_path: Path) -> None:
    root = tmp_path / "mysql"
    shutil.copytree(migrations_dir(), root)
    upgrade(fresh_mysql_url, root=root)
    (root / "patches" / "29990101_later.sql").write_text(
        "CREATE TABLE IF NOT EXISTS later_thing (id INT PRIMARY KEY);\n"
    )
    assert upgrade(fresh_mysql_url, root=root) == ["29990101_later.sql"]


# --- the upgraded schema is the models' schema --------------------------------------------------


def _json_columns(conn: Connection) -> set[tuple[str, str]]:
    """(table, column) pairs MariaDB declared as JSON: it stores them as LONGTEXT with a json_valid CHECK.

    MySQL 8 has a real JSON type (and no TABLE_NAME in CHECK_CONSTRAINTS), so there is nothing to map.
    """
    if not conn.dialect.is_mariadb:
        return set()
    rows = conn.execute(
        text(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE()"
        )
    ).all()
    found = set()
    for table, clause in rows:
        match = re.fullmatch(r"json_valid\(`(\w+)`\)", clause.strip())
        if match:
            found.add((table, match.group(1)))
    return found


def _normalize_type(compiled: str) -> str:
    compiled = re.sub(r" (CHARACTER SET|COLLATE) \w+", "", compiled.upper())
    compiled = re.sub(r"^(TINYINT|SMALLINT|INTEGER|INT|BIGINT)\(\d+\)", r"\1", compiled)  # display widths
    return {"INT": "INTEGER"}.get(compiled, compiled)


def _normalize_default(default: str | None) -> str | None:
    if default is None:
        return None
    default = default.strip().removeprefix("DEFAULT ").strip().strip("'").lower()
    return default.replace("current_timestamp()", "current_timestamp")


def schema_differences(metadata: MetaData, engine: Engine) -> list[str]:
    """Every way the database behind ``engine`` differs from ``metadata``: tables, columns, types,
    nullability, defaults, auto-increment, primary, unique and foreign keys, indexes, table options."""
    dialect = engine.dialect
    ddl = dialect.ddl_compiler(dialect, None)
    problems: list[str] = []
    with engine.connect() as conn:
        inspector = inspect(conn)
        json_columns = _json_columns(conn)
        db_tables = set(inspector.get_table_names())
        if db_tables != set(metadata.tables):
            problems.append(
                f"tables: only in db {db_tables - set(metadata.tables)}, only in models {set(metadata.tables) - db_tables}"
            )
        for name in sorted(db_tables & set(metadata.tables)):
            table = metadata.tables[name]
            db_columns = {c["name"]: c for c in inspector.get_columns(name)}
            if set(db_columns) != set(table.columns.keys()):
                problems.append(
                    f"{name} columns: only in db {set(db_columns) - set(table.columns.keys())}, "
                    f"only in models {set(table.columns.keys()) - set(db_columns)}"
                )
            for column in table.columns:
                db_column = db_columns.get(column.name)
                if db_column is None:
                    continue
                db_type = _normalize_type(db_column["type"].compile(dialect=dialect))
                if db_type == "LONGTEXT" and (name, column.name) in json_columns:
                    db_type = "JSON"
                model_type = _normalize_type(column.type.compile(dialect=dialect))
                if db_type != model_type:
                    problems.append(f"{name}.{column.name} type: db {db_type}, models {model_type}")
                # A column collation that differs from the table's changes what a unique key means
                # (utf8mb4_bin: 'ORD-1' and 'ord-1' are two keys); MySQL shows only such overrides.
                db_collation = getattr(db_column["type"], "collation", None)
                model_collation = getattr(column.type.dialect_impl(dialect), "collation", None)
                if db_collation != model_collation and db_type != "JSON":  # MariaDB's JSON is LONGTEXT _bin
                    problems.append(
                        f"{name}.{column.name} collation: db {db_collation}, models {model_collation}"
                    )
                if db_column["nullable"] != column.nullable:
                    problems.append(
                        f"{name}.{column.name} nullable: db {db_column['nullable']}, models {column.nullable}"
                    )
                model_default = _normalize_default(ddl.get_column_default_string(column))
                db_default = _normalize_default(db_column.get("default"))
                if db_default != model_default:
                    problems.append(
                        f"{name}.{column.name} default: db {db_default!r}, models {model_default!r}"
                    )
            db_autoincrement = {c for c, info in db_columns.items() if info.get("autoincrement") is True}
            model_autoincrement = (
                {table.autoincrement_column.name} if table.autoincrement_column is not None else set()
            )
            # MySQL reports every integer primary key as auto-increment capable; only AUTO_INCREMENT counts.
            create = conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`").one()[1]
            db_autoincrement = {
                c
                for c in db_autoincrement
                if re.search(rf"`{c}` \w+(\(\d+\))? NOT NULL AUTO_INCREMENT", create)
            }
            if db_autoincrement != model_autoincrement:
                problems.append(f"{name} auto-increment: db {db_autoincrement}, models {model_autoincrement}")

            db_pk = inspector.get_pk_constraint(name)["constrained_columns"]
            model_pk = [c.name for c in table.primary_key.columns]
            if db_pk != model_pk:
                problems.append(f"{name} primary key: db {db_pk}, models {model_pk}")

            db_unique = {u["name"]: tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
            model_unique = {
                c.name: tuple(col.name for col in c.columns)
                for c in table.constraints
                if isinstance(c, UniqueConstraint)
            }
            model_unique.update(
                {ix.name: tuple(col.name for col in ix.columns) for ix in table.indexes if ix.unique}
            )
            if db_unique != model_unique:
                problems.append(f"{name} unique keys: db {db_unique}, models {model_unique}")

            db_indexes = {
                ix["name"]: tuple(ix["column_names"])
                for ix in inspector.get_indexes(name)
                if not ix["unique"]
            }
            model_indexes = {
                ix.name: tuple(col.name for col in ix.columns) for ix in table.indexes if not ix.unique
            }
            if db_indexes != model_indexes:
                problems.append(f"{name} indexes: db {db_indexes}, models {model_indexes}")

            db_fks = {
                fk["name"]: (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in inspector.get_foreign_keys(name)
            }
            model_fks = {
                fk.name: (
                    tuple(col.name for col in fk.columns),
                    fk.referred_table.name,
                    tuple(el.column.name for el in fk.elements),
                )
                for fk in table.foreign_key_constraints
            }
            if db_fks != model_fks:
                problems.append(f"{name} foreign keys: db {db_fks}, models {model_fks}")

            options = inspector.get_table_options(name)
            db_options = (options.get("mysql_engine"), options.get("mysql_default charset"))
            model_options = (
                table.dialect_kwargs.get("mysql_engine"),
                table.dialect_kwargs.get("mysql_charset"),
            )
            if db_options != model_options:
                problems.append(f"{name} engine/charset: db {db_options}, models {model_options}")
    return problems


@pytest.mark.mysql
def test_upgraded_schema_matches_the_models(fresh_mysql_url: str, mysql_engine: Engine) -> None:
    upgrade(fresh_mysql_url)
    assert schema_differences(Base.metadata, mysql_engine) == []


@pytest.mark.mysql
def test_a_column_only_in_the_models_is_caught(fresh_mysql_url: str, mysql_engine: Engine) -> None:
    upgrade(fresh_mysql_url)
    models = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(models)
    models.tables["trade_fills"].append_column(Column("liquidity", Integer, nullable=True))
    models.tables["trade_orders"].append_constraint(Index("idx_trade_orders_symbol", "symbol"))
    problems = schema_differences(models, mysql_engine)
    assert any("liquidity" in p and "only in models" in p for p in problems), problems
    assert any("idx_trade_orders_symbol" in p for p in problems), problems


@pytest.mark.mysql
def test_a_column_only_in_the_sql_is_caught(fresh_mysql_url: str, mysql_engine: Engine) -> None:
    upgrade(fresh_mysql_url)
    with mysql_engine.connect() as conn:
        conn.exec_driver_sql("ALTER TABLE trade_fills ADD COLUMN liquidity INT NULL")
        conn.exec_driver_sql("ALTER TABLE trade_orders MODIFY COLUMN symbol VARCHAR(40) NOT NULL")
    problems = schema_differences(Base.metadata, mysql_engine)
    assert any("liquidity" in p and "only in db" in p for p in problems), problems
    assert "trade_orders.symbol type: db VARCHAR(40), models VARCHAR(32)" in problems


@pytest.mark.mysql
def test_models_create_the_same_mysql_schema_as_the_migrations(
    fresh_mysql_url: str, mysql_server_url: str
) -> None:
    # Two databases, one from the SQL history and one from Base.metadata.create_all: compared as
    # MySQL prints them (column order aside), any difference is a drift the normalisation above hid.
    upgrade(fresh_mysql_url)
    other = make_engine(mysql_server_url)
    name = fresh_mysql_url.rsplit("/", 1)[1] + "_models"
    try:
        with other.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        models_engine = make_engine(other.url.set(database=name))
        try:
            Base.metadata.create_all(models_engine)
            assert schema_differences(Base.metadata, models_engine) == []
            migrated = make_engine(fresh_mysql_url)
            try:
                with migrated.connect() as a, models_engine.connect() as b:
                    assert _sorted_ddl(show_create_tables(a)) == _sorted_ddl(show_create_tables(b))
            finally:
                migrated.dispose()
        finally:
            models_engine.dispose()
    finally:
        with other.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        other.dispose()


def _sorted_ddl(tables: dict[str, str]) -> dict[str, list[str]]:
    """SHOW CREATE TABLE as a sorted list of lines: the patches append columns in history order."""
    return {
        name: sorted(line.strip().rstrip(",") for line in ddl.splitlines()) for name, ddl in tables.items()
    }


# --- both databases -----------------------------------------------------------------------------


def test_a_run_id_that_differs_only_in_case_finds_no_run(database_url: str) -> None:
    """The engine keys runs by the exact id; the store must not find a run the engine does not know
    (MySQL's table collation used to match an upper-cased id)."""
    run_id = str(uuid.uuid4())
    engine = make_engine(database_url)
    store = Store(engine)
    try:
        with Session(engine) as session, session.begin():
            session.add(TradeRun(id=run_id, mode="paper", status="RUNNING", created_at=utcnow(), updated_at=utcnow()))
            session.flush()
            session.add(TradeOrder(
                run_id=run_id, client_order_id=f"case-{run_id}", symbol="AAPL", sec_type="STK", exchange="SMART",
                currency="USD", side="BUY", quantity=1, order_type="MKT", status="PENDING_SUBMIT",
                created_at=utcnow(), updated_at=utcnow(),
            ))
            session.add(TradeEvent(run_id=run_id, sequence=1, kind="run_status", payload={}, stored_at=utcnow()))

        async def lookups(key: str) -> tuple[object, object]:
            return await store.get_run(key, with_fills=True), await store.run_progress(key)

        assert asyncio.run(lookups(run_id.upper())) == (None, None)
        found, progress = asyncio.run(lookups(run_id))
        assert found is not None and found.id == run_id and progress is not None
        assert (progress.status, progress.last_sequence) == ("RUNNING", 0)
        with Session(engine) as session:
            assert session.scalars(select(TradeOrder.id).where(TradeOrder.run_id == run_id.upper())).all() == []
            assert session.scalars(select(TradeEvent.id).where(TradeEvent.run_id == run_id.upper())).all() == []
    finally:
        store.close()



def test_upgrade_creates_every_table_once(empty_database_url: str) -> None:
    first = upgrade(empty_database_url)
    assert first == ([SQLITE_MODELS_MIGRATION] if empty_database_url.startswith("sqlite") else ALL_MIGRATIONS)
    assert upgrade(empty_database_url) == []
    engine = make_engine(empty_database_url)
    try:
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables)
    finally:
        engine.dispose()


# --- the command --------------------------------------------------------------------------------


def run_execgw(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("execgw")
    command = (
        [str(executable)]
        if executable.exists()
        else [sys.executable, "-c", "from execgw.server.cli import main; main()"]
    )
    full_env = {k: v for k, v in os.environ.items() if k != "EXECGW_DATABASE_URL"}
    full_env.update(env or {})
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=full_env, check=False
    )


@pytest.mark.mysql
def test_execgw_db_upgrade_is_idempotent(fresh_mysql_url: str) -> None:
    first = run_execgw("db", "upgrade", "--database-url", fresh_mysql_url)
    assert first.returncode == 0, first.stderr
    assert [line for line in first.stdout.splitlines() if line.startswith("applied ")] == [
        f"applied {name}" for name in ALL_MIGRATIONS
    ]
    second = run_execgw("db", "upgrade", "--database-url", fresh_mysql_url)
    assert second.returncode == 0, second.stderr
    assert "schema is up to date" in second.stdout and "applied " not in second.stdout


def test_execgw_db_upgrade_takes_the_url_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.sqlite3'}"
    result = run_execgw("db", "upgrade", env={"EXECGW_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-env.sqlite3").exists()


def test_execgw_db_upgrade_defaults_to_sqlite_under_the_working_directory(tmp_path: Path) -> None:
    result = run_execgw("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "execgw-data" / "execgw.sqlite3").exists()


def test_execgw_db_upgrade_never_shows_the_password() -> None:
    # Port 1: nothing listens, the connection is refused at once.
    result = run_execgw(
        "db", "upgrade", "--database-url", "mysql+pymysql://execgw:s3cret-pw@127.0.0.1:1/execgw"
    )
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "mysql+pymysql://execgw:***@127.0.0.1:1/execgw" in result.stderr


def test_an_sqlite_file_from_before_the_rename_keeps_its_order_reasons(tmp_path: Path) -> None:
    """A file made when the column was rejected_reason: upgrade renames it in place, data kept."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql('ALTER TABLE trade_orders RENAME COLUMN status_reason TO rejected_reason')
            conn.exec_driver_sql(
                "INSERT INTO trade_runs (id, mode, status, last_sequence, created_at, updated_at) "
                "VALUES ('3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b', 'paper', 'FAILED', 0, '2026-11-27', '2026-11-27')")
            conn.exec_driver_sql(
                "INSERT INTO trade_orders (run_id, client_order_id, symbol, sec_type, exchange, currency, side, "
                "quantity, order_type, status, filled_qty, created_at, updated_at, rejected_reason) VALUES "
                "('3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b', 'old-1', 'AAPL', 'STK', 'SMART', 'USD', 'BUY', 1, 'MKT', "
                "'REJECTED', 0, '2026-11-27', '2026-11-27', 'IB 201: no permissions')")
        assert "sqlite:rename trade_orders.rejected_reason to status_reason" in upgrade(url)
        assert upgrade(url) == []
        with Session(engine) as session:
            order = session.scalars(select(TradeOrder).where(TradeOrder.client_order_id == "old-1")).one()
            assert order.status_reason == "IB 201: no permissions"
    finally:
        engine.dispose()


def test_an_sqlite_file_from_before_the_caller_columns_gets_them_empty(tmp_path: Path) -> None:
    """A file made before 20261129: upgrade adds the caller columns, its runs keep their data."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for column in ("submitted_note", "submitted_from", "cancelled_by", "cancelled_at"):
                conn.exec_driver_sql(f'ALTER TABLE trade_runs DROP COLUMN "{column}"')
            conn.exec_driver_sql(
                "INSERT INTO trade_runs (id, mode, status, submitted_by, last_sequence, created_at, updated_at) "
                "VALUES ('3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b', 'paper', 'SUCCESS', 'backend', 0, "
                "'2026-11-27', '2026-11-27')")
        assert "sqlite:add trade_runs.cancelled_by" in upgrade(url)
        assert upgrade(url) == []
        with Session(engine) as session:
            run = session.get(TradeRun, "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b")
            assert run is not None and run.submitted_by == "backend"
            assert (run.submitted_note, run.submitted_from, run.cancelled_by, run.cancelled_at) == (None,) * 4
    finally:
        engine.dispose()


def test_an_sqlite_file_from_before_gateway_names_gives_its_runs_to_the_default_name(tmp_path: Path) -> None:
    """A file made before 20261130: upgrade adds trade_runs.gateway, its runs owned by "execgw"
    (the name every gateway had), so a single gateway resumes them as before."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql('ALTER TABLE trade_runs DROP COLUMN "gateway"')
            conn.exec_driver_sql(
                "INSERT INTO trade_runs (id, mode, status, last_sequence, created_at, updated_at) "
                "VALUES ('3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b', 'paper', 'RUNNING', 0, '2026-11-29', '2026-11-29')")
        assert "sqlite:add trade_runs.gateway" in upgrade(url)
        with Session(engine) as session:
            run = session.get(TradeRun, "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b")
            assert run is not None and run.gateway == "execgw"
    finally:
        engine.dispose()


@pytest.mark.mysql
def test_the_gateway_patch_gives_existing_runs_the_default_name(mysql_engine: Engine) -> None:
    migrations = discover_migrations()
    with mysql_engine.connect() as conn:
        for migration in migrations:
            if migration.name == "20261130_execgw_run_gateway.sql":
                conn.execute(text(
                    "INSERT INTO trade_runs (id, mode, status, last_sequence, created_at, updated_at) "
                    "VALUES ('3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b', 'paper', 'RUNNING', 0, NOW(6), NOW(6))"))
                conn.commit()
            apply_script(conn, migration)
        assert conn.execute(text("SELECT gateway FROM trade_runs")).scalars().all() == ["execgw"]
