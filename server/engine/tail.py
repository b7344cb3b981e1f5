"""WatchRun of a run another gateway owns: its events reach this gateway only through the
database, so they are read from `trade_events` by polling and handed to the local EventBus,
where the WatchRun loop serves them exactly as it serves this gateway's own (same sequence
checks, gap replay, heartbeats and end).

One tail per foreign run that has watchers here, however many: the database sees one query per
poll interval per tailed run, not one per watcher. A tail starts with its run's first watcher,
at the sequence that watcher's replay reaches at least; it stops when its last watcher leaves,
or once it has handed over the run's final status with nothing stored after it.

Only what the owner committed is ever read, so "stored before sent" holds here too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from execgw.server.engine.bus import EventBus
from execgw.server.engine.store import RunProgress, Store

log = logging.getLogger(__name__)

PAGE = 500  # events per read; a full page is followed at once by the next
RETRY_SECONDS = 1.0  # after a failed read (the database down): the watchers wait with heartbeats


@dataclass
class _Tail:
    run_id: str
    last: int  # the last sequence handed to the bus
    watchers: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Following:
    """A watcher's hold on its run's tail; `release` when its stream ends."""

    def __init__(self, runs: ForeignRuns | None = None, tail: _Tail | None = None) -> None:
        self._runs = runs
        self._tail = tail

    def release(self) -> None:
        if self._runs is not None and self._tail is not None:
            self._runs._release(self._tail)
            self._tail = None


class ForeignRuns:
    def __init__(self, store: Store, bus: EventBus, own_gateway: str, poll_seconds: float = 0.2) -> None:
        self._store = store
        self._bus = bus
        self._own = own_gateway
        self._poll = poll_seconds
        self._tails: dict[str, _Tail] = {}
        self._stopping = False

    @property
    def tailed_runs(self) -> int:
        return len(self._tails)

    def follow(self, run_id: str, progress: RunProgress) -> Following:
        """Called once the watcher is subscribed to the bus, with the progress read before its
        replay: that replay reaches at least `progress.last_sequence`, and the tail hands over
        everything after it. A run this gateway owns needs no tail (its events are published
        here as they commit)."""
        if progress.gateway == self._own or self._stopping:
            return Following()
        tail = self._tails.get(run_id)
        if tail is None or tail.task is None or tail.task.done():
            tail = _Tail(run_id, progress.last_sequence)
            self._tails[run_id] = tail
            tail.task = asyncio.get_running_loop().create_task(self._run(tail), name=f"tail-{run_id}")
        tail.watchers += 1
        tail.wake.clear()  # a last watcher that left just before may have woken it to stop
        return Following(self, tail)

    def _release(self, tail: _Tail) -> None:
        tail.watchers -= 1
        if tail.watchers <= 0:
            tail.wake.set()  # stops now rather than after its next poll

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t.task for t in self._tails.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, tail: _Tail) -> None:
        try:
            while tail.watchers > 0:
                try:
                    page = await self._store.events_after(tail.run_id, tail.last, PAGE)
                except Exception as exc:
                    log.warning("reading run %s's events failed; retrying: %s", tail.run_id, exc)
                    await self._pause(tail, RETRY_SECONDS)
                    continue
                if page:
                    self._bus.deliver(page)
                    tail.last = page[-1].sequence
                    if len(page) == PAGE:
                        continue
                    if page[-1].is_final:
                        return  # finished and caught up: its watchers end on this event
                await self._pause(tail, self._poll)
        finally:
            if self._tails.get(tail.run_id) is tail:
                del self._tails[tail.run_id]

    @staticmethod
    async def _pause(tail: _Tail, seconds: float) -> None:
        """Sleeps between polls; cut short when the last watcher leaves."""
        try:
            await asyncio.wait_for(tail.wake.wait(), seconds)
        except TimeoutError:
            pass
