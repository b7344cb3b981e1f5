"""The tables the gateway writes: runs, their orders, IB executions (fills) and the per-run event log.

The MySQL schema is made by the SQL files under ``deploy/mysql`` (see ``migrations.py``); these models
must describe exactly what those files create, and ``tests/server/db/test_migrations.py`` fails when
they drift apart. SQLite databases are created from these models directly.

All datetimes are naive UTC: MySQL's DATETIME has no time zone, and mixing aware and naive values
in one column is a bug waiting for a comparison.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    JSON,
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import TypeEngine

# Microseconds matter: events of one run are ordered by them when IB reports several in one second,
# and MySQL's bare DATETIME would silently truncate them.
DateTime6: TypeEngine[datetime] = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntegerPK: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")

# A run id compares exactly on MySQL too (utf8mb4_bin, patch 20261127), as on SQLite and in the
# engine: under the table collation an upper-cased run id found a run the engine did not know.
RunId: TypeEngine[str] = String(36).with_variant(
    mysql.VARCHAR(36, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)

# Every table is InnoDB/utf8mb4 on MySQL, as the SQL files say, so a schema created from the
# models (tests, tools) has the same engine and collation as one created by the migrations.
_MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class _CurrentTimestampOnUpdate(ColumnElement[datetime]):
    """``DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP`` on MySQL, ``CURRENT_TIMESTAMP`` elsewhere.

    The seed's ``trade_fills.updated_at`` is declared that way; SQLite has no ON UPDATE clause, so
    the ORM also sets the column on every UPDATE (``onupdate=``) to keep both databases alike.
    """

    inherit_cache = True


@compiles(_CurrentTimestampOnUpdate)
def _current_timestamp(element: _CurrentTimestampOnUpdate, compiler: SQLCompiler, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(_CurrentTimestampOnUpdate, "mysql")
@compiles(_CurrentTimestampOnUpdate, "mariadb")
def _current_timestamp_on_update(element: _CurrentTimestampOnUpdate, compiler: SQLCompiler, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"


# The name a gateway has unless configured otherwise (Settings.gateway_name), and the owner of
# every run recorded before gateways had names.
DEFAULT_GATEWAY_NAME = "execgw"


def utcnow() -> datetime:
    """Now, as the naive UTC datetime every column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def execution_base(exec_id: str) -> str:
    """The execId without its last dot-part: a correction ``…01.02`` shares the base of ``…01.01``.

    The same rule backfills ``trade_fills.exec_base`` in the 20261124 patch.
    """
    base, dot, _ = exec_id.rpartition(".")
    return base if dot else exec_id


class RunMode(enum.StrEnum):
    PAPER = "paper"
    LIVE = "live"


class RunStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class OrderStatus(enum.StrEnum):
    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    INACTIVE = "INACTIVE"
    UNKNOWN = "UNKNOWN"


class EventKind(enum.StrEnum):
    ORDER_STATUS = "order_status"
    FILL = "fill"
    COMMISSION = "commission"
    RUN_STATUS = "run_status"


class Base(DeclarativeBase):
    pass


class TradeRun(Base):
    """One submission of orders; its id is the public run id (a uuid4 string made by the engine)."""

    __tablename__ = "trade_runs"
    __table_args__ = (
        # Newest-first listing pages by (created_at, id).
        Index("idx_trade_runs_created", "created_at", "id"),
        _MYSQL_TABLE,
    )

    id: Mapped[str] = mapped_column(RunId, primary_key=True)
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    account: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the authenticated caller's name
    # What the request's submitted_by said: a free-text note, never an identity.
    submitted_note: Mapped[str | None] = mapped_column(String(128), nullable=True)
    submitted_from: Mapped[str | None] = mapped_column(String(255), nullable=True)  # gRPC peer address
    # Who cancelled the run while it was running, and when (the first such cancel).
    cancelled_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime6, nullable=True)
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime6, nullable=True)
    # The last event sequence handed out for this run; bumped in the transaction that writes the event.
    last_sequence: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime6, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime6, nullable=False, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime6, nullable=True)
    # The gateway (Settings.gateway_name) that took the run: only it sends, cancels, resumes and
    # finishes the run; other gateways on the database serve it read-only. Runs from before
    # several gateways (patch 20261130) belong to the default name.
    gateway: Mapped[str] = mapped_column(
        String(64), nullable=False, default=DEFAULT_GATEWAY_NAME, server_default=text(f"'{DEFAULT_GATEWAY_NAME}'")
    )

    # lazy="raise": the writer runs off the event loop and hands objects over after commit, so an
    # accidental lazy load would be hidden I/O; load what you need with explicit queries or options.
    orders: Mapped[list[TradeOrder]] = relationship(back_populates="run", lazy="raise")


class TradeOrder(Base):
    """One market order of a run; ``client_order_id`` is the caller's idempotency key and IB's orderRef."""

    __tablename__ = "trade_orders"
    __table_args__ = (
        UniqueConstraint("client_order_id", name="uq_trade_orders_client_order_id"),
        # IB never reuses an order id for one endpoint and client id, so a repeat is our bug.
        UniqueConstraint("ib_endpoint", "ib_client_id", "ib_order_id", name="uq_trade_orders_ib_order"),
        Index("idx_trade_orders_run", "run_id"),
        Index("idx_trade_orders_perm", "ib_perm_id"),
        _MYSQL_TABLE,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        RunId, ForeignKey("trade_runs.id", name="fk_trade_orders_run"), nullable=False
    )
    # Case-sensitive on MySQL too (utf8mb4_bin, patch 20261125): an idempotency key is exact.
    client_order_id: Mapped[str] = mapped_column(
        String(64).with_variant(mysql.VARCHAR(64, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"),
        nullable=False,
    )
    symbol: Mapped[str] = mapped_column(String(32), nullable=False)
    sec_type: Mapped[str] = mapped_column(String(8), nullable=False)
    exchange: Mapped[str] = mapped_column(String(32), nullable=False)
    primary_exchange: Mapped[str | None] = mapped_column(String(32), nullable=True)
    currency: Mapped[str] = mapped_column(String(8), nullable=False)
    side: Mapped[str] = mapped_column(String(4), nullable=False)
    quantity: Mapped[float] = mapped_column(Double, nullable=False)
    order_type: Mapped[str] = mapped_column(String(8), nullable=False)
    account: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    filled_qty: Mapped[float] = mapped_column(Double, nullable=False, default=0.0, server_default=text("0"))
    avg_fill_price: Mapped[float | None] = mapped_column(Double, nullable=True)
    # "host:port" of the IB endpoint ib_order_id belongs to: order ids are per endpoint and client id.
    ib_endpoint: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ib_client_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime6, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime6, nullable=False, default=utcnow, onupdate=utcnow)
    # Added by the seed patch (20260123), declared there exactly so: plain DATETIME, no microseconds.
    ib_order_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ib_perm_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # 64-bit at IB
    last_status_ts: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Why the order is where it is, when IB or the gateway said: IB's refusal or cancel reason, a
    # withdrawal, what left it UNKNOWN. Named status_reason by the seed; renamed in 20261128.
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    run: Mapped[TradeRun] = relationship(back_populates="orders", lazy="raise")
    fills: Mapped[list[TradeFill]] = relationship(back_populates="order", lazy="raise")


class TradeFill(Base):
    """One IB execution of an order. A correction is a new row; the row it replaces gets ``superseded_by``."""

    __tablename__ = "trade_fills"
    __table_args__ = (
        UniqueConstraint("exec_id", name="uq_trade_fills_exec_id"),
        Index("idx_trade_fills_order", "order_id"),
        Index("idx_trade_fills_exec_base", "exec_base"),
        _MYSQL_TABLE,
    )

    # The seed's columns (20260123), as it declares them.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("trade_orders.id", name="fk_trade_fills_order"), nullable=False
    )
    exec_id: Mapped[str] = mapped_column(String(64), nullable=False)
    filled_qty: Mapped[float] = mapped_column(Double, nullable=False)
    price: Mapped[float] = mapped_column(Double, nullable=False)
    commission: Mapped[float | None] = mapped_column(Double, nullable=True)
    trade_time: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    currency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    exchange: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # none_as_null: a missing payload is SQL NULL, not the JSON text 'null'.
    raw_payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime | None] = mapped_column(
        DateTime, nullable=True, server_default=text("CURRENT_TIMESTAMP")
    )
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime,
        nullable=True,
        server_default=_CurrentTimestampOnUpdate(),
        onupdate=text("CURRENT_TIMESTAMP"),
    )
    # Added by the 20261124 patch.
    exec_base: Mapped[str | None] = mapped_column(String(64), nullable=True)
    superseded_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    side: Mapped[str | None] = mapped_column(String(4), nullable=True)
    account: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ib_perm_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # 64-bit at IB
    commission_currency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    realized_pnl: Mapped[float | None] = mapped_column(Double, nullable=True)

    order: Mapped[TradeOrder] = relationship(back_populates="fills", lazy="raise")


class TradeEvent(Base):
    """The per-run event log WatchRun replays from; ``sequence`` counts 1, 2, 3… within a run."""

    __tablename__ = "trade_events"
    __table_args__ = (
        UniqueConstraint("run_id", "sequence", name="uq_trade_events_run_sequence"),
        _MYSQL_TABLE,
    )

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        RunId, ForeignKey("trade_runs.id", name="fk_trade_events_run"), nullable=False
    )
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    order_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    ib_time: Mapped[datetime | None] = mapped_column(DateTime6, nullable=True)
    stored_at: Mapped[datetime] = mapped_column(DateTime6, nullable=False, default=utcnow)


class RegisteredGateway(Base):
    """A gateway process that holds its name (server/engine/registry.py): one row per name, kept
    fresh by a heartbeat, so that a second process given the same name refuses to start instead
    of resuming the same runs. A process that stops in order marks its row stopped."""

    __tablename__ = "gateways"
    __table_args__ = (_MYSQL_TABLE,)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Random per process: the heartbeat refreshes the row only while this process still holds it.
    instance: Mapped[str] = mapped_column(CHAR(32), nullable=False)
    # What other gateways tell callers to use for this one's runs (advertise_address, else the
    # bound gRPC address); NULL until the port is bound.
    address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime6, nullable=False)
    # The database's clock (UTC) at the last heartbeat: the lease runs from here.
    seen_at: Mapped[datetime] = mapped_column(DateTime6, nullable=False)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime6, nullable=True)


class SchemaMigration(Base):
    """One applied SQL file; ``checksum`` is the sha256 of the file as it was applied."""

    __tablename__ = "schema_migrations"
    __table_args__ = (_MYSQL_TABLE,)

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime6, nullable=False, default=utcnow)
    checksum: Mapped[str] = mapped_column(CHAR(64), nullable=False)
