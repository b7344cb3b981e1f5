"""Each committed writer transaction reports its legs (applying its work, its statements, its
COMMIT) on the loop, on SQLite and MariaDB: a slow COMMIT shows as the commit leg, slow work as
the apply leg (the metric `execgw_writer_transaction_seconds{leg}` is read from these)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, event

from execgw.server.db.engine import make_engine
from execgw.server.engine.recorder import Recorder
from execgw.server.engine.store import Store, WriterTimes

STALL = 0.05


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(make_engine(database_url))
    # Connected once before anything is timed: opening a MariaDB connection (50 ms on a busy
    # machine) belongs to the first transaction's statements leg, and would blur the legs here.
    asyncio.run(store.write(lambda rec: None))
    yield store
    store.close()


def _timed(store: Store, work: Callable[[Recorder], object]) -> list[WriterTimes]:
    told: list[WriterTimes] = []
    store.on_transaction = told.append
    asyncio.run(store.write(work))
    return told


def test_a_slow_commit_shows_as_the_commit_leg(store: Store) -> None:
    engine: Engine = store.engine

    def stall(_connection: object) -> None:
        time.sleep(STALL)

    event.listen(engine, "commit", stall)
    [times] = _timed(store, lambda rec: None)
    assert times.commit >= STALL
    assert times.apply < STALL and times.statements < STALL


def test_slow_work_shows_as_the_apply_leg(store: Store) -> None:
    def work(_rec: Recorder) -> None:
        time.sleep(STALL)

    [times] = _timed(store, work)
    assert times.apply >= STALL
    assert times.statements < STALL and times.commit < STALL


def test_a_failed_transaction_reports_nothing(store: Store) -> None:
    def work(_rec: Recorder) -> None:
        raise RuntimeError("the work failed")

    told: list[WriterTimes] = []
    store.on_transaction = told.append
    with pytest.raises(RuntimeError):
        asyncio.run(store.write(work))
    assert told == []
