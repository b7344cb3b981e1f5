"""The tail of another gateway's run (server/engine/tail.py) on SQLite and MariaDB: every event the
owner stores is handed to the local bus once, in sequence, including those stored while it
polls; one tail per run however many watch it; it stops when nobody watches or once it has
handed over the final status."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from execgw.server.db.engine import make_engine
from execgw.server.db.models import TradeEvent, TradeRun, utcnow
from execgw.server.engine.bus import EventBus, Subscription
from execgw.server.engine.store import RunProgress, Store
from execgw.server.engine.tail import ForeignRuns

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(make_engine(database_url))
    yield store
    store.close()


def new_run(store: Store, gateway: str = "a") -> str:
    run_id = str(uuid.uuid4())
    with store.engine.begin() as conn:
        conn.execute(TradeRun.__table__.insert().values(
            id=run_id, mode="paper", status="RUNNING", last_sequence=0, created_at=utcnow(), updated_at=utcnow(),
            gateway=gateway))
    return run_id


def store_events(store: Store, run_id: str, sequences: range, final: bool = False) -> None:
    """As the owner commits them: one transaction, the run's last_sequence with them."""
    with store.engine.begin() as conn:
        for sequence in sequences:
            is_last = final and sequence == sequences[-1]
            kind, payload = (("run_status", {"status": "RUN_STATUS_SUCCESS", "final": True}) if is_last
                             else ("order_status", {"client_order_id": "x", "status": "ORDER_STATUS_SUBMITTED"}))
            conn.execute(TradeEvent.__table__.insert().values(
                run_id=run_id, sequence=sequence, kind=kind, payload=payload, stored_at=utcnow()))
        conn.execute(TradeRun.__table__.update().where(TradeRun.id == run_id).values(
            last_sequence=sequences[-1], status="SUCCESS" if final else "RUNNING"))


async def received_until(subscription: Subscription, last: int, timeout: float = 10.0) -> list[int]:
    got: list[int] = []
    async with asyncio.timeout(timeout):
        while not got or got[-1] < last:
            event = await subscription.queue.get()
            if event is not None:
                got.append(event.sequence)
    return got


async def wait_for(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_every_stored_event_reaches_the_bus_once_in_sequence(store: Store):
    run_id = new_run(store)
    store_events(store, run_id, range(1, 4))

    async def scenario() -> list[int]:
        bus = EventBus()
        tails = ForeignRuns(store, bus, "b", poll_seconds=0.05)
        subscription = bus.subscribe(run_id)
        following = tails.follow(run_id, RunProgress(None, "RUNNING", 0, "a"))
        got = await received_until(subscription, 3)
        store_events(store, run_id, range(4, 8))  # stored while it polls
        got += await received_until(subscription, 7)
        store_events(store, run_id, range(8, 10), final=True)
        got += await received_until(subscription, 9)
        await wait_for(lambda: tails.tailed_runs == 0)  # stops after the final status, caught up
        assert subscription.queue.empty()
        following.release()
        await tails.stop()
        return got

    assert asyncio.run(scenario()) == list(range(1, 10))


def test_one_tail_per_run_and_it_stops_when_nobody_watches(store: Store):
    run_id = new_run(store)
    store_events(store, run_id, range(1, 3))

    async def scenario() -> None:
        bus = EventBus()
        tails = ForeignRuns(store, bus, "b", poll_seconds=0.05)
        reads = 0
        events_after = store.events_after

        async def counted(*args: object) -> object:
            nonlocal reads
            reads += 1
            return await events_after(*args)  # type: ignore[arg-type]

        store.events_after = counted  # type: ignore[method-assign]
        first, second = bus.subscribe(run_id), bus.subscribe(run_id)
        one = tails.follow(run_id, RunProgress(None, "RUNNING", 2, "a"))
        two = tails.follow(run_id, RunProgress(None, "RUNNING", 2, "a"))
        assert tails.tailed_runs == 1
        store_events(store, run_id, range(3, 5))
        assert await received_until(first, 4) == [3, 4]
        assert await received_until(second, 4) == [3, 4]
        polls = reads
        await asyncio.sleep(0.5)  # ten intervals of 0.05 s: one read each, not one per watcher
        assert 5 <= reads - polls <= 12, reads - polls
        one.release()
        assert tails.tailed_runs == 1  # one watcher left
        two.release()
        await wait_for(lambda: tails.tailed_runs == 0, 2.0)
        await tails.stop()

    asyncio.run(scenario())


def test_a_run_this_gateway_owns_is_not_tailed(store: Store):
    run_id = new_run(store, gateway="b")

    async def scenario() -> None:
        tails = ForeignRuns(store, EventBus(), "b", poll_seconds=0.05)
        tails.follow(run_id, RunProgress(None, "RUNNING", 0, "b")).release()
        assert tails.tailed_runs == 0
        await tails.stop()

    asyncio.run(scenario())
