"""The recorder decides which IB reports are about our orders and what IB's error codes do to
them, inside one transaction, on SQLite and MariaDB.

An orderRef is not unique at IB: another API client or a TWS user may use ours, and IB shows
their orders to the master client id and in reqCompletedOrders. Only reports from the endpoint
and client id that placed our order (or carrying the permId we hold for it) may touch it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from execgw.server.db.engine import make_engine
from execgw.server.db.models import OrderStatus, RunStatus, TradeFill, TradeOrder, TradeRun, utcnow
from execgw.server.engine.recorder import Recorder
from execgw.server.engine.store import Store
from execgw.server.ib import events as ib

T = TypeVar("T")
ENDPOINT = "127.0.0.1:4002"
OUR_CLIENT = 1


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def _write(store: Store, work: Callable[[Recorder], T]) -> T:
    result, _ = asyncio.run(store.write(work))
    return result


def _order(engine: Engine, *, perm_id: int | None = None, status: str = "SUBMITTED",
           created_at: datetime | None = None, ib_order_id: int | None = None) -> TradeOrder:
    from sqlalchemy.orm import Session

    ref = f"ref-{uuid.uuid4().hex[:10]}"
    now = utcnow()
    with Session(engine, expire_on_commit=False) as s, s.begin():
        run = TradeRun(id=str(uuid.uuid4()), mode="paper", status=RunStatus.RUNNING.value, last_sequence=0,
                       created_at=now, updated_at=now)
        s.add(run)
        s.flush()
        order = TradeOrder(
            run_id=run.id, client_order_id=ref, symbol="AAPL", sec_type="STK", exchange="SMART", currency="USD",
            side="BUY", quantity=10, order_type="MKT", status=status, filled_qty=0.0, ib_endpoint=ENDPOINT,
            ib_client_id=OUR_CLIENT, ib_order_id=ib_order_id or int(uuid.uuid4().int % 1_000_000) + 1, ib_perm_id=perm_id,
            created_at=created_at or now, updated_at=now,
        )
        s.add(order)
    return order


def _reload(engine: Engine, order: TradeOrder) -> TradeOrder:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        row = s.get(TradeOrder, order.id)
        assert row is not None
        s.expunge(row)
        return row


def _status(order: TradeOrder, *, client_id: int, order_id: int, perm_id: int, status: str,
            ref: str = "") -> ib.OrderStatusReport:
    return ib.OrderStatusReport(ENDPOINT, client_id, order_id, perm_id, status, -1.0, -1.0, 0.0, "", ref,
                                datetime.now(UTC))


def _execution(order: TradeOrder, *, client_id: int, order_id: int, perm_id: int) -> ib.ExecutionReport:
    return ib.ExecutionReport(
        endpoint=ENDPOINT, req_id=-1, order_id=order_id, perm_id=perm_id, client_id=client_id,
        order_ref=order.client_order_id, exec_id=f"0001f4e8.{uuid.uuid4().hex[:8]}.01.01", symbol="AAPL",
        sec_type="STK", currency="USD", exchange="NYSE", side="BOT", shares=10.0, price=100.0, cum_qty=10.0,
        avg_price=100.0, account="DU1234567", trade_time=datetime.now(UTC), received_at=datetime.now(UTC),
    )


def _error(order: TradeOrder, code: int, message: str = "m") -> ib.IbError:
    return ib.IbError(ENDPOINT, OUR_CLIENT, order.ib_order_id or 0, code, message, datetime.now(UTC))


def test_another_clients_execution_with_our_order_ref_is_not_ours(engine, store):
    order = _order(engine, perm_id=111)
    foreign = _execution(order, client_id=7, order_id=order.ib_order_id or 0, perm_id=222)
    assert _write(store, lambda rec: rec.record_fill(foreign)) is None
    with engine.connect() as conn:
        assert conn.execute(select(TradeFill.id).where(TradeFill.order_id == order.id)).first() is None
    assert _reload(engine, order).filled_qty == 0


def test_another_clients_status_with_our_order_ref_is_not_ours(engine, store):
    order = _order(engine, perm_id=111)
    report = _status(order, client_id=7, order_id=order.ib_order_id or 0, perm_id=222, status="Cancelled",
                     ref=order.client_order_id)
    assert _write(store, lambda rec: rec.apply_order_status(report)) is None
    assert _reload(engine, order).status == "SUBMITTED"


def test_a_completed_order_counts_only_with_the_perm_id_we_hold(engine, store):
    """completedOrder carries no client id and no order id: orderRef alone proves nothing."""
    order = _order(engine, perm_id=111)
    stranger = _status(order, client_id=0, order_id=0, perm_id=222, status="Cancelled", ref=order.client_order_id)
    assert _write(store, lambda rec: rec.apply_order_status(stranger)) is None
    ours = _status(order, client_id=0, order_id=0, perm_id=111, status="Cancelled", ref=order.client_order_id)
    assert _write(store, lambda rec: rec.apply_order_status(ours)) is not None
    assert _reload(engine, order).status == "CANCELLED"

    unacknowledged = _order(engine, perm_id=None)
    guess = _status(unacknowledged, client_id=0, order_id=0, perm_id=333, status="Cancelled",
                    ref=unacknowledged.client_order_id)
    assert _write(store, lambda rec: rec.apply_order_status(guess)) is None
    assert _reload(engine, unacknowledged).ib_perm_id is None, "never adopt a permId from an anonymous report"


def test_our_own_reports_still_apply(engine, store):
    order = _order(engine, perm_id=None)
    report = _status(order, client_id=OUR_CLIENT, order_id=order.ib_order_id or 0, perm_id=444, status="Submitted")
    assert _write(store, lambda rec: rec.apply_order_status(report)) is not None
    fill = _execution(order, client_id=OUR_CLIENT, order_id=order.ib_order_id or 0, perm_id=444)
    assert _write(store, lambda rec: rec.record_fill(fill)) is not None
    row = _reload(engine, order)
    assert (row.ib_perm_id, row.status, row.filled_qty) == (444, "FILLED", 10)


@pytest.mark.parametrize(("code", "expected"), [
    (201, "REJECTED"), (203, "REJECTED"), (10268, "REJECTED"), (10285, "REJECTED"), (321, "REJECTED"),
    (31337, "REJECTED"),  # a code nobody classified: a refusal until IB says otherwise
    (399, "SUBMITTED"), (404, "SUBMITTED"), (2109, "SUBMITTED"), (10349, "SUBMITTED"),
    (10147, "SUBMITTED"), (10148, "SUBMITTED"), (161, "SUBMITTED"),
    (202, "CANCELLED"),
])
def test_what_an_error_code_does_to_a_working_order(engine, store, code, expected):
    order = _order(engine, perm_id=555)
    _write(store, lambda rec: rec.apply_error(_error(order, code, "IB's words")))
    row = _reload(engine, order)
    assert row.status == expected
    if expected != "SUBMITTED":
        assert row.status_reason == f"IB {code}: IB's words"


def test_an_order_refused_by_an_unknown_code_comes_back_when_ib_works_it(engine, store):
    order = _order(engine, perm_id=666)
    _write(store, lambda rec: rec.apply_error(_error(order, 31337)))
    assert _reload(engine, order).status == "REJECTED"
    alive = _status(order, client_id=OUR_CLIENT, order_id=order.ib_order_id or 0, perm_id=666, status="Submitted")
    _write(store, lambda rec: rec.apply_order_status(alive))
    row = _reload(engine, order)
    assert row.status == "SUBMITTED" and row.status_reason is None


def test_an_order_refused_by_a_known_code_stays_refused(engine, store):
    order = _order(engine, perm_id=777)
    _write(store, lambda rec: rec.apply_error(_error(order, 201, "Order rejected - reason:no permissions")))
    alive = _status(order, client_id=OUR_CLIENT, order_id=order.ib_order_id or 0, perm_id=777, status="Submitted")
    _write(store, lambda rec: rec.apply_order_status(alive))
    assert _reload(engine, order).status == "REJECTED"


def test_unknown_orders_from_before_ibs_day_stay_unknown(engine, store):
    day_began = datetime.now(UTC) - timedelta(hours=1)
    before = _order(engine, status="UNKNOWN", created_at=utcnow() - timedelta(hours=5))
    after = _order(engine, status="UNKNOWN")
    _write(store, lambda rec: rec.resolve_unknown(ENDPOINT, OUR_CLIENT, day_began))
    assert _reload(engine, before).status == OrderStatus.UNKNOWN.value
    assert "before IB's current day" in (_reload(engine, before).status_reason or "")
    assert _reload(engine, after).status == OrderStatus.CANCELLED.value


def test_unacknowledged_orders_written_to_an_earlier_socket_never_reached_ib(engine, store):
    """After a reconnect's reconciliation, an order still PENDING_SUBMIT among those written to
    an earlier socket (ids up to `written_before`) is one IB never read; one with a higher id
    is still its sender's to write, and an acknowledged one is IB's to report."""
    day_began = datetime.now(UTC) - timedelta(hours=1)
    acknowledged = _order(engine, status="SUBMITTED", ib_order_id=40)
    yesterdays = _order(engine, status="PENDING_SUBMIT", ib_order_id=41, created_at=utcnow() - timedelta(hours=5))
    lost = _order(engine, status="PENDING_SUBMIT", ib_order_id=42)
    queued = _order(engine, status="PENDING_SUBMIT", ib_order_id=43)

    resolved = _write(store, lambda rec: [
        o.client_order_id for o in rec.resolve_unknown(ENDPOINT, OUR_CLIENT, day_began, written_before=42)])

    assert resolved == [lost.client_order_id]
    assert _reload(engine, lost).status == OrderStatus.CANCELLED.value
    assert "never reached IB" in (_reload(engine, lost).status_reason or "")
    assert _reload(engine, queued).status == OrderStatus.PENDING_SUBMIT.value
    assert _reload(engine, acknowledged).status == OrderStatus.SUBMITTED.value
    # IB's reports no longer cover an order from before its day: an operator settles it.
    assert _reload(engine, yesterdays).status == OrderStatus.UNKNOWN.value
    assert "before IB's current day" in (_reload(engine, yesterdays).status_reason or "")


def test_a_late_original_never_replaces_its_correction(engine, store):
    """IB corrects an execution by repeating its exec id with a higher last part (.01 → .02); a
    replay may bring the original after the correction: the correction still counts, alone."""
    order = _order(engine, perm_id=888)
    base = f"0001f4e8.{uuid.uuid4().hex[:8]}.01"
    correction = replace(_execution(order, client_id=OUR_CLIENT, order_id=order.ib_order_id or 0, perm_id=888),
                         exec_id=f"{base}.02", shares=10.0, price=101.0)
    original = replace(correction, exec_id=f"{base}.01", shares=10.0, price=100.0)
    _write(store, lambda rec: rec.record_fill(correction))
    _write(store, lambda rec: rec.record_fill(original))
    row = _reload(engine, order)
    assert row.filled_qty == 10 and row.avg_fill_price == pytest.approx(101.0)
    with engine.connect() as conn:
        rows = dict(conn.execute(select(TradeFill.exec_id, TradeFill.superseded_by)
                                 .where(TradeFill.order_id == order.id)).all())
    assert rows == {f"{base}.02": None, f"{base}.01": f"{base}.02"}


def test_partial_fills_add_up_exactly(engine, store):
    """0.1 + 0.2 shares fill a 0.3-share order: sums are decimal, not binary floating point."""
    order = _order(engine, perm_id=999)
    with Session(engine) as s, s.begin():
        s.get(TradeOrder, order.id).quantity = 0.3  # type: ignore[union-attr]
    first = _execution(order, client_id=OUR_CLIENT, order_id=order.ib_order_id or 0, perm_id=999)
    for exec_id, shares in ((f"a.{uuid.uuid4().hex[:6]}.01", 0.1), (f"b.{uuid.uuid4().hex[:6]}.01", 0.2)):
        execution = replace(first, exec_id=exec_id, shares=shares)
        _write(store, lambda rec, e=execution: rec.record_fill(e))
    row = _reload(engine, order)
    assert row.filled_qty == 0.3 and row.status == "FILLED"
