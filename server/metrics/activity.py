"""What the books record, counted from the committed events (an observer of the event bus): orders
submitted, filled, rejected and cancelled, executions and commissions stored, per trading mode,
and how long IB's reports took to be committed.

Counted from the events, like the journal's lines, so a count means the change is in the
database, and each change counts once whichever path (IB's report, a reconciliation, a
withdrawal) made it.

The mode of a run. Events carry the run id only. SubmitRun tells `learn` the mode of every run it
admits; its first events are committed (and seen here) just before that, so a run's counts wait
under its id until its mode is known. A run nobody named within `LOOKUP_GRACE` seconds (one
resumed after a restart, or one whose SubmitRun caller went away mid-commit) is looked up in the
database, all such runs in one read, off the loop; if that read fails its counts go to mode
"unknown" rather than being lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime

from execgw.server.db.models import EventKind
from execgw.server.engine.stored_event import StoredEvent
from execgw.server.engine.tasks import TaskSupervisor
from execgw.server.metrics.buckets import SECONDS, LoopHistogram

log = logging.getLogger(__name__)

UNKNOWN_MODE = "unknown"
LOOKUP_GRACE = 2.0  # seconds SubmitRun has to name a run before the database is asked
REMEMBERED_RUNS = 100_000  # run id → mode, newest kept

# What one committed event counts as (the metric names' middle part).
SUBMITTED, FILLED, REJECTED, CANCELLED = "orders_submitted", "orders_filled", "orders_rejected", "orders_cancelled"
EXECUTIONS, COMMISSIONS = "executions_stored", "commissions_stored"
TALLIES = (SUBMITTED, FILLED, REJECTED, CANCELLED, EXECUTIONS, COMMISSIONS)

_BY_NEW_STATUS = {
    "ORDER_STATUS_FILLED": FILLED,
    "ORDER_STATUS_REJECTED": REJECTED,
    "ORDER_STATUS_CANCELLED": CANCELLED,
}
# Statuses whose event carries the time the IB callback was received as its ib_time (recorder.py);
# a fill's ib_time is IB's own execution time instead, so fills are measured by their status event.
_RECEIVED_AT_KINDS = frozenset({EventKind.ORDER_STATUS.value, EventKind.COMMISSION.value})

ModeLookup = Callable[[Collection[str]], Awaitable[dict[str, str]]]


def tally_of(event: StoredEvent) -> str | None:
    """The count an event adds to, if any. Order statuses count transitions (an event is written
    only when the status changes): an order IB revives after a refusal counts as rejected and
    then as filled, as both happened."""
    if event.kind == EventKind.FILL:
        return EXECUTIONS
    if event.kind == EventKind.COMMISSION:
        return COMMISSIONS
    if event.kind != EventKind.ORDER_STATUS:
        return None
    status = event.payload.get("status")
    if status == "ORDER_STATUS_PENDING_SUBMIT" and event.payload.get("previous_status") == "ORDER_STATUS_UNSPECIFIED":
        return SUBMITTED  # recorded in its run and queued for IB
    return _BY_NEW_STATUS.get(str(status))


class TradingActivity:
    """The bus observer. Loop-only, like the bus; the scrape thread reads `counts` by `snapshot`."""

    def __init__(self, lookup: ModeLookup | None = None) -> None:
        self._lookup = lookup
        self._modes: OrderedDict[str, str] = OrderedDict()
        self._waiting: dict[str, Counter[str]] = {}  # run id → counts until its mode is known
        self._counts: Counter[tuple[str, str]] = Counter()  # (tally, mode) → count
        self._lookups = TaskSupervisor()
        self._lookup_timer: asyncio.TimerHandle | None = None
        self.report_commit = LoopHistogram(SECONDS)

    def use_lookup(self, lookup: ModeLookup) -> None:
        """The database read for runs nobody named (the store exists only once the gateway starts)."""
        self._lookup = lookup
        if self._waiting:
            self._schedule_lookup()

    def __call__(self, events: list[StoredEvent]) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as stored; once per transaction
        for event in events:
            if event.ib_time is not None and event.kind in _RECEIVED_AT_KINDS:
                # Received → committed and published; a wall clock stepping back reads as 0.
                self.report_commit.observe(max((now - event.ib_time).total_seconds(), 0.0))
            tally = tally_of(event)
            if tally is None:
                continue
            mode = self._modes.get(event.run_id)
            if mode is not None:
                self._counts[(tally, mode)] += 1
            else:
                self._wait_for_mode(event.run_id)[tally] += 1

    def learn(self, run_id: str, mode: str) -> None:
        """A run's mode (SubmitRun, or the database); counts waiting for it are added now."""
        self._modes[run_id] = mode
        self._modes.move_to_end(run_id)
        if len(self._modes) > REMEMBERED_RUNS:
            self._modes.popitem(last=False)  # its later events, if any, are looked up again
        self._credit(run_id, mode)

    def snapshot(self) -> dict[tuple[str, str], int]:
        """(tally, mode) → count; a copy in one step, safe from the scrape thread."""
        return dict(self._counts)

    async def stop(self) -> None:
        if self._lookup_timer is not None:
            self._lookup_timer.cancel()
        await self._lookups.stop()

    def _credit(self, run_id: str, mode: str) -> None:
        for tally, count in self._waiting.pop(run_id, Counter()).items():
            self._counts[(tally, mode)] += count

    def _wait_for_mode(self, run_id: str) -> Counter[str]:
        waiting = self._waiting.get(run_id)
        if waiting is None:
            waiting = self._waiting[run_id] = Counter()
            self._schedule_lookup()
        return waiting

    def _schedule_lookup(self) -> None:
        """One read for every run still unnamed after the grace (runs resumed at start come in a burst)."""
        if self._lookup_timer is None and self._lookup is not None:
            self._lookup_timer = asyncio.get_running_loop().call_later(LOOKUP_GRACE, self._look_up_waiting)

    def _look_up_waiting(self) -> None:
        self._lookup_timer = None
        if self._waiting:
            self._lookups.spawn(self._look_up(list(self._waiting)), "metrics-run-modes")

    async def _look_up(self, run_ids: list[str]) -> None:
        assert self._lookup is not None
        try:
            modes = await self._lookup(run_ids)
        except Exception as exc:  # the database is down or hung: the counts are kept, unlabelled
            log.warning("metrics: could not read the mode of %d runs (%s); counted as %r", len(run_ids), exc,
                        UNKNOWN_MODE)
            modes = {}
        for run_id in run_ids:
            mode = modes.get(run_id)
            if mode is not None:
                self.learn(run_id, mode)
            else:
                self._credit(run_id, UNKNOWN_MODE)
