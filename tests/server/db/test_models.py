"""The models on both databases: what the execution engine writes comes back as written, and the
database itself refuses the duplicates the gateway's idempotency relies on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.orm import Session, selectinload

from execgw.server.db.engine import make_engine, make_session_factory
from execgw.server.db.models import (
    EventKind,
    OrderStatus,
    RunMode,
    RunStatus,
    TradeEvent,
    TradeFill,
    TradeOrder,
    TradeRun,
    execution_base,
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with make_session_factory(engine)() as session:
        yield session


def new_run(**overrides: object) -> TradeRun:
    fields: dict[str, object] = {"id": str(uuid.uuid4()), "mode": RunMode.PAPER, "status": RunStatus.RUNNING}
    fields.update(overrides)
    return TradeRun(**fields)


def new_order(run: TradeRun, client_order_id: str = "c-1", **overrides: object) -> TradeOrder:
    fields: dict[str, object] = {
        "run": run,
        "client_order_id": client_order_id,
        "symbol": "AAPL",
        "sec_type": "STK",
        "exchange": "SMART",
        "primary_exchange": "NASDAQ",
        "currency": "USD",
        "side": "BUY",
        "quantity": 10.0,
        "order_type": "MKT",
        "status": OrderStatus.PENDING_SUBMIT,
    }
    fields.update(overrides)
    return TradeOrder(**fields)


def test_run_order_and_fill_round_trip(session: Session) -> None:
    deadline = datetime(2026, 11, 24, 14, 30, 5, 123456)
    run = new_run(account="DU123", submitted_by="backend", deadline_at=deadline)
    order = new_order(
        run,
        account="DU123",
        ib_endpoint="127.0.0.1:7497",
        ib_client_id=17,
        ib_order_id=1001,
        ib_perm_id=987654321,
        last_status_ts=datetime(2026, 11, 24, 14, 30, 6),
    )
    fill = TradeFill(
        order=order,
        exec_id="0000e0d5.6571c5b6.01.01",
        exec_base=execution_base("0000e0d5.6571c5b6.01.01"),
        filled_qty=10.0,
        price=189.25,
        commission=1.0,
        commission_currency="USD",
        realized_pnl=None,
        trade_time=datetime(2026, 11, 24, 14, 30, 6),
        currency="USD",
        exchange="ISLAND",
        side="BOT",
        account="DU123",
        ib_perm_id=987654321,
        raw_payload={"execId": "0000e0d5.6571c5b6.01.01", "shares": 10.0, "nested": {"ok": True}},
    )
    session.add_all([run, order, fill])
    session.commit()
    run_id = run.id
    session.expunge_all()

    loaded = session.scalars(
        select(TradeRun)
        .where(TradeRun.id == run_id)
        .options(selectinload(TradeRun.orders).selectinload(TradeOrder.fills))
    ).one()
    assert loaded.mode == "paper" and loaded.status == "RUNNING" and loaded.account == "DU123"
    assert loaded.deadline_at == deadline, "DATETIME(6) keeps microseconds"
    assert loaded.last_sequence == 0
    assert loaded.created_at is not None and loaded.updated_at is not None and loaded.finished_at is None

    [order_back] = loaded.orders
    assert order_back.client_order_id == "c-1"
    assert (order_back.ib_endpoint, order_back.ib_client_id, order_back.ib_order_id) == (
        "127.0.0.1:7497",
        17,
        1001,
    )
    assert order_back.ib_perm_id == 987654321
    assert order_back.filled_qty == 0.0 and isinstance(order_back.filled_qty, float)
    assert order_back.avg_fill_price is None and order_back.status_reason is None

    [fill_back] = order_back.fills
    assert fill_back.exec_id == "0000e0d5.6571c5b6.01.01"
    assert fill_back.exec_base == "0000e0d5.6571c5b6.01"
    assert fill_back.price == 189.25 and isinstance(fill_back.price, float)
    assert fill_back.commission == 1.0 and fill_back.superseded_by is None
    assert fill_back.raw_payload == {
        "execId": "0000e0d5.6571c5b6.01.01",
        "shares": 10.0,
        "nested": {"ok": True},
    }
    assert fill_back.created_at is not None, (
        "the database fills in created_at (seed's DEFAULT CURRENT_TIMESTAMP)"
    )


def test_fill_without_payload_stores_sql_null(session: Session) -> None:
    order = new_order(new_run())
    session.add(TradeFill(order=order, exec_id="E-null", filled_qty=1, price=1, raw_payload=None))
    session.commit()
    assert session.scalar(select(TradeFill.raw_payload.is_(None)).where(TradeFill.exec_id == "E-null"))


def test_relationships_do_not_load_lazily(session: Session) -> None:
    # The writer hands objects to the event loop; a lazy load there would be hidden blocking I/O.
    order = new_order(new_run())
    session.add(order)
    session.commit()
    session.expunge_all()
    order_back = session.scalars(select(TradeOrder)).one()
    with pytest.raises(InvalidRequestError):
        _ = order_back.fills


def test_exec_id_is_unique(session: Session) -> None:
    order = new_order(new_run())
    session.add_all([order, TradeFill(order=order, exec_id="E1", filled_qty=5, price=100)])
    session.commit()
    session.add(TradeFill(order=order, exec_id="E1", filled_qty=5, price=100))
    with pytest.raises(IntegrityError):
        session.commit()


def test_client_order_id_is_unique_across_runs(session: Session) -> None:
    session.add(new_order(new_run(), client_order_id="same"))
    session.commit()
    session.add(new_order(new_run(), client_order_id="same"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_ib_order_id_is_unique_per_endpoint_and_client_id(session: Session) -> None:
    run = new_run()
    ib = {"ib_endpoint": "127.0.0.1:7497", "ib_client_id": 1}
    session.add_all(
        [
            new_order(run, "a", ib_order_id=7, **ib),
            new_order(run, "b", ib_order_id=7, ib_endpoint="127.0.0.1:4002", ib_client_id=1),
            new_order(run, "c", ib_order_id=7, ib_endpoint="127.0.0.1:7497", ib_client_id=2),
            # Orders not yet given an IB id don't collide.
            new_order(run, "d", **ib),
            new_order(run, "e", **ib),
        ]
    )
    session.commit()
    session.add(new_order(run, "f", ib_order_id=7, **ib))
    with pytest.raises(IntegrityError):
        session.commit()


def test_event_sequence_is_unique_per_run(session: Session) -> None:
    first, second = new_run(), new_run()
    session.add_all([first, second])
    session.flush()
    for run in (first, second):
        session.add(
            TradeEvent(run_id=run.id, sequence=1, kind=EventKind.RUN_STATUS, payload={"status": "RUNNING"})
        )
    session.commit()
    session.add(TradeEvent(run_id=first.id, sequence=1, kind=EventKind.FILL, payload={}))
    with pytest.raises(IntegrityError):
        session.commit()


def test_event_round_trip(session: Session) -> None:
    run = new_run()
    ib_time = datetime(2026, 11, 24, 14, 30, 6, 250001)
    session.add(run)
    session.flush()
    session.add(
        TradeEvent(
            run_id=run.id,
            sequence=1,
            kind=EventKind.ORDER_STATUS,
            order_id=None,
            payload={"s": "é"},
            ib_time=ib_time,
        )
    )
    session.commit()
    session.expunge_all()
    event = session.scalars(select(TradeEvent)).one()
    assert event.id is not None and event.sequence == 1 and event.kind == "order_status"
    assert event.payload == {"s": "é"} and event.ib_time == ib_time and event.stored_at is not None


def test_foreign_keys_are_enforced(session: Session) -> None:
    # SQLite ignores FOREIGN KEY unless the connection turns it on; make_engine does.
    session.add(TradeFill(order_id=999_999, exec_id="orphan", filled_qty=1, price=1))
    with pytest.raises(IntegrityError):
        session.commit()


@pytest.mark.parametrize(
    ("exec_id", "base"),
    [
        ("0000e0d5.6571c5b6.01.01", "0000e0d5.6571c5b6.01"),
        ("0000e0d5.6571c5b6.01.02", "0000e0d5.6571c5b6.01"),
        ("E1", "E1"),
    ],
)
def test_execution_base_drops_the_correction_suffix(exec_id: str, base: str) -> None:
    assert execution_base(exec_id) == base


def test_client_order_ids_that_differ_only_in_case_are_two_keys(database_url):
    """IB's orderRef is case-sensitive and so is SQLite; MySQL's default collation is not."""
    from sqlalchemy.orm import Session

    from execgw.server.db.engine import make_engine
    from execgw.server.db.models import TradeOrder, TradeRun, utcnow

    engine = make_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            session.add(TradeRun(id="run-case", mode="paper", status="RUNNING", created_at=utcnow(), updated_at=utcnow()))
            session.flush()
            for key in ("ORD-1", "ord-1"):
                session.add(TradeOrder(
                    run_id="run-case", client_order_id=key, symbol="AAPL", sec_type="STK", exchange="SMART",
                    currency="USD", side="BUY", quantity=1, order_type="MKT", status="PENDING_SUBMIT",
                    created_at=utcnow(), updated_at=utcnow(),
                ))
        with Session(engine) as session:
            from sqlalchemy import select

            found = session.scalars(select(TradeOrder.client_order_id).where(TradeOrder.client_order_id == "ord-1"))
            assert list(found) == ["ord-1"]
    finally:
        engine.dispose()


def test_a_perm_id_above_2_31_is_stored_as_it_is(session: Session) -> None:
    """permIds are 64-bit at IB; an INT column refuses or clips 2^31 and above."""
    perm_id = 2**31 + 12_345
    run = new_run()
    order = new_order(run, f"c-{uuid.uuid4().hex[:8]}", ib_perm_id=perm_id)
    session.add_all([run, order])
    session.flush()
    session.add(TradeFill(order_id=order.id, exec_id=f"x-{uuid.uuid4().hex}", exec_base="x", filled_qty=1.0,
                          price=10.0, ib_perm_id=perm_id))
    session.commit()
    session.expire_all()
    assert session.scalar(select(TradeOrder.ib_perm_id).where(TradeOrder.id == order.id)) == perm_id
    assert session.scalar(select(TradeFill.ib_perm_id).where(TradeFill.order_id == order.id)) == perm_id
