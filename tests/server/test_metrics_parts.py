"""The metrics' parts that the end-to-end test does not reach: the mode of a run nobody named (one
resumed after a restart) read from the database, or "unknown" when that read fails; histogram
buckets as Prometheus reads them (`le` is inclusive); each outage counted once, however long."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime

import pytest

from execgw.server.engine.stored_event import StoredEvent
from execgw.server.metrics import activity
from execgw.server.metrics.activity import TradingActivity
from execgw.server.metrics.buckets import LoopHistogram
from execgw.server.metrics.outages import OutageWatch

STORED = datetime(2026, 1, 2, 15, 30)


def status(run_id: str, sequence: int, new: str, previous: str) -> StoredEvent:
    payload = {"status": f"ORDER_STATUS_{new}", "previous_status": f"ORDER_STATUS_{previous}"}
    return StoredEvent(run_id, sequence, "order_status", payload, None, STORED)


def a_filled_order(run_id: str) -> list[StoredEvent]:
    return [status(run_id, 1, "PENDING_SUBMIT", "UNSPECIFIED"), status(run_id, 2, "FILLED", "PENDING_SUBMIT")]


def test_a_run_nobody_named_is_counted_under_its_mode_from_the_database(monkeypatch):
    monkeypatch.setattr(activity, "LOOKUP_GRACE", 0.05)
    asked: list[list[str]] = []

    async def lookup(run_ids: Collection[str]) -> dict[str, str]:
        asked.append(sorted(run_ids))
        return {"resumed-1": "live", "resumed-2": "paper"}

    async def scenario() -> dict[tuple[str, str], int]:
        counts = TradingActivity(lookup)
        counts.learn("named", "paper")  # SubmitRun named it: never looked up
        counts(a_filled_order("named") + a_filled_order("resumed-1"))
        counts(a_filled_order("resumed-2"))
        assert counts.snapshot() == {("orders_submitted", "paper"): 1, ("orders_filled", "paper"): 1}
        await asyncio.sleep(0.2)
        await counts.stop()
        return counts.snapshot()

    assert asyncio.run(scenario()) == {
        ("orders_submitted", "paper"): 2, ("orders_filled", "paper"): 2,
        ("orders_submitted", "live"): 1, ("orders_filled", "live"): 1,
    }
    assert asked == [["resumed-1", "resumed-2"]]  # one read for the burst


def test_a_failed_lookup_counts_under_unknown_rather_than_losing_the_counts(monkeypatch):
    monkeypatch.setattr(activity, "LOOKUP_GRACE", 0.05)

    async def lookup(run_ids: Collection[str]) -> dict[str, str]:
        raise OSError("database hung")

    async def scenario() -> dict[tuple[str, str], int]:
        counts = TradingActivity(lookup)
        counts(a_filled_order("resumed"))
        await asyncio.sleep(0.2)
        await counts.stop()
        return counts.snapshot()

    assert asyncio.run(scenario()) == {("orders_submitted", "unknown"): 1, ("orders_filled", "unknown"): 1}


def test_histogram_buckets_are_cumulative_and_inclusive():
    histogram = LoopHistogram((0.1, 1.0))
    for seconds in (0.1, 0.5, 1.0, 7.0):
        histogram.observe(seconds)
    buckets, total = histogram.snapshot()
    assert buckets == [("0.1", 1), ("1.0", 3), ("+Inf", 4)]
    assert total == pytest.approx(8.6)


def test_each_outage_counts_once_however_long():
    # What the intake tells: down, up, then down (told again while still down: one outage), up.
    watch = OutageWatch()
    for ok in (False, True, False, False, True):
        watch.database_changed(ok)
    assert watch.outages == 2
