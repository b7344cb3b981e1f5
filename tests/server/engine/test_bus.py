from __future__ import annotations

import asyncio
from datetime import datetime

from execgw.server.engine.bus import EventBus
from execgw.server.engine.stored_event import StoredEvent


def event(sequence: int, run_id: str = "r") -> StoredEvent:
    return StoredEvent(run_id, sequence, "fill", {}, None, datetime(2026, 1, 1))


def test_a_watcher_that_falls_behind_is_cut_loose_without_holding_up_the_others():
    async def scenario() -> None:
        bus = EventBus(capacity=3)
        slow, fast = bus.subscribe("r"), bus.subscribe("r")
        for sequence in (1, 2, 3):
            bus.publish([event(sequence)])
            assert (await fast.queue.get()).sequence == sequence
        bus.publish([event(4)])
        assert slow.overflowed and not fast.overflowed
        assert bus.watcher_count("r") == 1
        assert (await fast.queue.get()).sequence == 4

    asyncio.run(scenario())


def test_events_go_only_to_watchers_of_their_run_and_close_all_wakes_everyone():
    async def scenario() -> None:
        bus = EventBus()
        mine, other = bus.subscribe("r"), bus.subscribe("x")
        bus.publish([event(1, "r")])
        assert mine.queue.qsize() == 1 and other.queue.empty()
        bus.close_all()
        assert mine.closed and other.closed
        assert await other.queue.get() is None
        assert bus.watcher_count("r") == bus.watcher_count("x") == 0

    asyncio.run(scenario())


def test_the_bus_needs_nothing_from_the_store() -> None:
    import subprocess
    import sys

    probe = "import sys, execgw.server.engine.bus; print('execgw.server.engine.store' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


def test_events_read_from_another_gateway_reach_watchers_but_not_the_observers():
    """The journal and the metrics observe the bus; another gateway's events (tailed from the
    database) are that gateway's to log and count, so `deliver` hands them to watchers only."""
    async def scenario() -> None:
        bus = EventBus()
        observed: list[int] = []
        bus.observe(lambda events: observed.extend(e.sequence for e in events))
        watcher = bus.subscribe("r")
        bus.deliver([event(1), event(2)])
        assert [watcher.queue.get_nowait().sequence for _ in range(2)] == [1, 2]
        assert observed == []
        bus.publish([event(3)])
        assert watcher.queue.get_nowait().sequence == 3 and observed == [3]

    asyncio.run(scenario())
