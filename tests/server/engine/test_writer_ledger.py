"""The writer's ledger (the rows it keeps in memory between transactions) and its multi-row
writes, on SQLite and MariaDB: a transaction that fails leaves nothing of itself for the retry
to build on; duplicates never cost a batch; rows written through the driver read back as the
ORM wrote them; a ledger past its bounds forgets runs and loads them again, correctly.

IB's reports are fed to a real engine as the IB session hands them over; the database is read
directly afterwards, and what watchers were published is compared with what was committed."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from execgw.server.db.engine import make_engine
from execgw.server.db.models import EventKind, RunStatus, TradeEvent, TradeFill, TradeOrder, TradeRun, utcnow
from execgw.server.engine.bus import EventBus
from execgw.server.engine.engine import ExecutionEngine
from execgw.server.engine.ledger import Ledger
from execgw.server.engine.recorder import Recorder
from execgw.server.engine.runs import EngineTimings
from execgw.server.engine.store import Store
from execgw.server.engine.stored_event import StoredEvent
from execgw.server.ib import events as ib

ENDPOINT = "127.0.0.1:4002"
CLIENT_ID = 1


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _order(db: Engine, *, quantity: float = 100, ib_order_id: int | None = None) -> TradeOrder:
    """A working order of a running run, written directly (as a previous transaction would have)."""
    now = utcnow()
    with Session(db, expire_on_commit=False) as s, s.begin():
        run = TradeRun(id=str(uuid.uuid4()), mode="paper", status=RunStatus.RUNNING.value, last_sequence=0,
                       created_at=now, updated_at=now, deadline_at=now + timedelta(hours=1))
        s.add(run)
        s.flush()
        order = TradeOrder(
            run_id=run.id, client_order_id=f"c-{uuid.uuid4().hex[:8]}", symbol="AAPL", sec_type="STK",
            exchange="SMART", currency="USD", side="BUY", quantity=quantity, order_type="MKT",
            status="PENDING_SUBMIT", filled_qty=0.0, ib_endpoint=ENDPOINT, ib_client_id=CLIENT_ID,
            ib_order_id=ib_order_id or int(uuid.uuid4().int % 1_000_000) + 1,
            ib_perm_id=int(uuid.uuid4().int % 1_000_000_000) + 1, created_at=now, updated_at=now,
        )
        s.add(order)
    return order


def _status(order: TradeOrder, status: str = "Submitted") -> ib.OrderStatusReport:
    return ib.OrderStatusReport(ENDPOINT, CLIENT_ID, order.ib_order_id or 0, order.ib_perm_id or 0, status,
                                0.0, 0.0, 0.0, "", "", datetime.now(UTC))


def _execution(order: TradeOrder, exec_id: str, shares: float = 1.0, price: float = 100.0) -> ib.ExecutionReport:
    now = datetime.now(UTC)
    return ib.ExecutionReport(
        endpoint=ENDPOINT, req_id=-1, order_id=order.ib_order_id or 0, perm_id=order.ib_perm_id or 0,
        client_id=CLIENT_ID, order_ref=order.client_order_id, exec_id=exec_id, symbol="AAPL", sec_type="STK",
        currency="USD", exchange="NYSE", side="BOT", shares=shares, price=price, cum_qty=shares, avg_price=price,
        account="DU1234567", trade_time=now.replace(microsecond=123456), received_at=now,
    )


def _commission(exec_id: str, amount: float = 1.25) -> ib.CommissionReport:
    return ib.CommissionReport(ENDPOINT, exec_id, amount, "USD", None, datetime.now(UTC))


def _exec_id() -> str:
    return f"0001f4e8.{uuid.uuid4().hex[:8]}.01.01"


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _fills(db: Engine, order: TradeOrder) -> list[TradeFill]:
    with Session(db) as s:
        return list(s.scalars(select(TradeFill).where(TradeFill.order_id == order.id).order_by(TradeFill.id)))


def _events(db: Engine, run_id: str) -> list[TradeEvent]:
    with Session(db) as s:
        return list(s.scalars(select(TradeEvent).where(TradeEvent.run_id == run_id).order_by(TradeEvent.sequence)))


def _row(db: Engine, model: type[Any], key: object) -> Any:
    with Session(db) as s:
        return s.get(model, key)


class Engines:
    """A real engine on a store, with a watcher of one run on its bus. (Its orders are written
    after it started: a run open at the start is one a previous process left, whose orders the
    engine marks UNKNOWN until IB tells.)"""

    def __init__(self, db: Engine) -> None:
        self.store = Store(db)
        self.bus = EventBus()
        self.engine = ExecutionEngine(self.store, self.bus, EngineTimings(retry_interval=0.1))

    def watch(self, run_id: str) -> None:
        self.watcher = self.bus.subscribe(run_id)

    def published(self) -> list[StoredEvent]:
        events = []
        while not self.watcher.queue.empty():
            event = self.watcher.queue.get_nowait()
            assert event is not None
            events.append(event)
        return events


def _fail_first_write(store: Store, how: str) -> dict[str, int]:
    """The store's next transaction does all its work, then fails: `outage` as a lost
    connection at the commit (held and retried), `bug` as an error of our own (applied again
    one report at a time)."""
    original = store.write
    left = {"failures": 1}
    lost = OperationalError("COMMIT", {}, Exception(2013, "Lost connection to server during query"))
    bug = RuntimeError("a bug after the work was done")

    async def write_then_fail_once(work: Callable[[Recorder], Any]) -> Any:
        if not left["failures"]:
            return await original(work)
        left["failures"] -= 1

        def work_then_fail(rec: Recorder) -> Any:
            work(rec)
            rec.write()  # the rows went to the database too, inside the transaction
            raise lost if how == "outage" else bug

        return await original(work_then_fail)

    store.write = write_then_fail_once  # type: ignore[method-assign]
    return left


@pytest.mark.parametrize("how", ["outage", "bug"])
def test_a_failed_transaction_leaves_nothing_the_retry_builds_on(db, how):
    """The failed attempt changed the ledger's entries (the order's status, the run's sequence,
    a fill now known): the retry must start from what was committed, or it would skip the
    status change and the fill as done already, or number its events after a gap."""
    exec_id = _exec_id()

    async def scenario() -> tuple[TradeOrder, list[StoredEvent], dict[str, int]]:
        engines = Engines(db)
        await engines.engine.start()
        order = _order(db)
        engines.watch(order.run_id)
        try:
            left = _fail_first_write(engines.store, how)
            for event in (_status(order), _execution(order, exec_id, shares=10), _commission(exec_id)):
                engines.engine.on_ib_event(event)

            async def written() -> bool:
                fills = await engines.store.read(lambda _: _fills(db, order))
                return bool(fills) and fills[0].commission is not None

            await _until(written)
            await asyncio.sleep(0.2)
            return order, engines.published(), left
        finally:
            await engines.engine.stop()

    order, published, left = asyncio.run(scenario())
    assert left["failures"] == 0, "the failure was injected"
    (fill,) = _fills(db, order)
    assert (fill.exec_id, fill.filled_qty, fill.commission) == (exec_id, 10, pytest.approx(1.25))
    row = _row(db, TradeOrder, order.id)
    assert (row.status, row.filled_qty, row.ib_perm_id) == ("PARTIALLY_FILLED", 10, order.ib_perm_id)
    stored = _events(db, order.run_id)
    assert [e.sequence for e in stored] == list(range(1, len(stored) + 1)), "gap-free from 1"
    assert [e.kind for e in stored] == ["order_status", "fill", "order_status", "commission"]
    assert _row(db, TradeRun, order.run_id).last_sequence == len(stored)
    assert [(e.sequence, e.kind) for e in published] == [(e.sequence, e.kind) for e in stored], \
        "watchers got exactly what was committed, nothing of the failed attempt"


def test_duplicates_within_a_batch_and_across_batches_are_ignored_without_failing_a_batch(db, caplog):
    """IB repeats execDetails and commission reports, and reqExecutions replays the day: each is
    recognised as stored. The database's unique exec_id would refuse a second row, but that
    would fail the whole batch and cost its reports one transaction each."""
    caplog.set_level(logging.WARNING, logger="execgw")
    first, second = _exec_id(), _exec_id()

    async def scenario() -> tuple[TradeOrder, list[StoredEvent], int]:
        engines = Engines(db)
        await engines.engine.start()
        order = _order(db)
        engines.watch(order.run_id)
        try:
            for event in (_execution(order, first), _execution(order, first), _commission(first),
                          _commission(first), _execution(order, second)):
                engines.engine.on_ib_event(event)  # one batch

            async def stored(count: int) -> bool:
                return len(await engines.store.read(lambda _: _fills(db, order))) == count

            await _until(lambda: stored(2))
            for event in (_execution(order, first), _commission(first), _execution(order, second)):
                engines.engine.on_ib_event(event)  # a later batch: a replay of the day
            await asyncio.sleep(0.5)
            return order, engines.published(), engines.engine.poison_reports
        finally:
            await engines.engine.stop()

    order, published, poison = asyncio.run(scenario())
    assert poison == 0
    assert not [r for r in caplog.records if "failed to apply a batch" in r.getMessage()]
    assert [f.exec_id for f in _fills(db, order)] == [first, second]
    kinds = [e.kind for e in _events(db, order.run_id)]
    assert kinds.count("fill") == 2 and kinds.count("commission") == 1
    assert len(published) == len(kinds)


def test_an_exec_id_stored_under_another_order_keeps_its_first_row_and_costs_only_itself(db, caplog):
    """A live execution's exec id is not looked up (its order's fills are in the ledger, so one it
    does not hold is new). Should IB's report be matched to a second order of ours, the insert
    breaks the unique exec id: that report alone is skipped as poison, the first row stays as
    it was, and the rest of its batch is stored."""
    caplog.set_level(logging.WARNING, logger="execgw")
    shared, other = _exec_id(), _exec_id()
    first_order, second_order = _order(db), _order(db)

    async def store_first() -> None:
        engines = Engines(db)
        await engines.engine.start()
        try:
            engines.engine.on_ib_event(_execution(first_order, shared))
            await _until(lambda: engines.store.read(lambda _: len(_fills(db, first_order)) == 1))
        finally:
            await engines.engine.stop()

    async def scenario() -> int:
        engines = Engines(db)  # a new process: nothing in its ledger
        await engines.engine.start()
        try:
            for event in (_execution(second_order, shared, price=99.0), _execution(second_order, other),
                          _commission(other)):
                engines.engine.on_ib_event(event)  # one batch

            async def written() -> bool:
                return await engines.store.read(
                    lambda _: [f.commission for f in _fills(db, second_order)] == [1.25])

            await _until(written)
            return engines.engine.poison_reports
        finally:
            await engines.engine.stop()

    asyncio.run(store_first())
    poison = asyncio.run(scenario())
    assert [(f.exec_id, f.price) for f in _fills(db, first_order)] == [(shared, 100.0)]
    assert [f.exec_id for f in _fills(db, second_order)] == [other]
    assert poison == 1
    assert any("could not be applied and is skipped" in r.getMessage() for r in caplog.records)


def test_rows_written_through_the_driver_read_back_as_the_orm_writes_them(db):
    """Fills and events go to the driver's executemany with their values converted by us (JSON
    text; on SQLite datetimes as text): datetimes must be what the ORM would have stored, to the
    character, or comparisons and sorts in SQL would differ between old and new rows; JSON texts
    (which SQL never compares: the writer's are compact) must hold the same values."""
    order = _order(db)
    moment = datetime(2026, 11, 28, 14, 30, 5)  # no microseconds: the ORM's text still has them
    payload = {"é": "ü", "n": 1.5, "nested": {"list": [1, None, True]}}

    def both(rec: Recorder) -> None:
        run = rec.run(order.run_id)
        assert run is not None
        rec.emit(run, EventKind.FILL, payload, ib_time=moment)
    asyncio.run(Store(db).write(both))
    with Session(db) as s, s.begin():
        s.add(TradeEvent(run_id=order.run_id, sequence=1000, kind="fill", payload=payload, ib_time=moment,
                         stored_at=moment))  # out of the run's way
    driver, orm = _events(db, order.run_id)
    assert (driver.payload, driver.ib_time) == (orm.payload, orm.ib_time) == (payload, moment)
    with db.connect() as conn:
        raw = conn.execute(text("SELECT payload, ib_time FROM trade_events WHERE run_id = :r ORDER BY sequence"),
                           {"r": order.run_id}).all()
    assert raw[0][1] == raw[1][1], "the datetime stored the same way"
    assert json.loads(raw[0][0]) == json.loads(raw[1][0]) == payload

    fill = _execution(order, _exec_id())
    asyncio.run(Store(db).write(lambda rec: rec.record_fill(fill)))
    (row,) = _fills(db, order)
    assert row.trade_time is not None and fill.trade_time is not None
    # trade_time is the seed's plain DATETIME: MySQL keeps whole seconds, as it did from the ORM
    assert row.trade_time.replace(microsecond=0) == fill.trade_time.replace(tzinfo=None, microsecond=0)
    assert row.raw_payload is not None and row.raw_payload["exec_id"] == fill.exec_id
    assert row.raw_payload["trade_time"] == fill.trade_time.isoformat()
    assert row.created_at is not None and row.updated_at is not None, "server defaults applied"


def test_a_ledger_past_its_bounds_forgets_runs_and_reloads_them_correctly(db):
    """With room for two runs, three runs' orders fill in turns: each turn forgets the least
    recently used run. A replay of everything is still recognised as stored; a commission (found
    by exec id) and a new execution (found by orderRef) of a forgotten order, in one
    transaction, reach the same order and run again: one sequence, the right totals."""
    orders = [_order(db, quantity=100) for _ in range(3)]
    executions = {o.id: [_execution(o, _exec_id(), shares=float(n + 1)) for n in range(3)] for o in orders}
    ledger = Ledger(max_fills=4, max_runs=2)
    store = Store(db, ledger=ledger)

    def apply(*reports: ib.ExecutionReport | ib.CommissionReport) -> None:
        def work(rec: Recorder) -> None:
            rec.prefetch(list(reports))
            for report in reports:
                if isinstance(report, ib.ExecutionReport):
                    rec.record_fill(report)
                else:
                    assert rec.merge_commission(report)

        asyncio.run(store.write(work))

    for turn in range(3):
        for order in orders:
            apply(executions[order.id][turn])
            assert ledger.size()[0] <= 2
    apply(*(e for es in executions.values() for e in es))  # the day replayed: all known
    for order in orders:
        assert [f.exec_id for f in _fills(db, order)] == [e.exec_id for e in executions[order.id]]
    apply(executions[orders[1].id][0], executions[orders[2].id][0])  # orders[0]'s run the least used now
    assert ledger.run(orders[0].run_id) is None, "forgotten"
    late = _execution(orders[0], _exec_id(), shares=4.0, price=110.0)
    apply(_commission(executions[orders[0].id][0].exec_id), late)
    row = _row(db, TradeOrder, orders[0].id)
    assert row.filled_qty == 10 and row.avg_fill_price == pytest.approx((6 * 100 + 4 * 110) / 10)
    assert [(e.sequence, e.kind) for e in _events(db, orders[0].run_id)] == [
        (1, "fill"), (2, "order_status"), (3, "fill"), (4, "fill"), (5, "commission"), (6, "fill")]
    assert _row(db, TradeRun, orders[0].run_id).last_sequence == 6


def test_a_run_changed_through_the_orm_is_read_again(db):
    """The recorder writes runs without the ORM; should anything change a run through the ORM
    in a transaction, the ledger must not keep its own copy of that run."""
    order = _order(db)
    store = Store(db)
    asyncio.run(store.write(lambda rec: rec.record_fill(_execution(order, _exec_id()))))

    def cancel_through_the_orm(rec: Recorder) -> None:
        run = rec.session.get(TradeRun, order.run_id)
        assert run is not None
        run.status = RunStatus.CANCELLED.value
    asyncio.run(store.write(cancel_through_the_orm))

    def status(rec: Recorder) -> str:
        run = rec.run(order.run_id)
        assert run is not None
        return run.status
    assert asyncio.run(store.write(status))[0] == RunStatus.CANCELLED.value


def test_a_late_fill_of_a_finished_forgotten_run_is_recorded_and_the_run_decided_again(db):
    """The ledger is bounded (MAX_FILLS): a run that finished long ago is forgotten while others
    trade. IB's late execution of its order (and its commission) still lands on that order: the
    order's earlier fills are read again and counted in, the run's status is decided again from
    its orders, its sequence goes on from what is stored."""
    late_order = _order(db, quantity=2)
    busy = _order(db, quantity=100)
    ledger = Ledger(max_fills=2, max_runs=1)
    store = Store(db, ledger=ledger)

    def apply(*reports: ib.ExecutionReport | ib.CommissionReport, finish: str | None = None) -> None:
        def work(rec: Recorder) -> None:
            rec.prefetch(list(reports))
            for report in reports:
                if isinstance(report, ib.ExecutionReport):
                    fill = rec.record_fill(report)
                    assert fill is not None
                    rec.refresh_finished_run(rec.order_by_id(fill.order_id))  # as the report intake does
                else:
                    assert rec.merge_commission(report)
            if finish is not None:
                rec.finish_run(rec.run(finish), cancelled_by_caller=False)

        asyncio.run(store.write(work))

    first = _execution(late_order, _exec_id(), shares=1.0, price=100.0)
    apply(first, _commission(first.exec_id), finish=late_order.run_id)
    assert _row(db, TradeRun, late_order.run_id).status == RunStatus.PARTIAL.value
    for _ in range(3):
        apply(_execution(busy, _exec_id()))  # another run trades: the finished one is forgotten
    assert ledger.run(late_order.run_id) is None and ledger.size()[2] <= 3

    late = _execution(late_order, _exec_id(), shares=1.0, price=110.0)
    apply(late, _commission(late.exec_id, 2.0))
    row = _row(db, TradeOrder, late_order.id)
    assert row.filled_qty == 2 and row.avg_fill_price == pytest.approx(105.0) and row.status == "FILLED"
    run = _row(db, TradeRun, late_order.run_id)
    assert run.status == RunStatus.SUCCESS.value
    assert [f.commission for f in _fills(db, late_order)] == [1.25, 2.0]
    kinds = [(e.sequence, e.kind) for e in _events(db, late_order.run_id)]
    assert [k for _, k in kinds] == ["fill", "order_status", "commission", "run_status", "fill", "order_status",
                                     "run_status", "commission"]
    assert [s for s, _ in kinds] == list(range(1, 9)) and run.last_sequence == 8
