"""The engine under faults it must survive without losing what IB said: a transaction that fails
and is retried, and an IB report that cannot be applied. Real store, SQLite and MariaDB; IB's
reports are fed as the IB session would hand them over."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from execgw.server.db.engine import make_engine
from execgw.server.db.models import RunStatus, TradeFill, TradeOrder, TradeRun, utcnow
from execgw.server.engine.bus import EventBus
from execgw.server.engine.engine import ExecutionEngine
from execgw.server.engine.runs import EngineTimings
from execgw.server.engine.store import Store
from execgw.server.ib import events as ib

ENDPOINT = "127.0.0.1:4002"


def _order_row(db: Any) -> TradeOrder:
    now = utcnow()
    with Session(db, expire_on_commit=False) as s, s.begin():
        run = TradeRun(id=str(uuid.uuid4()), mode="paper", status=RunStatus.RUNNING.value, last_sequence=0,
                       created_at=now, updated_at=now)
        s.add(run)
        s.flush()
        order = TradeOrder(
            run_id=run.id, client_order_id=f"c-{uuid.uuid4().hex[:8]}", symbol="AAPL", sec_type="STK",
            exchange="SMART", currency="USD", side="BUY", quantity=10, order_type="MKT", status="SUBMITTED",
            filled_qty=0.0, ib_endpoint=ENDPOINT, ib_client_id=1, ib_order_id=7, ib_perm_id=9001,
            created_at=now, updated_at=now,
        )
        s.add(order)
    return order


def _execution(order: TradeOrder, exec_id: str, shares: float = 10.0) -> ib.ExecutionReport:
    now = datetime.now(UTC)
    return ib.ExecutionReport(
        endpoint=ENDPOINT, req_id=-1, order_id=7, perm_id=9001, client_id=1, order_ref=order.client_order_id,
        exec_id=exec_id, symbol="AAPL", sec_type="STK", currency="USD", exchange="NYSE", side="BOT",
        shares=shares, price=100.0, cum_qty=shares, avg_price=100.0, account="DU1234567", trade_time=now,
        received_at=now,
    )


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_an_early_commission_survives_a_retried_transaction(database_url):
    """IB may send the commission before its execution; if the transaction that merges them fails
    and is retried, the commission must still be merged (it was lost: popped, then rolled back)."""
    db = make_engine(database_url)
    order = _order_row(db)
    exec_id = f"0001f4e8.{uuid.uuid4().hex[:8]}.01.01"

    async def scenario() -> TradeFill:
        store = Store(db)
        engine = ExecutionEngine(store, EventBus(), EngineTimings(retry_interval=0.1))
        await engine.start()
        try:
            engine.on_ib_event(ib.CommissionReport(ENDPOINT, exec_id, 1.25, "USD", None, datetime.now(UTC)))
            await asyncio.sleep(0.3)  # stored as early: no execution yet

            original = store.write
            failures = {"left": 1}

            async def write_then_fail_once(work: Callable[[Any], Any]) -> Any:
                if failures["left"]:
                    failures["left"] -= 1

                    def work_then_lose_the_connection(rec: Any) -> Any:
                        work(rec)
                        raise OperationalError("COMMIT", {}, ConnectionError("server has gone away"))

                    return await original(work_then_lose_the_connection)
                return await original(work)

            store.write = write_then_fail_once  # type: ignore[method-assign]
            engine.on_ib_event(_execution(order, exec_id))

            def stored() -> TradeFill | None:
                with Session(db) as s:
                    return s.scalar(select(TradeFill).where(TradeFill.exec_id == exec_id))

            await _until(lambda: store.read(lambda _: stored() is not None))
            assert failures["left"] == 0, "the fault was injected"
            fill = stored()
            assert fill is not None
            return fill
        finally:
            await engine.stop()

    try:
        fill = asyncio.run(scenario())
        assert fill.commission == pytest.approx(1.25)
    finally:
        db.dispose()


def test_one_report_that_cannot_be_applied_does_not_drop_the_others(database_url, caplog):
    """A poison report is isolated and logged with its content; the rest of its batch is kept."""
    caplog.set_level(logging.ERROR, logger="execgw")
    db = make_engine(database_url)
    order = _order_row(db)
    good = [f"0001f4e8.{uuid.uuid4().hex[:8]}.01.01" for _ in range(3)]

    async def scenario() -> list[str]:
        store = Store(db)
        engine = ExecutionEngine(store, EventBus(), EngineTimings(retry_interval=0.1))
        await engine.start()
        try:
            poison = _execution(order, "poison.01.01", shares=float("nan"))
            batch = [_execution(order, good[0], 2), poison, _execution(order, good[1], 3), _execution(order, good[2], 5)]
            for event in batch:
                engine.on_ib_event(event)

            def stored() -> list[str]:
                with Session(db) as s:
                    return list(s.scalars(select(TradeFill.exec_id).where(TradeFill.order_id == order.id)))

            await _until(lambda: store.read(lambda _: len(stored()) >= 3))
            await asyncio.sleep(0.3)
            return stored()
        finally:
            await engine.stop()

    try:
        stored = asyncio.run(scenario())
        assert sorted(stored) == sorted(good)
        assert any("poison.01.01" in r.getMessage() for r in caplog.records), "the poison report is logged"
    finally:
        db.dispose()
